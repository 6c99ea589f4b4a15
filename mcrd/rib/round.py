"""One processing round: what one input changed, noted as it happens, turned into `Effects` at its end."""

from __future__ import annotations

from mcrd.rib.adj_rib_in import WaitingRoom
from mcrd.rib.effects import Announce, Effects, Record, RouteLimitReached, Withdraw
from mcrd.rib.loc_rib import LocRib
from mcrd.rib.peer_state import PeerState


class Round:
    """`touched`: the peers whose Adj-RIB-In or Adj-RIB-Out changed, in the order they first did; `records`: what
    the round reports besides (sessions, config, ignored inputs). The changes themselves are kept by the parts
    they belong to (`before` of each RIB), which `finish` turns into net changes."""

    __slots__ = ("records", "touched")

    def __init__(self) -> None:
        self.touched: dict[str, PeerState] = {}
        self.records: list[Record] = []

    def finish(self, loc: LocRib, waiting: WaitingRoom) -> Effects:
        """The round's effects: per peer, what to withdraw and announce and what it had accepted; the kernel routes
        and best routes that changed; the route limit's refusals. Forgets the round, here and in every part."""
        announce: list[Announce] = []
        withdraw: list[Withdraw] = []
        records = self.records
        for peer in self.touched.values():
            gone, sent = peer.adj_out.changes(peer.key)
            if gone is not None:
                withdraw.append(gone)
            announce.extend(sent)
            received = peer.adj_in.changes(peer.key)
            if received is not None:
                records.append(received)
        fib_install, fib_remove = loc.fib_changes()
        best_added, best_removed = loc.best_changes()
        if waiting.refused_in_round:
            records.append(RouteLimitReached(waiting.limit, waiting.refused_in_round, len(waiting.queue)))
            waiting.refused_in_round = 0
        effects = Effects(
            announce=tuple(announce),
            withdraw=tuple(withdraw),
            fib_install=fib_install,
            fib_remove=fib_remove,
            best_added=best_added,
            best_removed=best_removed,
            records=tuple(records),
        )
        self.touched.clear()  # cleared, not replaced: the processor holds these two
        records.clear()
        return effects
