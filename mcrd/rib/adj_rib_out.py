"""Adj-RIB-Out: what each peer has been sent."""

from __future__ import annotations

from mcrd.policy import mcr
from mcrd.rib.effects import Announce, Withdraw
from mcrd.route.attributes import PathAttributes


class AdjRibOut:
    """One session's Adj-RIB-Out: prefix -> the attributes sent (`mcr.export_to` of the best route), and the
    memory `export_to` keeps for this target."""

    __slots__ = ("before", "memo", "routes")

    def __init__(self) -> None:
        self.routes: dict[str, PathAttributes] = {}
        # Per round: prefix -> what was sent before the round, so that the round sends net changes only.
        self.before: dict[str, PathAttributes | None] = {}
        self.memo = mcr.ExportMemo()

    def set(self, prefix: str, out: PathAttributes | None) -> bool:
        """Hold `out` (None: nothing) for `prefix`; True when this is the round's first change of the peer's."""
        current = self.routes.get(prefix)
        if out is current:
            return False
        first = prefix not in self.before
        if first:
            self.before[prefix] = current
        if out is None:
            del self.routes[prefix]
        else:
            self.routes[prefix] = out
        return first

    def reset(self) -> None:
        """The session is gone: nothing to withdraw from it, nothing remembered."""
        self.routes.clear()
        self.before.clear()
        self.memo = mcr.ExportMemo()

    def changes(self, key: str) -> tuple[Withdraw | None, list[Announce]]:
        """The round's net change of what the peer holds, as one withdrawal and one announcement per attributes
        object (one ExaBGP command each); forgets the round."""
        groups: dict[int, tuple[PathAttributes, list[str]]] = {}
        gone: list[str] = []
        routes = self.routes
        for prefix, before in self.before.items():
            sent = routes.get(prefix)
            if sent is before:
                continue
            if sent is None:
                gone.append(prefix)
            elif before is None or sent != before:
                group = groups.get(id(sent))
                if group is None:
                    groups[id(sent)] = (sent, [prefix])
                else:
                    group[1].append(prefix)
        self.before.clear()
        withdraw = Withdraw(key, tuple(gone)) if gone else None
        return withdraw, [Announce(key, attrs, tuple(prefixes)) for attrs, prefixes in groups.values()]
