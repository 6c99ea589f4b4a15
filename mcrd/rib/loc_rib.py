"""Loc-RIB: the best route of each prefix, why it won, the MCR's own routes, and what the kernel should hold."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import compress, repeat
from operator import and_, gt, is_, is_not, lt

from mcrd.config.devices import layer3_ifnames
from mcrd.config.model import Config
from mcrd.policy import mcr
from mcrd.rib import decision
from mcrd.rib.decision import Step
from mcrd.rib.effects import FibInstall, FibNextHop
from mcrd.rib.entry import RouteEntry, Source, address_key
from mcrd.route.attributes import PathAttributes


@dataclass(frozen=True, slots=True)
class StaticKey:
    prefix: str
    next_hop: str
    ifname: str


class Same(Enum):
    """What `LocRib.choose` answers when the best route did not change."""

    SAME = 0


# Module constants: an enum member read through its class costs a lookup on this hot path.
SAME = Same.SAME
_ONLY_CANDIDATE = Step.ONLY_CANDIDATE


class LocRib:
    """`best`: prefix -> the best route (docs/MCR-SEMANTICS.md 2.4); `reasons`: prefix -> the decision step that
    chose it, for prefixes with more than one candidate (absent: the only candidate); `fib`: prefix -> the next hop
    wanted in the kernel; `local`: the MCR's own routes (static, and connected when advertised) by prefix;
    `connected`: interface subnet -> Linux interface. `best_before` and `fib_before` hold what changed in the round,
    as it was before it."""

    __slots__ = ("_sources", "_statics", "best", "best_before", "connected", "fib", "fib_before", "local", "reasons")

    def __init__(self) -> None:
        self.best: dict[str, RouteEntry] = {}
        self.reasons: dict[str, Step] = {}
        self.fib: dict[str, FibNextHop] = {}
        self.local: dict[str, list[RouteEntry]] = {}
        self.connected: dict[str, str] = {}
        self._statics: dict[StaticKey, RouteEntry] = {}
        self._sources: dict[tuple[str, int], Source] = {}
        self.best_before: dict[str, RouteEntry | None] = {}
        self.fib_before: dict[str, FibNextHop | None] = {}

    def choose(self, prefix: str, learned: list[RouteEntry]) -> RouteEntry | Same | None:
        """Select the best of the MCR's own routes for `prefix` and `learned` (the accepted routes of the sessions
        that are up, in config order): the new best route (None: there is none), or `Same.SAME`."""
        local = self.local.get(prefix)
        if local or len(learned) > 1:
            new, reason = decision.select([*local, *learned] if local else learned)
            if reason is not _ONLY_CANDIDATE:
                self.reasons[prefix] = reason
            elif self.reasons:
                self.reasons.pop(prefix, None)
        else:
            new = learned[0] if learned else None
            if self.reasons:
                self.reasons.pop(prefix, None)
        best = self.best
        old = best.get(prefix)
        if new is old:
            return SAME
        if prefix not in self.best_before:
            self.best_before[prefix] = old
        if new is None:
            del best[prefix]
        else:
            best[prefix] = new
        self.set_fib(prefix, new)
        return new

    def drop(self, prefixes: Sequence[str]) -> list[str]:
        """`choose(prefix, [])` for distinct `prefixes` that have no route of the MCR's own, in C loops (the usual
        withdrawal leaves no candidate): the prefixes that lost their best route."""
        if self.reasons:
            deque(map(self.reasons.pop, prefixes, repeat(None)), maxlen=0)
        old = list(map(self.best.pop, prefixes, repeat(None)))
        had = list(map(is_not, old, repeat(None)))
        gone = list(compress(prefixes, had))
        deque(map(self.best_before.setdefault, gone, compress(old, had)), maxlen=0)
        hops = list(map(self.fib.pop, gone, repeat(None)))
        held = list(map(is_not, hops, repeat(None)))
        deque(map(self.fib_before.setdefault, compress(gone, held), compress(hops, held)), maxlen=0)
        return gone

    def reason(self, prefix: str) -> Step | None:
        """Why the best route of `prefix` won (None: there is none)."""
        if prefix not in self.best:
            return None
        return self.reasons.get(prefix, Step.ONLY_CANDIDATE)

    def set_fib(self, prefix: str, best: RouteEntry | None) -> None:
        want = best.fib if best is not None and mcr.in_kernel(prefix, self.connected) else None
        current = self.fib.get(prefix)
        if want is current or (want is not None and current is not None and want == current):  # no __eq__ with None
            return
        if prefix not in self.fib_before:
            self.fib_before[prefix] = current
        if want is None:
            del self.fib[prefix]
        else:
            self.fib[prefix] = want

    def apply_local_routes(self, config: Config, now: float) -> tuple[list[str], set[str]]:
        """Static routes (redistributed into BGP) and connected subnets, as a difference to what is there: the
        prefixes whose own routes changed, for the caller to choose their best route again, and the other subnets
        that became or stopped being connected, whose kernel route the caller sets again (`set_fib`)."""
        wanted: dict[StaticKey, tuple[str, int]] = {}
        connected: dict[str, str] = {}
        ifnames = layer3_ifnames(config)
        for v, vxc in enumerate(config.vxcs):
            for i, iface in enumerate(vxc.vrouter.interfaces):
                ifname = ifnames[v, i]
                for route in iface.ip_routes:
                    wanted[StaticKey(str(route.prefix), str(route.next_hop), ifname)] = ("static", route.prefix.version)
                for address in iface.ip_addresses:
                    connected.setdefault(str(address.network), ifname)
                    if config.mcr.advertise_connected:
                        wanted[StaticKey(str(address.network), "", ifname)] = ("connected", address.version)
        touched: set[str] = set()
        for key in [key for key in self._statics if key not in wanted]:
            entry = self._statics.pop(key)
            self.local[key.prefix].remove(entry)
            if not self.local[key.prefix]:
                del self.local[key.prefix]
            touched.add(key.prefix)
        for key, (kind, family) in wanted.items():
            if key in self._statics:
                continue
            hop = key.next_hop or ("0.0.0.0" if family == 4 else "::")
            attrs = PathAttributes(next_hop=hop, origin=mcr.STATIC_ORIGIN)
            entry = RouteEntry(self._source(kind, family), attrs, attrs, now, address_key(hop), key.ifname,
                               FibNextHop(hop, key.ifname))
            self._statics[key] = entry
            self.local.setdefault(key.prefix, []).append(entry)
            self.local[key.prefix].sort(key=lambda e: e.next_hop_key)
            touched.add(key.prefix)
        changed_connected = set(connected) ^ set(self.connected)
        self.connected = connected
        return sorted(touched), changed_connected - touched

    def _source(self, kind: str, family: int) -> Source:
        source = self._sources.get((kind, family))
        if source is None:
            source = self._sources[kind, family] = Source(kind, kind, True, 0, (0, 0))
        return source

    # --- the round's changes ---------------------------------------------------------------------------------

    def fib_changes(self) -> tuple[tuple[FibInstall, ...], tuple[str, ...]]:
        """The round's net change of the kernel routes wanted: installs grouped by next hop, and removals. In C loops
        but for the installs' grouping: a round changes up to thousands of prefixes, mostly all one way."""
        before = self.fib_before
        self.fib_before = {}
        prefixes = list(before)
        now = list(map(self.fib.get, prefixes))
        gone = list(map(is_, now, repeat(None)))
        removals = tuple(compress(prefixes, map(and_, gone, map(is_not, before.values(), repeat(None)))))
        installs: dict[FibNextHop, list[str]] = {}
        if not all(gone):
            for prefix, hop, was in zip(prefixes, now, before.values(), strict=True):
                if hop is None or hop is was or (was is not None and hop == was):
                    continue
                installs.setdefault(hop, []).append(prefix)
        return tuple(FibInstall(hop, tuple(group)) for hop, group in installs.items()), removals

    def best_changes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The round's prefixes that gained a best route and those that lost theirs."""
        before = self.best_before
        self.best_before = {}
        prefixes = list(before)
        has = list(map(self.best.__contains__, prefixes))
        had = list(map(is_not, before.values(), repeat(None)))
        return tuple(compress(prefixes, map(gt, has, had))), tuple(compress(prefixes, map(lt, has, had)))
