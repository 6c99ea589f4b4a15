"""What the route processor is told. Peers are named by their peer address (`peerIpAddress`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcrd.route.attributes import PathAttributes

if TYPE_CHECKING:  # an annotation only: ExaBGP's launcher and API bridge import these inputs without pydantic
    from mcrd.config.model import Config


@dataclass(frozen=True, slots=True)
class PeerUp:
    peer: str
    router_id: str
    # The address families the session negotiated (4: IPv4 unicast, 6: IPv6 unicast), from the OPENs; None when not
    # known (then taken to be the connection's own). A session that lacks its connection's family is sent nothing.
    families: frozenset[int] | None = None
    refresh: str = ""  # route refresh negotiated: "enhanced", "normal", "absent"; "" when not known
    # The session's instance on the send fast path (mcrd/bgp/exabgp_fastpath.py); None when ExaBGP's own path
    # carries its routes.
    instance: int | None = None


@dataclass(frozen=True, slots=True)
class PeerDown:
    peer: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RoutesAnnounced:
    """Prefixes (canonical strings) that share one set of attributes, as in one UPDATE."""

    peer: str
    attrs: PathAttributes
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoutesWithdrawn:
    peer: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EndOfRib:
    peer: str
    family: int


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """A new, valid config (checked by `mcrd.config.change_problems` against the running one)."""

    config: Config


Input = PeerUp | PeerDown | RoutesAnnounced | RoutesWithdrawn | EndOfRib | ConfigChanged
