"""The client-address decision behind the load balancer, as a table."""

from __future__ import annotations

import pytest

from gateway.support.proxies import MAX_HOPS, parse_networks, resolve
from gateway.support.settings import Settings

TRUSTED = parse_networks("10.0.0.0/8, 127.0.0.1/32,2001:db8:ffff::/48")
LB = "10.0.0.5"

# (peer, X-Forwarded-For values, client seen)
CASES = [
    # an untrusted peer: whatever it writes is ignored
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
    ("203.0.113.9", ["10.0.0.7"], "203.0.113.9"),
    ("192.168.1.1", ["198.51.100.1, 10.0.0.7"], "192.168.1.1"),
    ("11.0.0.1", ["198.51.100.1"], "11.0.0.1"),  # just outside 10.0.0.0/8
    # a trusted peer: the right-most address that is not a trusted proxy
    (LB, ["198.51.100.1"], "198.51.100.1"),
    (LB, ["198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # two proxies of ours
    (LB, ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the client's own forgery, left of it
    (LB, ["6.6.6.6, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),
    (LB, ["127.0.0.1, 198.51.100.1"], "198.51.100.1"),  # a forged trusted address, left of it
    ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    # several headers are one list, in order
    (LB, ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
    (LB, ["198.51.100.1", "10.1.2.3"], "198.51.100.1"),
    # spaces and empty items
    (LB, ["  198.51.100.1  "], "198.51.100.1"),
    (LB, ["198.51.100.1,,  ,10.1.2.3, "], "198.51.100.1"),
    (LB, [" , "], LB),
    # every hop a trusted proxy: the furthest one
    (LB, ["10.9.9.9, 10.1.2.3"], "10.9.9.9"),
    # no header, or an empty one: the peer
    (LB, [], LB),
    (LB, [""], LB),
    # garbage where it is read: the peer; garbage left of the client: never read
    (LB, ["not-an-address"], LB),
    (LB, ["198.51.100.1, garbage"], LB),
    (LB, ["198.51.100.1:4711"], LB),  # with a port
    (LB, ["198.51.100.1, 10.1.2.3:80"], LB),
    (LB, ["garbage, 198.51.100.1"], "198.51.100.1"),
    (LB, ["999.1.1.1"], LB),
    (LB, ["\x00\xff"], LB),
    (LB, ["unknown"], LB),
    (LB, ["1" * 5000], LB),
    # IPv6
    (LB, ["2001:db8::1"], "2001:db8::1"),
    (LB, ["[2001:db8::1]"], "2001:db8::1"),
    (LB, ["2001:DB8:0:0::1"], "2001:db8::1"),  # one spelling, so one key
    (LB, ["2001:db8::1, 2001:db8:ffff::2"], "2001:db8::1"),
    ("2001:db8:ffff::1", ["198.51.100.1"], "198.51.100.1"),
    ("2001:db8::1", ["198.51.100.1"], "2001:db8::1"),
    ("::ffff:10.0.0.5", ["198.51.100.1"], "198.51.100.1"),  # an IPv4 peer on a dual-stack socket
    (LB, ["::ffff:198.51.100.1"], "198.51.100.1"),
    (LB, ["2001:db8::1, ::ffff:10.1.2.3"], "2001:db8::1"),
    # a chain longer than any real one: the peer
    (LB, [", ".join(["10.1.1.1"] * MAX_HOPS + ["198.51.100.1"])], LB),
    (LB, [", ".join(["198.51.100.1"] + ["10.1.1.1"] * (MAX_HOPS - 1))], "198.51.100.1"),
    # no peer known (a closed transport)
    (None, ["198.51.100.1"], None),
    ("garbage", ["198.51.100.1"], "garbage"),
]


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), CASES)
def test_the_client_address(peer: str | None, forwarded_for: list[str], client: str | None) -> None:
    assert resolve(peer, "http", forwarded_for, [], TRUSTED).remote == client


def test_nobody_is_trusted_by_default() -> None:
    assert resolve("127.0.0.1", "http", ["198.51.100.1"], ["https"], ()).remote == "127.0.0.1"
    assert resolve("127.0.0.1", "http", ["198.51.100.1"], ["https"], ()).scheme == "http"


# (peer, X-Forwarded-Proto values, scheme seen)
SCHEMES = [
    (LB, ["https"], "https"),
    (LB, ["HTTPS "], "https"),
    (LB, ["http"], "http"),
    (LB, ["https, http"], "http"),  # the nearest proxy's word
    (LB, ["http", "https"], "https"),
    (LB, ["gopher"], "http"),
    (LB, [""], "http"),
    (LB, [], "http"),
    ("203.0.113.9", ["https"], "http"),  # forged by an untrusted peer
]


@pytest.mark.parametrize(("peer", "forwarded_proto", "scheme"), SCHEMES)
def test_the_scheme(peer: str, forwarded_proto: list[str], scheme: str) -> None:
    assert resolve(peer, "http", ["198.51.100.1"], forwarded_proto, TRUSTED).scheme == scheme


def test_a_forwarded_proto_alone_still_counts_from_a_trusted_peer() -> None:
    resolved = resolve(LB, "http", [], ["https"], TRUSTED)
    assert (resolved.remote, resolved.scheme) == (LB, "https")


@pytest.mark.parametrize(
    ("value", "count"),
    [("", 0), (" ", 0), ("10.0.0.0/8", 1), ("10.0.0.0/8,127.0.0.1/32", 2), ("127.0.0.1", 1),
     (" 10.0.0.0/8 , ::1/128 ,", 2), ("fd00::/8", 1)],
)  # fmt: skip
def test_trusted_proxies_parse(value: str, count: int) -> None:
    assert len(Settings.from_env({"GATEWAY_TRUSTED_PROXIES": value}).trusted_proxies) == count


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal", "10.0.0.0/8;127.0.0.1"])
def test_a_wrong_trusted_proxy_is_named_with_its_variable(value: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_TRUSTED_PROXIES") as raised:
        Settings.from_env({"GATEWAY_TRUSTED_PROXIES": value})
    assert "10.0.0.0/8" in str(raised.value)  # says what it should look like


@pytest.mark.parametrize(
    "value",
    ["redis://127.0.0.1:6379/0", "redis://:s3cret@redis:6379/2", "rediss://user:pw@r.example:6380",
     "unix:///run/redis.sock", "redis://localhost"],
)  # fmt: skip
def test_redis_url_parses(value: str) -> None:
    assert Settings.from_env({"GATEWAY_REDIS_URL": value}).redis_url == value


def test_no_redis_url_is_none() -> None:
    assert Settings.from_env({}).redis_url is None
    assert Settings.from_env({"GATEWAY_REDIS_URL": ""}).redis_url is None


@pytest.mark.parametrize(
    "value",
    ["http://:hunter2-secret@redis:6379/0", "redis://:hunter2-secret@redis:port/0",
     "redis://:hunter2-secret@/0", "redis://:hunter2-secret@redis:6379/zero", "hunter2-secret"],
)  # fmt: skip
def test_a_wrong_redis_url_is_named_never_echoed(value: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_REDIS_URL") as raised:
        Settings.from_env({"GATEWAY_REDIS_URL": value})
    assert "hunter2" not in str(raised.value)
