"""The bare baseline: a minimal aiohttp handler that publishes the request body
with a publisher confirm to one queue, as naive code would. Started by ingest.py.

With --message-id-header the message id is taken from that request header: the
end-to-end benchmark's bare two-hop path needs it to time each message's arrival."""

from __future__ import annotations

import argparse
import asyncio

import aio_pika
from aiohttp import web


async def main(port: int, amqp_url: str, queue: str, arguments: dict, id_header: str | None) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(queue, durable=True, arguments=arguments)
    exchange = channel.default_exchange

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        message_id = request.headers.get(id_header) if id_header else None
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=2, message_id=message_id), routing_key=queue
        )
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/channels/{channel_id}/webhook", handle)
    app.router.add_get("/readyz", lambda _: web.Response(text="ok"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--queue", default="bench.baseline")
    parser.add_argument("--arguments", default='{"x-queue-type": "quorum"}')
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--message-id-header", default=None)
    args = parser.parse_args()
    coroutine = main(args.port, args.amqp_url, args.queue, json.loads(args.arguments), args.message_id_header)
    if args.uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
