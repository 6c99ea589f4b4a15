"""The kernel FIB as mcrd sees it: the routes of protocol 252 in table main, nothing else.

`KernelFib` is synchronous and owns a netlink socket: create it and use it in one thread (`FibWorker` does).
Failures come back as `FibError` values, one per route, never as exceptions; an interface that does not exist
yet is such a failure.

Our routes carry metric 20 as well as protocol 252, so that a route of another protocol for the same prefix
(`ip route add`: metric 0, IPv6 1024) lives beside ours instead of being replaced by it: the kernel's replace
matches prefix and metric, whatever the protocol. A foreign route with the very same metric would still be
replaced: give `metric` another value if such a daemon shares the table.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mcrd.fib import netlink as nl
from mcrd.rib.effects import FibInstall, FibNextHop


@dataclass(frozen=True, slots=True)
class FibError:
    """One route the kernel did not take (or that could not be sent)."""

    prefix: str
    op: str  # "install" or "remove"
    errno: int
    message: str  # strerror, with the kernel's extended-ack text when it gave one
    next_hop: FibNextHop | None = None

    def __str__(self) -> str:
        via, hop = "", self.next_hop
        if hop is not None:
            via = f" via {hop.gateway or 'direct'}" + (f" dev {hop.ifname}" if hop.ifname else "")
        return f"cannot {self.op} {self.prefix}{via}: {self.message}"


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What a reconcile did: counts, and the prefixes it added, replaced and removed (those that succeeded)."""

    added: int
    removed: int
    kept: int
    replaced: int = 0
    errors: tuple[FibError, ...] = ()
    added_prefixes: tuple[str, ...] = ()
    replaced_prefixes: tuple[str, ...] = ()
    removed_prefixes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)


def canonical_prefix(prefix: str) -> str:
    """The kernel's spelling of a prefix ('2001:DB8:0::/32' -> '2001:db8::/32'); ValueError if it is none."""
    family, raw, plen = nl.parse_prefix(prefix)
    return f"{socket.inet_ntop(family, raw)}/{plen}"


def spread(prefixes: Iterable[str]) -> list[str]:
    """The prefixes in the order of a set of them (by their hashes): scattered over the address space. The kernel's
    IPv4 route trie removes many routes for less CPU time in such an order than in address order, in which it
    halves and rebuilds the same nodes again and again (S2's 9,960 routes: 21-24 ms of kernel time against 29-32
    in batches of 2,000, 16-21 against 30-45 in one; docs/PERFORMANCE.md "Issue 14: the last remainder"). The
    order of independent removes is not visible otherwise."""
    return list(set(prefixes))


def _reason(code: int, text: str) -> str:
    return f"{os.strerror(code)} ({text})" if text else os.strerror(code)


class KernelFib:
    """Install, replace, remove and list mcrd's routes (protocol 252, table main, metric `metric`)."""

    def __init__(self, *, metric: int = nl.MCRD_METRIC, route_socket: nl.RouteSocket | None = None) -> None:
        self.metric = metric
        self._sock = route_socket or nl.RouteSocket(ack_every=False)  # acks for failures only: cheaper
        self._index: dict[str, int] = {}
        self._name: dict[int, str] = {}
        self._may_refresh = True
        self.refresh_links()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> KernelFib:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def refresh_links(self) -> None:
        """Re-read interface names and indexes (done by itself when a name or index is unknown)."""
        self._name = self._sock.links()
        self._index = {name: index for index, name in self._name.items()}

    def ifindex(self, name: str) -> int | None:
        """The index of interface `name`; an unknown name re-reads the links once per call of `apply`."""
        if name not in self._index and self._may_refresh:
            self._may_refresh = False
            self.refresh_links()
        return self._index.get(name)

    # --- reading ------------------------------------------------------------------------------------------------

    def _raw(self) -> list[tuple[str, str, int, int, int]]:
        """(prefix, gateway, oif, metric, protocol) of every route of ours in table main, the links known."""
        raw = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for _, payload in self._sock.dump(nl.RTM_GETROUTE, family):
                route = nl.decode_route(payload)
                if route is not None and route[4] == nl.MCRD_RTPROT:
                    raw.append(route)
        if any(oif and oif not in self._name for _, _, oif, _, _ in raw):
            self.refresh_links()
        return raw

    def _entries(self) -> list[tuple[str, FibNextHop, int]]:
        """(prefix, next hop, metric) of every route of ours in table main."""
        return [(p, FibNextHop(gw, self._name.get(oif, "")), metric) for p, gw, oif, metric, _ in self._raw()]

    def dump(self) -> dict[str, FibNextHop]:
        """{prefix: next hop} of the routes mcrd made (protocol 252); routes of other protocols are not listed."""
        out: dict[str, FibNextHop] = {}
        for prefix, hop, metric in self._entries():
            if metric == self.metric or prefix not in out:
                out[prefix] = hop
        return out

    # --- writing ------------------------------------------------------------------------------------------------

    def apply(self, installs: Sequence[FibInstall], removes: Sequence[str]) -> list[FibError]:
        """Remove then install (create or replace), in batches; the routes that failed. Removing a route that
        is not there is not a failure."""
        return self._apply(installs, {self.metric: spread(removes)})

    def reconcile(self, desired: Mapping[str, FibNextHop]) -> ReconcileResult:
        """Make our routes equal `desired`: keep what matches, replace what differs, remove the rest."""
        errors: list[FibError] = []
        ours: dict[str, tuple[str, int]] = {}  # prefix -> (gateway, oif): no FibNextHop made for 100,000 routes
        removes: dict[int, list[str]] = {}  # metric -> prefixes
        for prefix, gateway, oif, metric, _ in self._raw():
            if metric != self.metric:  # left with another metric by an older mcrd
                removes.setdefault(metric, []).append(prefix)
            else:
                ours[prefix] = (gateway, oif)
        want: dict[str, FibNextHop] = {}
        for prefix, hop in desired.items():
            if prefix not in ours:  # the kernel's spelling is the usual one: canonicalise only what is not found
                try:
                    prefix = canonical_prefix(prefix)
                except ValueError as exc:
                    errors.append(FibError(prefix, "install", errno.EINVAL, str(exc), hop))
                    continue
            want[prefix] = hop
        removes.setdefault(self.metric, []).extend(spread(ours.keys() - want.keys()))
        groups: dict[FibNextHop, list[str]] = {}
        kept = 0
        names = self._name
        for prefix, hop in want.items():
            have = ours.get(prefix)
            if have is not None and _same(hop, have[0], names.get(have[1], "")):
                kept += 1
            else:
                groups.setdefault(hop, []).append(prefix)
        installs = [FibInstall(hop, tuple(prefixes)) for hop, prefixes in groups.items()]
        errors += self._apply(installs, removes)
        failed = {e.prefix for e in errors if e.op == "install"}
        not_removed = {e.prefix for e in errors if e.op == "remove"}
        sent = [p for i in installs for p in i.prefixes if p not in failed]
        added = tuple(p for p in sent if p not in ours)
        replaced = tuple(p for p in sent if p in ours)
        removed = tuple(p for prefixes in removes.values() for p in prefixes if p not in not_removed)
        return ReconcileResult(
            added=len(added), removed=len(removed), kept=kept, replaced=len(replaced), errors=tuple(errors),
            added_prefixes=added, replaced_prefixes=replaced, removed_prefixes=removed,
        )

    def flush(self) -> ReconcileResult:
        """Remove every route of ours (at shutdown); routes of other protocols stay."""
        return self.reconcile({})

    def _apply(self, installs: Iterable[FibInstall], removes: Mapping[int, Sequence[str]]) -> list[FibError]:
        """`removes`: metric -> prefixes."""
        self._may_refresh = True
        batch = _Batch()
        for metric, prefixes in removes.items():
            batch.remove_all(prefixes, metric)
        for install in installs:
            self._encode(batch, install)
        used = dict(self._index)
        failed = batch.send(self._sock)
        if any(e.next_hop is not None and e.next_hop.ifname in used for e in failed):
            # An interface re-created under the same name has a new index: refresh, and send those once more.
            self.refresh_links()
            stale = {n for n, i in used.items() if self._index.get(n, i) != i}
            again = [e for e in failed if e.next_hop is not None and e.next_hop.ifname in stale]
            if again:
                retry = _Batch(batch.errors)
                for e in again:
                    assert e.next_hop is not None
                    self._encode(retry, FibInstall(e.next_hop, (e.prefix,)))
                failed = [e for e in failed if e not in again] + retry.send(self._sock)
        return batch.errors + failed

    def _encode(self, batch: _Batch, install: FibInstall) -> None:
        hop = install.next_hop
        try:
            tail, scope, v6 = self._next_hop(hop)
        except LookupError as exc:
            batch.errors += [FibError(p, "install", errno.ENODEV, str(exc), hop) for p in install.prefixes]
            return
        except (OSError, ValueError):
            reason = f"{hop.gateway!r} is not an IP address"
            batch.errors += [FibError(p, "install", errno.EINVAL, reason, hop) for p in install.prefixes]
            return
        batch.install_all(install.prefixes, tail, scope, hop, v6)

    def _next_hop(self, hop: FibNextHop) -> tuple[bytes, int, bool]:
        """(attributes, scope, is IPv6) of a next hop; LookupError when its interface does not exist."""
        oif = 0
        if hop.ifname:
            found = self.ifindex(hop.ifname)
            if found is None:
                raise LookupError(f"interface {hop.ifname} does not exist")
            oif = found
        scope = nl.RT_SCOPE_UNIVERSE if hop.gateway else nl.RT_SCOPE_LINK
        return nl.nexthop_attrs(hop.gateway, oif, self.metric), scope, ":" in hop.gateway


class _Batch:
    """Requests for one round, what each one is about, and the failures found while encoding them."""

    def __init__(self, errors: list[FibError] | None = None) -> None:
        self.requests: list[tuple[int, int, bytes]] = []
        self.what: list[tuple[str, str, FibNextHop | None]] = []
        self.errors = errors if errors is not None else []

    def remove_all(self, prefixes: Sequence[str], metric: int) -> None:
        tail = nl.RTA_U32.pack(8, nl.RTA_PRIORITY, metric)
        self._add(nl.RTM_DELROUTE, nl.DEL_FLAGS, prefixes, nl.route_bodies(prefixes, tail, delete=True),
                  "remove", None, tail)

    def install_all(self, prefixes: Sequence[str], tail: bytes, scope: int, hop: FibNextHop, v6: bool) -> None:
        """Install `prefixes` through one next hop (`tail`, `scope` and `v6`: from it)."""
        if hop.gateway and any((":" in prefix) != v6 for prefix in prefixes):
            wrong = [prefix for prefix in prefixes if (":" in prefix) != v6]
            self.errors += [FibError(p, "install", errno.EINVAL, "gateway of another address family", hop)
                            for p in wrong]
            prefixes = [prefix for prefix in prefixes if (":" in prefix) == v6]
        self._add(nl.RTM_NEWROUTE, nl.NEW_FLAGS, prefixes, nl.route_bodies(prefixes, tail, scope=scope),
                  "install", hop, tail, scope)

    def _add(self, kind: int, flags: int, prefixes: Sequence[str], bodies: list[bytes | None], op: str,
             hop: FibNextHop | None, tail: bytes, scope: int = nl.RT_SCOPE_UNIVERSE) -> None:
        """The requests of `bodies`, in C loops while every prefix was one (as usual); else one by one, with the
        reason of each that was not."""
        if None not in bodies:
            self.requests += zip(itertools.repeat(kind), itertools.repeat(flags), bodies)  # type: ignore[arg-type]
            self.what += zip(prefixes, itertools.repeat(op), itertools.repeat(hop))
            return
        for prefix, body in zip(prefixes, bodies, strict=True):
            if body is None:
                try:
                    nl.route_body(prefix, tail, delete=op == "remove", scope=scope)
                    reason = f"{prefix!r} is not a prefix"
                except ValueError as exc:
                    reason = str(exc)
                self.errors.append(FibError(prefix, op, errno.EINVAL, reason, hop))
            else:
                self.requests.append((kind, flags, body))
                self.what.append((prefix, op, hop))

    def send(self, sock: nl.RouteSocket) -> list[FibError]:
        """The requests the kernel refused; removing a route that is not there (ESRCH) is no failure."""
        out = []
        for i, (code, text) in sorted(sock.request(self.requests).items()):
            prefix, op, hop = self.what[i]
            if not (op == "remove" and code == errno.ESRCH):
                out.append(FibError(prefix, op, code, _reason(code, text), hop))
        return out


def _same(want: FibNextHop, gateway: str, ifname: str) -> bool:
    """Whether the kernel's route (its gateway, its interface) goes `want`'s way. The kernel always names the
    interface: a wanted next hop without one matches any."""
    if want.ifname and want.ifname != ifname:
        return False
    if want.gateway == gateway:
        return True
    if not want.gateway or not gateway:
        return False
    family = socket.AF_INET6 if ":" in want.gateway else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, want.gateway)) == gateway
    except OSError:
        return False
