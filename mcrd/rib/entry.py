"""Routes as stored in the RIB. One `RouteEntry` is shared by every prefix of one UPDATE."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mcrd.policy.peer import PeerPolicy
from mcrd.rib.effects import FibNextHop
from mcrd.route.attributes import PathAttributes


def address_key(address: str) -> tuple[int, int]:
    """A sortable key for an address (IPv4 before IPv6)."""
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


@dataclass(eq=False, slots=True)
class Source:
    """Where routes come from: one BGP session incarnation, or the MCR itself (static, connected).

    A new session gets a new Source, so a route always refers to the session that sent it. `policy` is the
    session's policy (None for the MCR's own routes), as export policy needs it; a new config replaces it."""

    key: str
    kind: str  # "bgp", "static" or "connected"
    ebgp: bool = True
    router_id: int = 0
    address_key: tuple[int, int] = (0, 0)
    policy: PeerPolicy | None = None

    @property
    def local(self) -> bool:
        return self.kind != "bgp"


@dataclass(eq=False, slots=True)
class RouteEntry:
    """`attrs` are the attributes after import policy, `received` as the peer sent them."""

    source: Source
    attrs: PathAttributes
    received: PathAttributes
    since: float
    next_hop_key: tuple[int, int]
    ifname: str
    fib: FibNextHop  # where the kernel should send packets for it
