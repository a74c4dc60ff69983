"""Who the client is behind the load balancer: the decision alone (the middleware that
applies it is `gateway.web.proxies`).

`X-Forwarded-For` is believed only from a TCP peer inside `GATEWAY_TRUSTED_PROXIES`, and
then read from the right, past every address that is itself a trusted proxy: the first
one that is not is the client. Anything to its left was written by the client (or by
proxies we do not know) and is never looked at. A header that cannot be read where it
matters leaves the client as the peer: a wrong guess must never be a client the sender
chose, and never an error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = frozenset({"http", "https"})
MAX_HOPS = 32  # a longer chain is not read: the peer, as for any other unreadable header


def parse_networks(value: str, variable: str = "GATEWAY_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is one host); raises ValueError naming the
    variable and the entry (an address range is no secret)."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as exc:
            hint = "it has host bits set" if "host bits" in str(exc) else "not an address or CIDR"
            raise ValueError(
                f"{variable}: {entry[:60]!r} is {hint}; expected comma-separated CIDRs "
                "such as 10.0.0.0/8,127.0.0.1/32"
            ) from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):  # [2001:db8::1]
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1, on a dual-stack socket
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


@dataclass(frozen=True)
class Resolved:
    remote: str | None  # the client's address as aiohttp spells one (None: no peer known)
    scheme: str  # what the client used to reach the first trusted proxy


def resolve(
    peer: str | None,
    scheme: str,
    forwarded_for: Iterable[str],
    forwarded_proto: Iterable[str],
    trusted: Sequence[Network],
) -> Resolved:
    """`forwarded_for` and `forwarded_proto`: every value of each header, in order (as
    several headers are one list). Empty items are skipped; any other item that is not an
    address, where it is read, makes the whole header count for nothing."""
    unchanged = Resolved(peer, scheme)
    peer_address = _address(peer) if peer else None
    if peer_address is None or not trusted or not _trusted(peer_address, trusted):
        return unchanged
    chain = [part for value in forwarded_for for part in value.split(",") if part.strip()]
    if len(chain) > MAX_HOPS:
        return unchanged
    client: Address | None = None
    for hop in reversed(chain):
        address = _address(hop)
        if address is None:
            return unchanged
        client = address
        if not _trusted(address, trusted):
            break  # the first address no trusted proxy stands for: the client
    # (Every hop a trusted proxy: the left-most, the furthest one seen, is the client.)
    protos = [part.strip().lower() for value in forwarded_proto for part in value.split(",")]
    proto = protos[-1] if protos and protos[-1] in SCHEMES else scheme  # the nearest proxy's word
    return Resolved(str(client) if client is not None else peer, proto)
