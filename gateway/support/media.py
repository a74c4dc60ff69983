"""Fetching what a person sent from the provider that keeps it, within limits.

The URL and each redirect must stay on the hosts the channel kind named; credentials
go to the first host only; the body is read in chunks and abandoned past the size
limit; the content type must be one the configuration allows. Nothing here puts a
URL, a header or a byte of the body into an exception or a log line: URLs may hold
a bot token, and what is fetched is the person's.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
INLINE_IMAGES = {  # shown in the console only when the bytes are what the type says
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


class MediaRefused(Exception):
    """The attachment is not fetched. `reason` is a short code; `permanent` says whether
    trying again could help (a timeout, a provider's 5xx) or not (too large, wrong host)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Fetched:
    content_type: str
    data: bytes


def host_allowed(host: str | None, hosts: frozenset[str]) -> bool:
    """`hosts` holds names ("api.twilio.com") and wildcards for subdomains ("*.twiliocdn.com")."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    return host in hosts or any(h.startswith("*.") and host.endswith(h[1:]) for h in hosts)


def shown_inline(content_type: str, data: bytes) -> bool:
    """An image the console may show in the page: a known type whose bytes agree."""
    signatures = INLINE_IMAGES.get(content_type)
    if signatures is None or not any(data.startswith(s) for s in signatures):
        return False
    return content_type != "image/webp" or data[8:12] == b"WEBP"


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


async def fetch(
    session: aiohttp.ClientSession,
    address: str,
    *,
    hosts: frozenset[str],
    basic_auth: tuple[str, str] | None,
    declared_type: str,
    max_bytes: int,
    content_types: frozenset[str],
    seconds: float,
) -> Fetched:
    """GET `address`, following at most MAX_REDIRECTS redirects within `hosts`; raises
    MediaRefused. `basic_auth` is sent to the first host only. A file host that says only
    "octet-stream" (Telegram's does for documents) is taken at the provider's word in
    the message, `declared_type`: either way the type must be allowed, and only bytes
    that agree with an image type are ever shown in a page."""
    url = URL(address)
    first_host = url.host
    for _ in range(MAX_REDIRECTS + 1):
        if url.scheme not in ("https", "http") or not host_allowed(url.host, hosts):
            raise MediaRefused("host_not_allowed", permanent=True)
        auth = None
        if basic_auth is not None and url.host == first_host:
            auth = aiohttp.BasicAuth(*basic_auth)
        try:
            async with session.get(
                url, auth=auth, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as response:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise MediaRefused("provider_error", permanent=True)
                    url = url.join(URL(location))
                    continue
                if response.status in (408, 429) or response.status >= 500:
                    raise MediaRefused(f"provider_{response.status}", permanent=False)
                if response.status != 200:
                    raise MediaRefused(f"provider_{response.status}", permanent=True)
                content_type = media_type(response.headers.get("Content-Type"))
                if content_type in ("", "application/octet-stream"):
                    content_type = media_type(declared_type)
                if content_type not in content_types:
                    raise MediaRefused("type_not_allowed", permanent=True)
                if (response.content_length or 0) > max_bytes:
                    raise MediaRefused("too_large", permanent=True)
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise MediaRefused("too_large", permanent=True)
                return Fetched(content_type, bytes(body))
        except TimeoutError:
            raise MediaRefused("timeout", permanent=False) from None
        except aiohttp.ClientError:
            raise MediaRefused("connection_error", permanent=False) from None
    raise MediaRefused("too_many_redirects", permanent=True)
