"""The route processor: MCR semantics applied to BGP sessions, pure and synchronous.

It is told events (`mcrd.rib.events`) and answers each with `Effects`: per-peer announcements and withdrawals
grouped by identical attributes, kernel route changes, and records. No I/O, no logging, no clock: the time is
passed in. The update path follows OpenBGPD's `rde_update_update()`: keep the route as received (rejected ones
too, with the reason), run import policy, update the Loc-RIB and the best path of that prefix only, then the
Adj-RIB-Out of each other peer for that prefix only.

State, per peer: `accepted` (prefix -> entry after import policy), `rejected` (prefix -> (entry, why)), `out`
(Adj-RIB-Out: prefix -> attributes sent). Global: `best` (Loc-RIB: prefix -> best entry), `fib` (prefix -> next
hop wanted in the kernel). One `RouteEntry` and one `PathAttributes` are shared by all prefixes of an UPDATE.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mcrd.config.model import Config
from mcrd.iface.plan import layer3_ifnames, peer_ifnames
from mcrd.policy import mcr
from mcrd.policy.peer import PeerPolicy, compile_peers
from mcrd.policy.rejection import Rejection
from mcrd.rib import decision
from mcrd.rib.effects import (
    Announce,
    ConfigApplied,
    Effects,
    EventIgnored,
    FibInstall,
    FibNextHop,
    ReceivedChanged,
    Record,
    RouteLimitReached,
    SessionChanged,
    Withdraw,
)
from mcrd.rib.entry import RouteEntry, Source, address_key
from mcrd.rib.events import ConfigChanged, EndOfRib, Event, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import PathAttributes

_INTERN_MAX = 4096
_NO_SUCH_PEER = "no BGP connection has this peer address"


class PeerState:
    """One BGP connection's routes and session state."""

    __slots__ = (
        "accepted",
        "eor",
        "families",
        "ifname",
        "key",
        "memo",
        "out",
        "out_orig",
        "policy",
        "recv_orig",
        "recv_rejected",
        "refresh",
        "rejected",
        "since",
        "slot",
        "source",
        "state_reason",
    )

    def __init__(self, policy: PeerPolicy, slot: int, ifname: str) -> None:
        self.policy = policy
        self.key = policy.key  # a peer's key never changes: peers are found by it
        self.slot = slot
        self.ifname = ifname  # the Linux device of its VXC (a VLAN device when the VXC is tagged)
        self.source: Source | None = None  # set while the session is up
        self.since = 0.0
        self.state_reason = ""
        self.eor: set[int] = set()
        # The families the session negotiated (None: not known, taken to carry the connection's own family).
        self.families: frozenset[int] | None = None
        self.refresh = ""  # route refresh the session negotiated (PeerUp.refresh): the edge answers requests
        self.accepted: dict[str, RouteEntry] = {}
        self.rejected: dict[str, tuple[RouteEntry, Rejection]] = {}
        self.out: dict[str, PathAttributes] = {}
        # Per round: prefix -> what was sent / accepted before the round, to report net changes only.
        self.out_orig: dict[str, PathAttributes | None] = {}
        self.recv_orig: dict[str, bool] = {}
        self.recv_rejected = 0
        self.memo = mcr.ExportMemo()  # export_to's memory for this target, for one config and session

    @property
    def up(self) -> bool:
        return self.source is not None

    @property
    def carries(self) -> bool:
        """Whether routes can be sent to the peer: its session negotiated the connection's family (a peer with no
        Multiprotocol capability takes IPv4 unicast only, and only with exabgp_launch's fix 6)."""
        return self.families is None or self.policy.family in self.families


@dataclass(frozen=True, slots=True)
class StaticKey:
    prefix: str
    next_hop: str
    ifname: str


class RouteProcessor:
    """Feed it `handle(event, now)`; the first event must be a `ConfigChanged`."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._peers: dict[str, PeerState] = {}
        self._order: list[PeerState] = []
        self._up: list[PeerState] = []
        self._receivers: list[PeerState] = []  # the sessions up that carry their family: routes go to these
        self._best: dict[str, RouteEntry] = {}
        self._fib: dict[str, FibNextHop] = {}
        self._local: dict[str, list[RouteEntry]] = {}  # static (and, if advertised, connected) routes
        self._statics: dict[StaticKey, RouteEntry] = {}
        self._connected: dict[str, str] = {}  # interface subnet -> Linux interface
        self._local_sources: dict[tuple[str, int], Source] = {}
        self._gate: dict[str, list[bool]] = {}  # source key or local family -> may export to target (changes)
        self._max_routes = 0
        self._own = mcr.OwnAddresses()
        self._waiting: dict[tuple[str, str], None] = {}  # refused (peer, prefix), in arrival order
        self._refused_total = 0
        # Received attributes -> the one object used for all equal ones, so that routes of successive UPDATEs with
        # equal attributes share their export results (ExportMemo, Announce groups) and memory.
        self._interned: dict[PathAttributes, PathAttributes] = {}
        # Per round.
        self._now = 0.0
        self._best_orig: dict[str, RouteEntry | None] = {}
        self._fib_orig: dict[str, FibNextHop | None] = {}
        self._touched: dict[str, PeerState] = {}
        self._records: list[Record] = []
        self._refused_round = 0

    # --- events -------------------------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> Effects:
        self._now = now
        if isinstance(event, ConfigChanged):
            self._apply_config(event.config)
        elif self._config is None:
            self._records.append(EventIgnored(type(event).__name__, "no config applied yet"))
        elif isinstance(event, RoutesAnnounced):
            self._announce(event)
        elif isinstance(event, RoutesWithdrawn):
            self._withdraw(event)
        elif isinstance(event, PeerUp):
            self._peer_up(event)
        elif isinstance(event, PeerDown):
            self._peer_down(event.peer, event.reason)
        elif isinstance(event, EndOfRib):
            peer = self._live_peer(event.peer, "EndOfRib")
            if peer is not None:
                peer.eor.add(event.family)
        self._admit_waiting()
        return self._finish_round()

    def _set_up(self) -> None:
        self._up = [p for p in self._order if p.up]
        self._receivers = [p for p in self._up if p.carries]

    def _live_peer(self, key: str, what: str) -> PeerState | None:
        peer = self._peers.get(key)
        if peer is None:
            self._records.append(EventIgnored(f"{what} from {key}", _NO_SUCH_PEER))
            return None
        if not peer.up:
            self._records.append(EventIgnored(f"{what} from {key}", "the session is not up"))
            return None
        return peer

    def _announce(self, event: RoutesAnnounced) -> None:
        peer = self._live_peer(event.peer, "routes")
        if peer is None:
            return
        policy, source, own = peer.policy, peer.source, self._own
        assert source is not None
        attrs = self._interned.get(event.attrs)
        if attrs is None:
            if len(self._interned) >= _INTERN_MAX:
                self._interned.clear()
            attrs = self._interned[event.attrs] = event.attrs
        update = mcr.update_verdict(policy, attrs, own)  # what every prefix of the UPDATE shares
        entry = RouteEntry(source, attrs if isinstance(update, Rejection) else update, attrs, self._now,
                           _next_hop_key(attrs.next_hop), peer.ifname, FibNextHop(attrs.next_hop, peer.ifname))
        import_verdict = mcr.import_verdict
        for prefix in event.prefixes:
            verdict = import_verdict(policy, prefix, attrs, own, update)
            self._store(peer, prefix, entry, verdict if isinstance(verdict, Rejection) else None)

    def _store(self, peer: PeerState, prefix: str, entry: RouteEntry, rejection: Rejection | None) -> None:
        """Put one received route in the peer's Adj-RIB-In, accepted or rejected, and reselect if it matters."""
        was_accepted = peer.accepted.pop(prefix, None)
        peer.rejected.pop(prefix, None)
        key = (peer.key, prefix)
        limited = rejection is None and (
            rejection := mcr.route_limit_refusal(prefix in self._best, len(self._best), self._max_routes)
        ) is not None
        if limited:
            if key not in self._waiting:  # a route already waiting keeps its place in the queue
                self._waiting[key] = None
                self._refused_round += 1
                self._refused_total += 1
        else:
            self._waiting.pop(key, None)
        if prefix not in peer.recv_orig:
            peer.recv_orig[prefix] = was_accepted is not None
            self._touched[peer.key] = peer
        if rejection is None:
            peer.accepted[prefix] = entry
            self._reselect(prefix)
        else:
            peer.rejected[prefix] = (entry, rejection)
            peer.recv_rejected += 1
            if was_accepted is not None:
                self._reselect(prefix)

    def _withdraw(self, event: RoutesWithdrawn) -> None:
        peer = self._live_peer(event.peer, "withdrawals")
        if peer is None:
            return
        for prefix in event.prefixes:
            self._remove(peer, prefix)

    def _remove(self, peer: PeerState, prefix: str) -> None:
        if peer.rejected.pop(prefix, None) is not None:
            self._waiting.pop((peer.key, prefix), None)
            return
        if prefix not in peer.accepted:
            return
        if prefix not in peer.recv_orig:
            peer.recv_orig[prefix] = True
            self._touched[peer.key] = peer
        del peer.accepted[prefix]
        self._reselect(prefix)

    def _peer_up(self, event: PeerUp) -> None:
        peer = self._peers.get(event.peer)
        if peer is None:
            self._records.append(EventIgnored(f"session up with {event.peer}", _NO_SUCH_PEER))
            return
        if peer.policy.shutdown:
            self._records.append(EventIgnored(f"session up with {event.peer}", "the connection is shut down"))
            return
        if peer.up:
            self._peer_down(peer.key, "session re-established")
        try:
            router_id = int(ipaddress.IPv4Address(event.router_id))
        except ValueError:
            router_id = 0
        policy = peer.policy
        carried, peer.families, peer.refresh = peer.carries, event.families, event.refresh
        if peer.carries != carried:
            self._rebuild_gate()  # noted now, so that the next config sees no change in it
        peer.source = Source(policy.key, "bgp", not policy.ibgp, router_id, address_key(policy.key), policy)
        peer.since, peer.state_reason = self._now, ""
        peer.eor.clear()
        self._set_up()
        self._records.append(SessionChanged(peer.key, policy.vxc, "UP"))
        if peer.carries:  # a peer that cannot carry its family is sent nothing
            self._refresh_out(peer, list(self._best))

    def _peer_down(self, key: str, reason: str) -> None:
        peer = self._peers.get(key)
        if peer is None or not peer.up:
            if peer is None:
                self._records.append(EventIgnored(f"session down with {key}", _NO_SUCH_PEER))
            return
        peer.source = None
        peer.since, peer.state_reason = self._now, reason
        peer.out.clear()  # nothing to withdraw from a peer that is gone
        peer.out_orig.clear()
        peer.memo = mcr.ExportMemo()
        self._set_up()
        self._records.append(SessionChanged(key, peer.policy.vxc, "DOWN", reason))
        for prefix in list(peer.rejected):
            self._waiting.pop((key, prefix), None)
        peer.rejected.clear()
        for prefix in list(peer.accepted):
            self._remove(peer, prefix)

    # --- Loc-RIB, export, FIB --------------------------------------------------------------------------------

    def _candidates(self, prefix: str) -> Iterator[RouteEntry]:
        local = self._local.get(prefix)
        if local:
            yield from local
        for peer in self._up:
            entry = peer.accepted.get(prefix)
            if entry is not None:
                yield entry

    def _reselect(self, prefix: str) -> None:
        old = self._best.get(prefix)
        if prefix in self._local:
            new, _ = decision.select(self._candidates(prefix))
        else:
            found = [entry for peer in self._up if (entry := peer.accepted.get(prefix)) is not None]
            if len(found) > 1:
                new, _ = decision.select(found)
            else:
                new = found[0] if found else None
        if new is old:
            return
        if prefix not in self._best_orig:
            self._best_orig[prefix] = old
        if new is None:
            del self._best[prefix]
        else:
            self._best[prefix] = new
        self._set_fib(prefix, new)
        touched = self._touched
        if new is None:
            for target in self._receivers:
                sent = target.out.pop(prefix, None)
                if sent is not None and prefix not in target.out_orig:
                    target.out_orig[prefix] = sent
                    touched[target.key] = target
            return
        # _set_out inlined: this loop runs once per target for every change of a best route.
        source, attrs = new.source.policy, new.attrs
        export_to = mcr.export_to
        for target in self._receivers:
            out = export_to(source, target.policy, prefix, attrs, target.memo)
            current = target.out.get(prefix)
            if out is current:
                continue
            if prefix not in target.out_orig:
                target.out_orig[prefix] = current
                touched[target.key] = target
            if out is None:
                del target.out[prefix]
            else:
                target.out[prefix] = out

    def _set_out(self, target: PeerState, prefix: str, out: PathAttributes | None) -> None:
        current = target.out.get(prefix)
        if out is current:
            return
        if prefix not in target.out_orig:
            target.out_orig[prefix] = current
            self._touched[target.key] = target
        if out is None:
            del target.out[prefix]
        else:
            target.out[prefix] = out

    def _refresh_out(self, target: PeerState, prefixes: Iterable[str]) -> None:
        best, policy, memo, export_to = self._best, target.policy, target.memo, mcr.export_to
        for prefix in prefixes:
            entry = best.get(prefix)
            out = None if entry is None else export_to(entry.source.policy, policy, prefix, entry.attrs, memo)
            self._set_out(target, prefix, out)

    def _set_fib(self, prefix: str, best: RouteEntry | None) -> None:
        want = best.fib if best is not None and mcr.in_kernel(prefix, self._connected) else None
        current = self._fib.get(prefix)
        if want is current or want == current:
            return
        if prefix not in self._fib_orig:
            self._fib_orig[prefix] = current
        if want is None:
            del self._fib[prefix]
        else:
            self._fib[prefix] = want

    def _admit_waiting(self) -> None:
        while self._waiting and mcr.has_room(len(self._best), self._max_routes):
            key, prefix = next(iter(self._waiting))
            del self._waiting[key, prefix]
            peer = self._peers.get(key)
            if peer is None or prefix not in peer.rejected:
                continue
            entry, _ = peer.rejected.pop(prefix)
            if prefix not in peer.recv_orig:
                peer.recv_orig[prefix] = False
                self._touched[key] = peer
            peer.accepted[prefix] = entry
            self._reselect(prefix)

    # --- config ----------------------------------------------------------------------------------------------

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
        self._max_routes = config.mcr.max_routes
        ifnames = peer_ifnames(config)
        self._order = []
        for slot, policy in enumerate(new_policies.values()):
            peer = self._peers.get(policy.key)
            if peer is None:
                peer = self._peers[policy.key] = PeerState(policy, slot, ifnames[policy.key])
            peer.policy, peer.slot, peer.ifname = policy, slot, ifnames[policy.key]
            peer.memo = mcr.ExportMemo()  # policies changed: what export_to remembered may not hold
            if peer.source is not None:
                peer.source.policy = policy
            self._order.append(peer)
        self._set_up()
        gate_changed = self._rebuild_gate()
        for peer in self._order:
            if peer.up and peer.policy.shutdown:
                self._peer_down(peer.key, "shut down by config")
        self._apply_local_routes(config)
        reevaluated = []
        for peer in self._up:
            old = old_policies.get(peer.key)
            if old is not None and (own_changed or old.import_signature() != peer.policy.import_signature()):
                self._reimport(peer)
                reevaluated.append(peer.key)
        for peer in self._receivers:
            old = old_policies.get(peer.key)
            if gate_changed or old is None or old.export_signature() != peer.policy.export_signature():
                self._refresh_out(peer, [*self._best, *(p for p in peer.out if p not in self._best)])
        added = tuple(key for key in new_policies if key not in old_policies)
        self._records.append(ConfigApplied(added, tuple(removed), tuple(reevaluated)))

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

    def _local_source(self, kind: str, family: int) -> Source:
        source = self._local_sources.get((kind, family))
        if source is None:
            source = self._local_sources[kind, family] = Source(kind, kind, True, 0, (0, 0))
        return source

    def _apply_local_routes(self, config: Config) -> None:
        """Static routes (redistributed into BGP) and connected subnets, as a difference to what is there."""
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
            self._local[key.prefix].remove(entry)
            if not self._local[key.prefix]:
                del self._local[key.prefix]
            touched.add(key.prefix)
        for key, (kind, family) in wanted.items():
            if key in self._statics:
                continue
            hop = key.next_hop or ("0.0.0.0" if family == 4 else "::")
            attrs = PathAttributes(next_hop=hop, origin=mcr.STATIC_ORIGIN)
            entry = RouteEntry(self._local_source(kind, family), attrs, attrs, self._now, address_key(hop),
                               key.ifname, FibNextHop(hop, key.ifname))
            self._statics[key] = entry
            self._local.setdefault(key.prefix, []).append(entry)
            self._local[key.prefix].sort(key=lambda e: e.next_hop_key)
            touched.add(key.prefix)
        changed_connected = set(connected) ^ set(self._connected)
        self._connected = connected
        for prefix in sorted(touched):
            self._reselect(prefix)
        for prefix in changed_connected - touched:
            self._set_fib(prefix, self._best.get(prefix))

    def _reimport(self, peer: PeerState) -> None:
        """Run import policy again over everything the peer sent (a filter change, no session reset)."""
        policy, own = peer.policy, self._own
        stored = [(prefix, entry, True) for prefix, entry in peer.accepted.items()]
        stored += [(prefix, entry, False) for prefix, (entry, _) in peer.rejected.items()]
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

    # --- results ---------------------------------------------------------------------------------------------

    def _finish_round(self) -> Effects:
        announce: list[Announce] = []
        withdraw: list[Withdraw] = []
        records = self._records
        for peer in self._touched.values():
            groups: dict[int, tuple[PathAttributes, list[str]]] = {}
            gone: list[str] = []
            out = peer.out
            for prefix, before in peer.out_orig.items():
                sent = out.get(prefix)
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
            peer.out_orig.clear()
            if gone:
                withdraw.append(Withdraw(peer.key, tuple(gone)))
            announce.extend(Announce(peer.key, attrs, tuple(prefixes)) for attrs, prefixes in groups.values())
            if peer.recv_orig or peer.recv_rejected:
                now_accepted = peer.accepted
                accepted: list[str] = []
                removed: list[str] = []
                for p, was in peer.recv_orig.items():
                    if was:
                        if p not in now_accepted:
                            removed.append(p)
                    elif p in now_accepted:
                        accepted.append(p)
                if accepted or removed or peer.recv_rejected:
                    records.append(ReceivedChanged(peer.key, tuple(accepted), tuple(removed), peer.recv_rejected))
                peer.recv_orig.clear()
                peer.recv_rejected = 0
        installs: dict[FibNextHop, list[str]] = {}
        removals: list[str] = []
        for prefix, hop_before in self._fib_orig.items():
            now_hop = self._fib.get(prefix)
            if now_hop == hop_before:
                continue
            if now_hop is None:
                removals.append(prefix)
            else:
                installs.setdefault(now_hop, []).append(prefix)
        best = self._best
        best_added: list[str] = []
        best_removed: list[str] = []
        for p, old in self._best_orig.items():
            if old is None:
                if p in best:
                    best_added.append(p)
            elif p not in best:
                best_removed.append(p)
        if self._refused_round:
            records.append(RouteLimitReached(self._max_routes, self._refused_round, len(self._waiting)))
        effects = Effects(
            announce=tuple(announce),
            withdraw=tuple(withdraw),
            fib_install=tuple(FibInstall(hop, tuple(prefixes)) for hop, prefixes in installs.items()),
            fib_remove=tuple(removals),
            best_added=tuple(best_added),
            best_removed=tuple(best_removed),
            records=tuple(records),
        )
        self._touched = {}
        self._records = []
        self._fib_orig = {}
        self._best_orig = {}
        self._refused_round = 0
        return effects

    # --- read-only views (looking glass, tests) ------------------------------------------------------------------

    @property
    def config(self) -> Config | None:
        return self._config

    def peers(self) -> list[PeerState]:
        return list(self._order)

    def peer(self, key: str) -> PeerState | None:
        return self._peers.get(key)

    # Read-only views, not copies: a scrape or a looking-glass answer must not copy 100k entries. They change with
    # the next event, so a reader finishes with one before it yields to the event loop.

    def best(self) -> Mapping[str, RouteEntry]:
        return MappingProxyType(self._best)

    def fib(self) -> Mapping[str, FibNextHop]:
        return MappingProxyType(self._fib)

    def connected(self) -> Mapping[str, str]:
        return MappingProxyType(self._connected)

    def advertised(self, key: str) -> Mapping[str, PathAttributes]:
        peer = self._peers.get(key)
        return MappingProxyType({} if peer is None else peer.out)

    @property
    def route_count(self) -> int:
        return len(self._best)

    @property
    def refused_total(self) -> int:
        return self._refused_total

    @property
    def waiting_for_room(self) -> int:
        return len(self._waiting)


@functools.lru_cache(maxsize=1024)
def _next_hop_key(address: str) -> tuple[int, int]:
    return address_key(address)
