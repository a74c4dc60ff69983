"""Fakes at the edge of the internet: the Twilio and Telegram APIs on loopback.

Each records every call exactly as the real client library made it (path, form
or JSON fields, Authorization) and answers from a script of behaviours, one per
call, then "ok" forever: "ok", "500", "400" (a provider's refusal with its error
code), "429" (with Retry-After), or "hang" (never answers)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    path: str
    fields: dict[str, Any]
    authorization: str | None
    at: float


@dataclass
class FakeProvider:
    kind: str  # "twilio" or "telegram"
    script: deque[str] = field(default_factory=deque)
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _hung: list[asyncio.Event] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *behaviours: str) -> FakeProvider:
        self.script.extend(behaviours)
        return self

    async def start(self) -> FakeProvider:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for event in self._hung:
            event.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for_calls(self, count: int, limit: float = 30.0) -> list[Call]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while len(self.calls) < count and loop.time() < deadline:  # noqa: ASYNC110 - a deadline
            await asyncio.sleep(0.05)
        return self.calls

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.content_type == "application/json":
            fields = await request.json()
        else:
            fields = dict(await request.post())
        loop = asyncio.get_running_loop()
        self.calls.append(Call(request.path, fields, request.headers.get("Authorization"), loop.time()))
        behaviour = self.script.popleft() if self.script else "ok"
        if behaviour == "hang":
            released = asyncio.Event()
            self._hung.append(released)
            await released.wait()
            return web.Response(status=503)
        if behaviour == "ok" and request.path.endswith("/setWebhook"):
            return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})
        return self._answer(behaviour, len(self.calls))

    def _answer(self, behaviour: str, n: int) -> web.Response:
        if self.kind == "twilio":
            if behaviour == "ok":
                return web.json_response({"sid": f"SM{n:032x}", "status": "queued"}, status=201)
            if behaviour == "400":
                return web.json_response(
                    {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, status=400
                )
            if behaviour == "429":
                return web.json_response(
                    {"code": 20429, "message": "Too Many Requests", "status": 429},
                    status=429,
                    headers={"Retry-After": "1"},
                )
            return web.json_response({"code": 20500, "message": "Internal", "status": 500}, status=500)
        if behaviour == "ok":
            return web.json_response(
                {"ok": True, "result": {"message_id": n, "date": 0, "chat": {"id": 1, "type": "private"}}}
            )
        if behaviour == "400":
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, status=400
            )
        if behaviour == "429":
            return web.json_response(
                {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                 "parameters": {"retry_after": 1}},
                status=429,
            )  # fmt: skip
        return web.json_response({"ok": False, "error_code": 500, "description": "Internal"}, status=500)
