"""The bare baseline: a minimal aiohttp handler that publishes the request body
with a publisher confirm to one queue, as naive code would. Started by ingest.py."""

from __future__ import annotations

import argparse
import asyncio

import aio_pika
from aiohttp import web


async def main(port: int, amqp_url: str, queue: str, arguments: dict, use_uvloop: bool) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(queue, durable=True, arguments=arguments)
    exchange = channel.default_exchange

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        await exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=queue)
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
    args = parser.parse_args()
    coroutine = main(args.port, args.amqp_url, args.queue, json.loads(args.arguments), args.uvloop)
    if args.uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
