"""Fake provider media servers on loopback, at the edge of the internet.

One aiohttp server plays both providers' media hosts:
- Twilio's REST media URL, `/2010-04-01/Accounts/{sid}/Messages/{mid}/Media/{name}`,
  which wants the account's HTTP basic credentials and then, like the real one,
  redirects to its CDN on another host (`http://127.0.0.2:{cdn_port}/cdn/{name}`);
- the Telegram Bot API's `getFile` and its file host, `/file/bot{token}/{path}`.

`name` picks what the server does (see MEDIA). Every request is recorded with the
host it was sent to and whether it carried credentials, so a test can show that a
redirect to another host was never followed.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field

from aiohttp import web

from adapters.telegram.cases import TELEGRAM_BOT_TOKEN
from adapters.twilio.cases import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN


def png(width: int = 4, height: int = 3) -> bytes:
    """A real, small PNG (the console's browser must be able to draw it)."""
    raw = b"".join(b"\x00" + bytes([200, 30, 60]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


CDN_HOST = "127.0.0.2"  # the CDN Twilio redirects to: another host, allowed by the channel
IMAGE = png(160, 120)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ELEVEN_MB = 11 * 1024 * 1024
# name -> (status, content type, body) at the CDN; "redirect-elsewhere" and friends are
# answered by the media URL itself.
MEDIA: dict[str, tuple[int, str, bytes]] = {
    "photo": (200, "image/png", IMAGE),
    "document": (200, "application/pdf", PDF),
    "disguised": (200, "image/png", b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>"),
    "oversized": (200, "image/jpeg", b"\xff\xd8\xff" + b"\x00" * ELEVEN_MB),
    "html": (200, "text/html", b"<html><body>not a photo</body></html>"),
    "gone": (404, "application/json", b'{"code": 20404}'),
}


@dataclass
class Seen:
    path: str
    host: str
    authorized: bool


@dataclass
class MediaServer:
    port: int = 0
    cdn_port: int = 0
    seen: list[Seen] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def twilio_url(self, name: str) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/MM{'0' * 32}/Media/{name}"

    def paths_on(self, host: str) -> list[str]:
        return [s.path for s in self.seen if s.host == host]

    async def start(self) -> MediaServer:
        app = web.Application()
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{mid}/Media/{name}", self._twilio)
        app.router.add_get("/cdn/{name}", self._cdn)
        app.router.add_post("/bot{token}/getFile", self._get_file)
        app.router.add_get("/file/bot{token}/{path:.+}", self._telegram_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        cdn = web.TCPSite(self._runner, CDN_HOST, 0)
        await cdn.start()
        self.cdn_port = cdn._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _record(self, request: web.Request) -> Seen:
        seen = Seen(request.path, request.host.split(":")[0], "Authorization" in request.headers)
        self.seen.append(seen)
        return seen

    async def _twilio(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        expected = "Basic " + base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        name = request.match_info["name"]
        if name == "redirect-elsewhere":  # "localhost" is this server too, but not an allowed host
            raise web.HTTPFound(f"http://localhost:{self.port}/cdn/photo")
        if name == "redirect-loop":
            raise web.HTTPFound(request.path)
        raise web.HTTPTemporaryRedirect(f"http://{CDN_HOST}:{self.cdn_port}/cdn/{name}")

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        name = request.match_info["name"]
        if name == "oversized-unannounced":  # no Content-Length: the size shows only while reading
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                for _ in range(ELEVEN_MB // 65536 + 2):
                    await response.write(b"\xff" * 65536)
            except (ConnectionResetError, RuntimeError):
                pass  # the desk stopped reading at its limit, as it should
            return response
        status, content_type, body = MEDIA.get(name, MEDIA["gone"])
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    async def _get_file(self, request: web.Request) -> web.Response:
        self._record(request)
        if request.match_info["token"] != TELEGRAM_BOT_TOKEN:
            refusal = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return web.json_response(refusal, status=401)
        fields = await request.post() if request.content_type != "application/json" else await request.json()
        file_id = str(fields.get("file_id", ""))
        name = file_id.rsplit("-", 1)[-1]
        if name not in MEDIA or MEDIA[name][0] != 200:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}, status=400
            )
        result = {"file_id": file_id, "file_unique_id": name, "file_size": len(MEDIA[name][2]),
                  "file_path": f"photos/{name}.bin"}  # fmt: skip
        return web.json_response({"ok": True, "result": result})

    async def _telegram_file(self, request: web.Request) -> web.Response:
        self._record(request)
        if request.match_info["token"] != TELEGRAM_BOT_TOKEN:
            return web.Response(status=404)
        name = request.match_info["path"].removeprefix("photos/").removesuffix(".bin")
        status, content_type, body = MEDIA.get(name, MEDIA["gone"])
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})
