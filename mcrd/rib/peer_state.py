"""One BGP connection as the route processor keeps it: its policy, its session, its Adj-RIB-In and Adj-RIB-Out."""

from __future__ import annotations

from mcrd.policy.peer import PeerPolicy
from mcrd.policy.rejection import Rejection
from mcrd.rib.adj_rib_in import AdjRibIn
from mcrd.rib.adj_rib_out import AdjRibOut
from mcrd.rib.entry import RouteEntry, Source
from mcrd.route.attributes import PathAttributes


class PeerState:
    __slots__ = ("adj_in", "adj_out", "eor", "families", "ifname", "key", "policy", "refresh", "since", "source",
                 "state_reason")

    def __init__(self, policy: PeerPolicy, ifname: str) -> None:
        self.policy = policy
        self.key = policy.key  # a peer's key never changes: peers are found by it
        self.ifname = ifname  # the Linux device of its VXC (a VLAN device when the VXC is tagged)
        self.source: Source | None = None  # set while the session is up
        self.since = 0.0
        self.state_reason = ""
        self.eor: set[int] = set()
        # The families the session negotiated (None: not known, taken to carry the connection's own family).
        self.families: frozenset[int] | None = None
        self.refresh = ""  # route refresh the session negotiated (PeerUp.refresh): the edge answers requests
        self.adj_in = AdjRibIn()
        self.adj_out = AdjRibOut()

    @property
    def up(self) -> bool:
        return self.source is not None

    @property
    def carries(self) -> bool:
        """Whether routes can be sent to the peer: its session negotiated the connection's family (a peer with no
        Multiprotocol capability takes IPv4 unicast only, and only with exabgp_launch's fix 6)."""
        return self.families is None or self.policy.family in self.families

    # For readers (looking glass, metrics, tests): the RIBs' tables, not copies.

    @property
    def accepted(self) -> dict[str, RouteEntry]:
        return self.adj_in.accepted

    @property
    def rejected(self) -> dict[str, tuple[RouteEntry, Rejection]]:
        return self.adj_in.rejected

    @property
    def out(self) -> dict[str, PathAttributes]:
        return self.adj_out.routes
