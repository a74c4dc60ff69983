"""The web chat's place-in-the-queue loop against a fake host: one lookup per channel
for all its open sessions, whatever the number of sockets, and a frame to a socket only
when its place changed; nothing but the number."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from adapters.webchat.kind import WebChat, _Connection


class FakeSocket:
    def __init__(self) -> None:
        self.closed = False
        self.sent: list[dict[str, Any]] = []

    async def send_str(self, data: str) -> None:
        self.sent.append(orjson.loads(data))


class FakeHost:
    def __init__(self) -> None:
        self.places: dict[str, int] = {}
        self.lookups: list[tuple[str, frozenset[str]]] = []

    async def queue_places(self, channel_instance: str, conversation_keys: Collection[str]) -> dict[str, int]:
        self.lookups.append((channel_instance, frozenset(conversation_keys)))
        return {key: self.places[key] for key in conversation_keys if key in self.places}


def connect(kind: WebChat, channel: str, session: str) -> FakeSocket:
    socket = FakeSocket()
    connection = _Connection(socket, "127.0.0.1", channel)  # type: ignore[arg-type]
    kind._join(connection, session)
    return socket


async def test_one_lookup_per_channel_and_a_frame_only_on_a_change() -> None:
    kind, host = WebChat(), FakeHost()
    kind._host = host  # type: ignore[assignment]
    a1, a1_again = connect(kind, "webchat-a", "s1"), connect(kind, "webchat-a", "s1")  # two tabs, one chat
    a2, b1 = connect(kind, "webchat-a", "s2"), connect(kind, "webchat-b", "s3")
    host.places = {"s1": 2, "s2": 1, "s3": 1}

    await kind.update_places()
    assert sorted(host.lookups) == [("webchat-a", frozenset({"s1", "s2"})), ("webchat-b", frozenset({"s3"}))]
    assert a1.sent == a1_again.sent == [{"type": "queue", "place": 2}]
    assert a2.sent == [{"type": "queue", "place": 1}] and b1.sent == [{"type": "queue", "place": 1}]

    host.places = {"s1": 1, "s3": 1}  # s2 was taken
    await kind.update_places()
    assert a1.sent[-1] == {"type": "queue", "place": 1}
    assert a2.sent[-1] == {"type": "queue", "place": None}, "taken: the place goes away"
    assert b1.sent == [{"type": "queue", "place": 1}], "unchanged: nothing sent"

    late = connect(kind, "webchat-a", "s1")  # a resumed socket is told afresh
    await kind.update_places()
    assert late.sent == [{"type": "queue", "place": 1}] and len(a1.sent) == 2


async def test_a_session_never_queued_is_sent_nothing() -> None:
    kind, host = WebChat(), FakeHost()
    kind._host = host  # type: ignore[assignment]
    socket = connect(kind, "webchat-a", "s1")
    await kind.update_places()
    await kind.update_places()
    assert socket.sent == [] and len(host.lookups) == 2
