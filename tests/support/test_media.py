"""The pure parts of fetching attachments: which hosts a URL may reach and which bytes
the console may show as an image."""

from __future__ import annotations

import pytest

from gateway.support.media import host_allowed, media_type, shown_inline
from tests.helpers.media import IMAGE

HOSTS = frozenset({"api.twilio.com", "*.twiliocdn.com"})


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.twilio.com", True),
        ("API.Twilio.com.", True),  # names are case-insensitive, a trailing dot is the same host
        ("media.twiliocdn.com", True),
        ("a.b.twiliocdn.com", True),
        ("twiliocdn.com", False),  # the wildcard is for subdomains only
        ("eviltwiliocdn.com", False),
        ("api.twilio.com.evil.example", False),
        ("127.0.0.1", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allowed(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, HOSTS) is allowed


@pytest.mark.parametrize(
    ("content_type", "data", "inline"),
    [
        ("image/png", IMAGE, True),
        ("image/jpeg", b"\xff\xd8\xff\xe0rest", True),
        ("image/gif", b"GIF89a...", True),
        ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("image/webp", b"RIFF\x00\x00\x00\x00WAVEfmt ", False),  # a RIFF that is not a picture
        ("image/png", b"<svg onload=alert(1)>", False),  # says PNG, is not
        ("image/jpeg", IMAGE, False),  # a PNG said to be a JPEG: not what it says
        ("image/svg+xml", b"<svg/>", False),  # never drawn in the console's page
        ("application/pdf", b"%PDF-1.4", False),
    ],
)
def test_shown_inline_only_when_the_bytes_agree(content_type: str, data: bytes, inline: bool) -> None:
    assert shown_inline(content_type, data) is inline


def test_media_type_drops_parameters() -> None:
    assert media_type("Image/PNG; charset=binary") == "image/png"
    assert media_type(None) == ""
