"""Adj-RIB-In: what each peer sent, accepted or rejected, and the queue of routes the route limit keeps waiting."""

from __future__ import annotations

from itertools import compress
from operator import gt, lt

from mcrd.policy import mcr
from mcrd.policy.rejection import Rejection
from mcrd.rib.effects import ReceivedChanged
from mcrd.rib.entry import RouteEntry


class AdjRibIn:
    """One session's received routes: accepted by import policy (prefix -> entry) or rejected (prefix -> (entry,
    why)). Rejected routes are kept so that the looking glass can say why and a filter change can re-evaluate them
    without asking the peer again (docs/MCR-SEMANTICS.md 2.2, 2.6)."""

    __slots__ = ("accepted", "before", "rejected", "rejected_in_round")

    def __init__(self) -> None:
        self.accepted: dict[str, RouteEntry] = {}
        self.rejected: dict[str, tuple[RouteEntry, Rejection]] = {}
        # Per round: prefix -> accepted before the round, so that the round reports net changes only.
        self.before: dict[str, bool] = {}
        self.rejected_in_round = 0

    def changes(self, key: str) -> ReceivedChanged | None:
        """The round's net change of what is accepted from the peer; forgets the round."""
        if not self.before and not self.rejected_in_round:
            return None
        prefixes = list(self.before)  # C loops: a round changes up to thousands of prefixes
        has = list(map(self.accepted.__contains__, prefixes))
        had = self.before.values()  # bools
        accepted = tuple(compress(prefixes, map(gt, has, had)))
        removed = tuple(compress(prefixes, map(lt, has, had)))
        rejected, self.rejected_in_round = self.rejected_in_round, 0
        self.before.clear()
        if accepted or removed or rejected:
            return ReceivedChanged(key, accepted, removed, rejected)
        return None


class WaitingRoom:
    """The routes the route limit refused (`mcr.route_limit_refusal`), in arrival order, to be admitted as room
    frees up; and the counts the metrics and the round report."""

    __slots__ = ("limit", "queue", "refused_in_round", "refused_total")

    def __init__(self) -> None:
        self.limit = 0
        self.queue: dict[tuple[str, str], None] = {}  # (peer key, prefix), in arrival order
        self.refused_in_round = 0
        self.refused_total = 0

    def wait(self, key: str, prefix: str) -> None:
        """A route `mcr.route_limit_refusal` refused: it waits, counted once."""
        if (key, prefix) not in self.queue:  # a route already waiting keeps its place in the queue
            self.queue[key, prefix] = None
            self.refused_in_round += 1
            self.refused_total += 1

    def forget(self, key: str, prefix: str) -> None:
        self.queue.pop((key, prefix), None)

    def next(self, count: int) -> tuple[str, str] | None:
        """The oldest waiting (peer key, prefix) when a Loc-RIB of `count` prefixes has room for it."""
        if not self.queue or not mcr.has_room(count, self.limit):
            return None
        key = next(iter(self.queue))
        del self.queue[key]
        return key
