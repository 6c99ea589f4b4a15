"""The route processor: MCR semantics applied to BGP sessions, pure and synchronous.

It is given inputs (`mcrd.rib.inputs`) and answers each with `Effects`: per-peer announcements and withdrawals
grouped by identical attributes, kernel route changes, and records. No I/O, no logging, no clock: the time is
passed in. The update path follows OpenBGPD's `rde_update_update()`: keep the route as received (rejected ones
too, with the reason), run import policy (`mcr.import_verdict`), update the Loc-RIB and the best path of that
prefix only, then the Adj-RIB-Out of each other peer for that prefix only (`mcr.export_to`).

What it keeps lives in the parts named after it: each peer's `AdjRibIn` and `AdjRibOut` (`PeerState`), the
`LocRib` (best routes and why, the MCR's own routes, the kernel's), the route limit's `WaitingRoom`; a `Round`
collects what one input changed and turns it into `Effects`. One `RouteEntry` and one `PathAttributes` are shared
by all prefixes of an UPDATE.
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import itertools
import operator
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from mcrd.config.devices import peer_ifnames
from mcrd.config.model import Config
from mcrd.policy import mcr
from mcrd.policy.peer import compile_peers
from mcrd.policy.rejection import Rejection
from mcrd.rib.adj_rib_in import WaitingRoom
from mcrd.rib.decision import Step
from mcrd.rib.effects import ConfigApplied, Effects, FibNextHop, InputIgnored, SessionChanged
from mcrd.rib.entry import RouteEntry, Source, address_key
from mcrd.rib.inputs import ConfigChanged, EndOfRib, Input, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.loc_rib import SAME, LocRib
from mcrd.rib.peer_state import PeerState
from mcrd.rib.round import Round
from mcrd.route.attributes import PathAttributes

_INTERN_MAX = 4096
_NO_RUN = object()
_NO_SUCH_PEER = "no BGP connection has this peer address"


class RouteProcessor:
    """Feed it `handle(item, now)` for each input; the first must be a `ConfigChanged`."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._peers: dict[str, PeerState] = {}
        self._order: list[PeerState] = []
        self._up: list[PeerState] = []
        self._receivers: list[PeerState] = []  # the sessions up that carry their family: routes go to these
        self._candidates: list[dict[str, RouteEntry]] = []  # the accepted routes of the sessions up, in config order
        self._loc = LocRib()
        self._waiting = WaitingRoom()
        self._gate: dict[str, list[bool]] = {}  # source key or local family -> may export to target (changes)
        self._own = mcr.OwnAddresses()
        # Received attributes -> the one object used for all equal ones, so that routes of successive UPDATEs with
        # equal attributes share their export results (ExportMemo, Announce groups) and memory.
        self._interned: dict[PathAttributes, PathAttributes] = {}
        self._now = 0.0
        # The prefixes whose best route changed in this input, in order, and that route (None: none).
        self._changed: dict[str, RouteEntry | None] = {}
        self._round = Round()
        self._touched = self._round.touched  # the peers whose RIBs changed in this round

    # --- inputs -------------------------------------------------------------------------------------------

    def handle(self, item: Input, now: float) -> Effects:
        self._now = now
        if isinstance(item, ConfigChanged):
            self._apply_config(item.config)
        elif self._config is None:
            self._round.records.append(InputIgnored(type(item).__name__, "no config applied yet"))
        elif isinstance(item, RoutesAnnounced):
            self._announce(item)
        elif isinstance(item, RoutesWithdrawn):
            self._withdraw(item)
        elif isinstance(item, PeerUp):
            self._peer_up(item)
        elif isinstance(item, PeerDown):
            self._peer_down(item.peer, item.reason)
        elif isinstance(item, EndOfRib):
            peer = self._live_peer(item.peer, "EndOfRib")
            if peer is not None:
                peer.eor.add(item.family)
        self._admit_waiting()
        if self._changed:
            self._export_changes()
        return self._round.finish(self._loc, self._waiting)

    def _set_up(self) -> None:
        self._up = [p for p in self._order if p.up]
        self._receivers = [p for p in self._up if p.carries]
        self._candidates = [p.adj_in.accepted for p in self._up]

    def _live_peer(self, key: str, what: str) -> PeerState | None:
        peer = self._peers.get(key)
        if peer is None:
            self._round.records.append(InputIgnored(f"{what} from {key}", _NO_SUCH_PEER))
            return None
        if not peer.up:
            self._round.records.append(InputIgnored(f"{what} from {key}", "the session is not up"))
            return None
        return peer

    # --- Adj-RIB-In ---------------------------------------------------------------------------------------

    def _announce(self, routes: RoutesAnnounced) -> None:
        peer = self._live_peer(routes.peer, "routes")
        if peer is None:
            return
        policy, source, own = peer.policy, peer.source, self._own
        assert source is not None
        attrs = self._interned.get(routes.attrs)
        if attrs is None:
            if len(self._interned) >= _INTERN_MAX:
                self._interned.clear()
            attrs = self._interned[routes.attrs] = routes.attrs
        update = mcr.update_verdict(policy, attrs, own)  # what every prefix of the UPDATE shares
        entry = RouteEntry(source, attrs if isinstance(update, Rejection) else update, attrs, self._now,
                           _next_hop_key(attrs.next_hop), peer.ifname, FibNextHop(attrs.next_hop, peer.ifname))
        prefixes = routes.prefixes
        # The route limit refuses none of them when the table has room for them all: not asked per prefix then.
        limit = not mcr.room_for(len(self._loc.best), len(prefixes), self._waiting.limit)
        rejections = mcr.import_rejections(policy, prefixes, own, update)
        rib = peer.adj_in
        if limit or self._waiting.queue:  # the route limit or waiting routes: one at a time
            store = self._store
            for prefix, rejection in zip(prefixes, rejections, strict=True):
                store(peer, prefix, entry, rejection, limit)
            return
        # What `_store` does for each prefix, in one loop. Usually no other session has a route for these prefixes:
        # sets in C find those that have one, and only these look at every session's routes.
        accepted, before, rejected, key = rib.accepted, rib.before, rib.rejected, peer.key
        had_rejected = bool(rejected)  # a peer with routes its import policy refused (the usual case with a list)
        wanted = set(prefixes)
        others = set().union(*(candidates.keys() & wanted for candidates in self._candidates
                               if candidates is not accepted))
        choose, changed = self._loc.choose, self._changed
        for prefix, rejection in zip(prefixes, rejections, strict=True):
            was_accepted = accepted.pop(prefix, None)
            if had_rejected:
                rejected.pop(prefix, None)
            if prefix not in before:
                before[prefix] = was_accepted is not None
                self._touched[key] = peer
            if rejection is None:
                accepted[prefix] = entry
            else:
                rejected[prefix] = (entry, rejection)
                rib.rejected_in_round += 1
                if was_accepted is None:
                    continue
            if prefix in others:
                new = choose(prefix, [found for candidates in self._candidates
                                      if (found := candidates.get(prefix)) is not None])
            else:
                new = choose(prefix, [entry] if rejection is None else [])
            if new is not SAME:
                changed[prefix] = new

    def _store(self, peer: PeerState, prefix: str, entry: RouteEntry, rejection: Rejection | None,
               limit: bool = True) -> None:
        """Put one received route in the peer's Adj-RIB-In, accepted or rejected (by import policy or, when `limit`,
        the route limit), and choose the prefix's best route again if it matters."""
        rib, waiting = peer.adj_in, self._waiting
        was_accepted = rib.accepted.pop(prefix, None)
        if rib.rejected:
            rib.rejected.pop(prefix, None)
        if rejection is None and limit:
            best = self._loc.best
            rejection = mcr.route_limit_refusal(prefix in best, len(best), waiting.limit)
            if rejection is not None:
                waiting.wait(peer.key, prefix)
            elif waiting.queue:
                waiting.forget(peer.key, prefix)
        elif waiting.queue:
            waiting.forget(peer.key, prefix)
        if prefix not in rib.before:
            rib.before[prefix] = was_accepted is not None
            self._touched[peer.key] = peer
        if rejection is None:
            rib.accepted[prefix] = entry
            self._reselect(prefix)
        else:
            rib.rejected[prefix] = (entry, rejection)
            rib.rejected_in_round += 1
            if was_accepted is not None:
                self._reselect(prefix)

    def _withdraw(self, update: RoutesWithdrawn) -> None:
        peer = self._live_peer(update.peer, "withdrawals")
        if peer is None:
            return
        rib = peer.adj_in
        if rib.rejected:  # withdrawn rejected routes go (what `_remove` does); a prefix is accepted or rejected
            refused = rib.rejected.keys() & set(update.prefixes)
            for prefix in refused:
                del rib.rejected[prefix]
                self._waiting.forget(peer.key, prefix)
        accepted, before = rib.accepted, rib.before
        gone = list(filter(accepted.__contains__, dict.fromkeys(update.prefixes)))  # C loops, here and below
        if not gone:
            return
        self._touched[peer.key] = peer
        # What `_remove` does, for a whole UPDATE: note what was accepted before the round, then remove.
        collections.deque(map(before.setdefault, gone, itertools.repeat(True)), maxlen=0)
        collections.deque(map(accepted.__delitem__, gone), maxlen=0)
        # The usual withdrawal leaves no other candidate: sets in C find the prefixes that still have some.
        others = set().union(*(candidates.keys() & gone for candidates in self._candidates if candidates))
        loc, changed = self._loc, self._changed
        if not others and loc.local.keys().isdisjoint(gone):  # nothing to choose from: in bulk
            changed.update(dict.fromkeys(loc.drop(gone)))
            return
        choose = loc.choose
        for prefix in gone:
            new = choose(prefix, [found for candidates in self._candidates if (found := candidates.get(prefix))
                                  is not None] if prefix in others else [])
            if new is not SAME:
                changed[prefix] = new

    def _remove(self, peer: PeerState, prefix: str) -> None:
        rib = peer.adj_in
        if rib.rejected.pop(prefix, None) is not None:
            self._waiting.forget(peer.key, prefix)
            return
        if prefix not in rib.accepted:
            return
        if prefix not in rib.before:
            rib.before[prefix] = True
            self._touched[peer.key] = peer
        del rib.accepted[prefix]
        self._reselect(prefix)

    def _admit_waiting(self) -> None:
        best = self._loc.best
        while (waiting := self._waiting.next(len(best))) is not None:
            key, prefix = waiting
            peer = self._peers.get(key)
            if peer is None or prefix not in peer.adj_in.rejected:
                continue
            rib = peer.adj_in
            entry, _ = rib.rejected.pop(prefix)
            if prefix not in rib.before:
                rib.before[prefix] = False
                self._touched[key] = peer
            rib.accepted[prefix] = entry
            self._reselect(prefix)

    def _reimport(self, peer: PeerState) -> None:
        """Run import policy again over everything the peer sent (a filter change, no session reset)."""
        policy, own, rib = peer.policy, self._own, peer.adj_in
        stored = [(prefix, entry, True) for prefix, entry in rib.accepted.items()]
        stored += [(prefix, entry, False) for prefix, (entry, _) in rib.rejected.items()]
        # id(entry) -> (entry to use, update_verdict): once per UPDATE, as on arrival
        renewed: dict[int, tuple[RouteEntry, PathAttributes | Rejection]] = {}
        for prefix, entry, was_accepted in stored:
            got = renewed.get(id(entry))
            if got is None:
                attrs = entry.received
                update = mcr.update_verdict(policy, attrs, own)
                effective = attrs if isinstance(update, Rejection) else update
                fresh = entry
                if effective != entry.attrs or peer.ifname != entry.ifname:
                    fresh = RouteEntry(entry.source, effective, attrs, entry.since, entry.next_hop_key,
                                       peer.ifname, FibNextHop(attrs.next_hop, peer.ifname))
                got = renewed[id(entry)] = (fresh, update)
            fresh, update = got
            verdict = mcr.import_verdict(policy, prefix, fresh.received, own, update)
            rejection = verdict if isinstance(verdict, Rejection) else None
            if rejection is None and was_accepted and fresh is entry:
                continue  # accepted before and after, same entry: nothing to do
            self._store(peer, prefix, fresh, rejection)

    # --- sessions -----------------------------------------------------------------------------------------

    def _peer_up(self, up: PeerUp) -> None:
        peer = self._peers.get(up.peer)
        records = self._round.records
        if peer is None:
            records.append(InputIgnored(f"session up with {up.peer}", _NO_SUCH_PEER))
            return
        if peer.policy.shutdown:
            records.append(InputIgnored(f"session up with {up.peer}", "the connection is shut down"))
            return
        if peer.up:
            self._peer_down(peer.key, "session re-established")
        try:
            router_id = int(ipaddress.IPv4Address(up.router_id))
        except ValueError:
            router_id = 0
        policy = peer.policy
        carried, peer.families, peer.refresh = peer.carries, up.families, up.refresh
        if peer.carries != carried:
            self._rebuild_gate()  # noted now, so that the next config sees no change in it
        peer.source = Source(policy.key, "bgp", not policy.ibgp, router_id, address_key(policy.key), policy)
        peer.since, peer.state_reason = self._now, ""
        peer.eor.clear()
        self._set_up()
        records.append(SessionChanged(peer.key, policy.vxc, "UP"))
        if peer.carries:  # a peer that cannot carry its family is sent nothing
            self._refresh_out(peer, list(self._loc.best))

    def _peer_down(self, key: str, reason: str) -> None:
        peer = self._peers.get(key)
        if peer is None or not peer.up:
            if peer is None:
                self._round.records.append(InputIgnored(f"session down with {key}", _NO_SUCH_PEER))
            return
        peer.source = None
        peer.since, peer.state_reason = self._now, reason
        peer.adj_out.reset()
        self._set_up()
        self._round.records.append(SessionChanged(key, peer.policy.vxc, "DOWN", reason))
        rib = peer.adj_in
        for prefix in rib.rejected:
            self._waiting.forget(key, prefix)
        rib.rejected.clear()
        for prefix in list(rib.accepted):
            self._remove(peer, prefix)

    # --- Loc-RIB and Adj-RIB-Out --------------------------------------------------------------------------------

    def _reselect(self, prefix: str) -> None:
        """Choose the best route of `prefix` again; when it changed, the prefix is exported again to every peer
        that is up at the end of the input (`_export_changes`)."""
        learned = [entry for accepted in self._candidates if (entry := accepted.get(prefix)) is not None]
        new = self._loc.choose(prefix, learned)
        if new is not SAME:
            self._changed[prefix] = new  # choose is the only writer of the best routes: this is the latest

    def _export_changes(self) -> None:
        """What every peer that is up holds for the prefixes whose best route changed in this input: the prefixes
        grouped in runs that share their best route (the prefixes of one UPDATE), then one pass per target over the
        runs, so that each run is exported once per target and its prefixes set in bulk (`_export_run`)."""
        runs: list[tuple[RouteEntry | None, list[str]]] = []
        last: object = _NO_RUN
        for prefix, entry in self._changed.items():
            if entry is not last:
                runs.append((entry, [prefix]))
                last = entry
            else:
                runs[-1][1].append(prefix)
        self._changed.clear()
        for target in self._receivers:
            for entry, prefixes in runs:
                if entry is not None and mcr.export_by_prefix(entry.source.policy, target.policy):
                    self._refresh_out(target, prefixes)
                else:
                    self._export_run(target, entry, prefixes)

    def _export_run(self, target: PeerState, entry: RouteEntry | None, prefixes: list[str]) -> None:
        """Set what `target` holds for `prefixes`, whose best route is `entry` (None: none) and exports the same
        for all of them (`mcr.export_by_prefix`). In bulk when none of them changed before in this round (the usual
        burst): withdrawals, and new routes (none of them sent before); one at a time otherwise."""
        rib = target.adj_out
        out = None if entry is None else mcr.export_to(entry.source.policy, target.policy, prefixes[0], entry.attrs,
                                                         rib.memo)
        routes, before = rib.routes, rib.before
        if before.keys().isdisjoint(prefixes):  # none changed before in this round: in bulk
            if out is None:  # withdrawn: what was sent is what the round started with (None: never sent)
                sent = list(map(routes.pop, prefixes, itertools.repeat(None)))
                if any(map(operator.is_not, sent, itertools.repeat(None))):  # C loops; count(None) calls __eq__
                    before.update(zip(prefixes, sent, strict=True))
                    self._touched[target.key] = target
                return
            if not any(map(routes.__contains__, prefixes)):  # new routes
                before.update(dict.fromkeys(prefixes))
                routes.update(dict.fromkeys(prefixes, out))
                self._touched[target.key] = target
                return
        first = False
        for prefix in prefixes:
            current = routes.get(prefix)
            if out is current:
                continue
            if prefix not in before:
                before[prefix] = current
                first = True
            if out is None:
                del routes[prefix]
            else:
                routes[prefix] = out
        if first:
            self._touched[target.key] = target

    def _refresh_out(self, target: PeerState, prefixes: Iterable[str]) -> None:
        """Export again to `target` the best routes of `prefixes` (changed best routes, a new session, a changed
        policy), noting in its Adj-RIB-Out what it held before the round. This loop runs once per target and prefix
        of a new session or a changed policy."""
        best, policy, rib, export_to = self._loc.best, target.policy, target.adj_out, mcr.export_to
        routes, before, memo = rib.routes, rib.before, rib.memo
        last: RouteEntry | None = None  # the last route whose export holds for all its prefixes, and that export
        last_out: PathAttributes | None = None
        first = False
        for prefix in prefixes:
            entry = best.get(prefix)
            if entry is None:
                out = None
            elif entry is last:
                out = last_out
            else:
                source = entry.source.policy
                out = export_to(source, policy, prefix, entry.attrs, memo)
                if not mcr.export_by_prefix(source, policy):
                    last, last_out = entry, out
            current = routes.get(prefix)
            if out is current:
                continue
            if prefix not in before:
                before[prefix] = current
                first = True
            if out is None:
                del routes[prefix]
            else:
                routes[prefix] = out
        if first:
            self._touched[target.key] = target

    # --- config -------------------------------------------------------------------------------------------------

    def _apply_config(self, config: Config) -> None:
        old_policies = {key: peer.policy for key, peer in self._peers.items()}
        new_policies = {policy.key: policy for policy in compile_peers(config)}
        removed = [key for key in old_policies if key not in new_policies]
        for key in removed:
            self._peer_down(key, "removed from the config")
            del self._peers[key]
        self._config = config
        own = mcr.own_of(config)
        own_changed = own != self._own
        self._own = own
        self._waiting.limit = config.mcr.max_routes
        ifnames = peer_ifnames(config)
        self._order = []
        for policy in new_policies.values():
            peer = self._peers.get(policy.key)
            if peer is None:
                peer = self._peers[policy.key] = PeerState(policy, ifnames[policy.key])
            peer.policy, peer.ifname = policy, ifnames[policy.key]
            peer.adj_out.memo = mcr.ExportMemo()  # policies changed: what export_to remembered may not hold
            if peer.source is not None:
                peer.source.policy = policy
            self._order.append(peer)
        self._set_up()
        gate_changed = self._rebuild_gate()
        for peer in self._order:
            if peer.up and peer.policy.shutdown:
                self._peer_down(peer.key, "shut down by config")
        touched, connected = self._loc.apply_local_routes(config, self._now)
        for prefix in touched:
            self._reselect(prefix)
        for prefix in connected:
            self._loc.set_fib(prefix, self._loc.best.get(prefix))
        reevaluated = []
        for peer in self._up:
            old = old_policies.get(peer.key)
            if old is not None and (own_changed or old.import_signature() != peer.policy.import_signature()):
                self._reimport(peer)
                reevaluated.append(peer.key)
        best = self._loc.best
        for peer in self._receivers:
            old = old_policies.get(peer.key)
            if gate_changed or old is None or old.export_signature() != peer.policy.export_signature():
                self._refresh_out(peer, [*best, *(p for p in peer.adj_out.routes if p not in best)])
        added = tuple(key for key in new_policies if key not in old_policies)
        self._round.records.append(ConfigApplied(added, tuple(removed), tuple(reevaluated)))

    def _rebuild_gate(self) -> bool:
        """Whether which sources may send to which targets at all changed (2.3 steps 1-2, and the targets whose
        session cannot carry their family): then every Adj-RIB-Out is computed again after a new config."""
        targets = [(peer.policy, peer.carries) for peer in self._order]
        gate: dict[str, list[bool]] = {}
        for peer in self._order:
            gate[peer.key] = [carries and mcr.may_export(peer.policy, target) for target, carries in targets]
        for family in (4, 6):
            gate[f"local{family}"] = [carries and target.family == family and mcr.may_export(None, target)
                                      for target, carries in targets]
        changed = gate != self._gate
        self._gate = gate
        return changed

    # --- read-only views (looking glass, tests) ------------------------------------------------------------------

    @property
    def config(self) -> Config | None:
        return self._config

    def peers(self) -> list[PeerState]:
        return list(self._order)

    def peer(self, key: str) -> PeerState | None:
        return self._peers.get(key)

    # Read-only views, not copies: a scrape or a looking-glass answer must not copy 100k entries. They change with
    # the next input, so a reader finishes with one before it yields to the event loop.

    def best(self) -> Mapping[str, RouteEntry]:
        return MappingProxyType(self._loc.best)

    def best_reason(self, prefix: str) -> Step | None:
        """The decision step that made the best route of `prefix` win (None: no best route)."""
        return self._loc.reason(prefix)

    def fib(self) -> Mapping[str, FibNextHop]:
        return MappingProxyType(self._loc.fib)

    def connected(self) -> Mapping[str, str]:
        return MappingProxyType(self._loc.connected)

    def advertised(self, key: str) -> Mapping[str, PathAttributes]:
        """A peer's Adj-RIB-Out: prefix -> the attributes sent (empty for an unknown peer)."""
        peer = self._peers.get(key)
        return MappingProxyType({} if peer is None else peer.adj_out.routes)

    @property
    def route_count(self) -> int:
        return len(self._loc.best)

    @property
    def refused_total(self) -> int:
        return self._waiting.refused_total

    @property
    def waiting_for_room(self) -> int:
        return len(self._waiting.queue)


@functools.lru_cache(maxsize=1024)
def _next_hop_key(address: str) -> tuple[int, int]:
    return address_key(address)
