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

    def reset(self) -> None:
        """The session is gone: nothing to withdraw from it, nothing remembered."""
        self.routes.clear()
        self.before.clear()
        self.memo = mcr.ExportMemo()

    def changes(self, key: str) -> tuple[Withdraw | None, list[Announce]]:
        """The round's net change of what the peer holds, as one withdrawal and one announcement per attributes
        object (one ExaBGP command each); forgets the round."""
        now = list(map(self.routes.get, self.before))
        if not any(self.before.values()):  # nothing sent before the round (the usual burst): maybe one group
            one = now[0] if now else None
            if one is not None and now.count(one) == len(now):  # count: `is` first, then == (equal is as good)
                prefixes = tuple(self.before)
                self.before.clear()
                return None, [Announce(key, one, prefixes)]
        elif not any(now) and all(self.before.values()):  # every prefix was sent before and is gone (withdrawals)
            prefixes = tuple(self.before)
            self.before.clear()
            return Withdraw(key, prefixes), []
        groups: dict[int, tuple[PathAttributes, list[str]]] = {}
        gone: list[str] = []
        get = self.routes.get
        last: PathAttributes | None = None  # successive prefixes mostly share their attributes: their group
        last_group: list[str] = []
        for prefix, before in self.before.items():
            sent = get(prefix)
            if sent is before:
                continue
            if sent is None:
                gone.append(prefix)
            elif before is not None and sent == before:
                continue
            elif sent is last:
                last_group.append(prefix)
            else:
                group = groups.get(id(sent))
                if group is None:
                    group = groups[id(sent)] = (sent, [prefix])
                else:
                    group[1].append(prefix)
                last, last_group = sent, group[1]
        self.before.clear()
        withdraw = Withdraw(key, tuple(gone)) if gone else None
        return withdraw, [Announce(key, attrs, tuple(prefixes)) for attrs, prefixes in groups.values()]
