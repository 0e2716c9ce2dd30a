"""The client's address behind trusted proxies (TRUSTED_PROXIES).

A request's direct peer is the client unless it is one of the trusted proxies (load
balancer, reverse proxy): then X-Forwarded-For says who came before it. Each proxy
appends the address it saw to the right of that header, and whatever stands to its left
the client may have written itself; so the client is the right-most address that is not
a trusted proxy. When the peer is not trusted the header is ignored (anybody can send
one), and when an entry cannot be read the peer is kept: we cannot tell who wrote it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from core.infra.config import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def parse_networks(spec: str) -> tuple[Network, ...]:
    """`"10.0.0.0/8, 192.0.2.7"` as networks; ValueError names an entry that is neither
    an IP address nor a CIDR."""
    networks = []
    for part in spec.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: {part!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_ip(peer: str, forwarded_for: list[str], trusted: str | None = None) -> str:
    """The client's address: `peer` (the direct connection's address) unless it is a
    trusted proxy, then the right-most untrusted address of the X-Forwarded-For headers
    (`forwarded_for`, in the order received). `trusted` defaults to TRUSTED_PROXIES."""
    networks = parse_networks(settings.trusted_proxies if trusted is None else trusted)
    if not networks or not forwarded_for:
        return peer
    current = _address(peer)
    if current is None or not _trusted(current, networks):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if not hop.strip():
            continue
        address = _address(hop)
        if address is None:
            return peer
        current = address
        if not _trusted(address, networks):
            return str(address)
    return str(current)  # every hop is a proxy of ours: the left-most is the client
