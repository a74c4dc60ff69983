"""The bare second hop: moves every message from one queue to another as bytes, in
batches committed in an AMQP transaction (the mechanism the gateway's router uses),
with no envelope, no decision and no store. With baseline.py in front of it, it is
the bare two-hop path that ingest.py --end-to-end also measures, so the gateway's
end-to-end figure can be set against both one hop and two bare hops. Started by
ingest.py; answers GET /readyz once it consumes.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aio_pika
import aiormq
from aiohttp import web

BATCH_SIZE = 64


async def main(port: int, amqp_url: str, source: str, target: str, arguments: dict) -> None:
    connection = await aio_pika.connect(amqp_url)
    declaring = await connection.channel()
    for name in (source, target):
        await declaring.declare_queue(name, durable=True, arguments=arguments)
    channel = await (await connection.channel(publisher_confirms=False)).get_underlay_channel()
    await channel.basic_qos(prefetch_count=2 * BATCH_SIZE)
    await channel.tx_select()
    inbox: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        inbox.put_nowait(message)

    await channel.basic_consume(source, on_message)

    app = web.Application()
    app.router.add_get("/readyz", lambda _: web.Response(text="ok"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    while True:
        batch = [await inbox.get()]
        while len(batch) < BATCH_SIZE and not inbox.empty():
            batch.append(inbox.get_nowait())
        for message in batch:
            await channel.basic_publish(
                message.body,
                routing_key=target,
                properties=aiormq.spec.Basic.Properties(
                    delivery_mode=2, message_id=message.header.properties.message_id
                ),
                wait=False,
            )
        await channel.basic_ack(batch[-1].delivery_tag, multiple=True)
        await channel.tx_commit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--arguments", default='{"x-queue-type": "quorum"}')
    args = parser.parse_args()
    asyncio.run(main(args.port, args.amqp_url, args.source, args.target, json.loads(args.arguments)))
