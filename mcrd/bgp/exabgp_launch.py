"""Start ExaBGP with three fixes to its announce path, and more: `python -m mcrd.bgp.exabgp_launch server CONF`.

ExaBGP is mcrd's slowest part: at S2 of the hub benchmark (10 spokes x 1,000 prefixes) its announce path was 92 % of
the hub's CPU. Three causes, read in ExaBGP 5.0.15's source and measured (docs/BENCHMARK-HUB.md):

1. The reactor applies API commands as generators, at most 50 steps (`ASYNC.LIMIT`) per loop pass, one step per
   prefix, and ends each pass with `poll(reactor.speed / 100 s)` unless a *new* API line or a peer wants an
   immediate turn. Commands already read and still being applied do not count, so ExaBGP injects 50 prefixes and
   sleeps 10 ms. Fix: no poll timeout while that queue is not empty. Idle behaviour is unchanged.
2. `Neighbor.remove_self` deep-copies every change for every session it is injected into (half of ExaBGP's time in a
   py-spy profile of S2). Nothing changes the prefix or the attribute objects afterwards; the NLRI gets its next hop
   set, and the attribute set gets a new NEXT_HOP when the next hop is `self`. Fix: copy the change and its NLRI,
   and the attribute set only when it is rewritten: the same result (tests/bgp/test_exabgp_launch.py compares
   both on every kind of change mcrd sends).
3. Before an UPDATE is packed, its prefixes are sorted (`sorted(self.nlris)` in `Update._split_nlris`) by
   comparisons that each build two index strings, packing both prefixes: 2 n log n packs for n prefixes, half of
   ExaBGP's time in a py-spy profile of S2's withdrawal. Fix: sort them once by that same index first, so ExaBGP's
   own sort finds them in order (n - 1 comparisons) and yields the same order.

All three replace a method of ExaBGP's own classes, so they are applied only to the release they were read in
(`TUNED_FOR`, the version mcrd pins); any other release runs stock, and so does `MCRD_EXABGP_STOCK=1`.

Two more changes are about how sessions end, not speed, so `MCRD_EXABGP_STOCK=1` does not turn them off:

4. A Cease NOTIFICATION when a session is closed on purpose. ExaBGP 5.0.15's `Peer.shutdown()` (SIGTERM) and
   `Peer.remove()` (a SIGUSR1 reload whose configuration no longer has the neighbor) close the TCP connection at
   once, then set a teardown code that nothing reads any more: peers see "connection closed" and count no
   NOTIFICATION. (Its API command `neighbor X teardown N` does nothing at all in 5.0.15: `Reactor.teardown_peer`
   calls `Peer.teardown`, a generator function, without running it.) Fix: before that close, write a Cease on the
   established session, subcode 2 (Administrative Shutdown, RFC 4486) on shutdown and 3 (Peer De-configured) on
   removal, waiting at most `CEASE_WRITE_TIMEOUT` for the socket to take it. Applied to `TUNED_FOR` only.
5. ExaBGP dies with the daemon. mcrd starts ExaBGP in a session of its own (so a terminal's ^C reaches only the
   daemon): a `kill -9` of the daemon used to leave ExaBGP running, every session Established and traffic flowing
   through a dead router. `die_with_parent()` asks the kernel for SIGKILL when the parent dies (PR_SET_PDEATHSIG),
   then checks that the parent named in `MCRD_EXABGP_PARENT` is still the parent (it may have died before the
   request). SIGKILL, not SIGTERM: a crashed MCR must look crashed, its sockets closed by the kernel without a Cease.
   The kernel sends the signal when the *thread* that forked ExaBGP ends: mcrd starts it from its event loop, in the
   main thread. Every release.

Two more are about what a session carries, applied to `TUNED_FOR` only (`apply_negotiation_fixes`):

6. IPv4 unicast with a peer that sends no Multiprotocol capability (BIRD's `capabilities off`, a BGP-4 speaker
   without RFC 4760). Such a peer speaks IPv4 unicast only, and FRR and BIRD send it IPv4 unicast routes; ExaBGP
   5.0.15's `Negotiated._negotiate` takes the families both sides listed, so it negotiates none and drops every
   route mcrd sends (logged at debug level only). Fix: when the peer's OPEN has no Multiprotocol capability and
   ours lists IPv4 unicast, IPv4 unicast is negotiated (and not reported as a mismatch). `implied_families()`
   is the rule; the daemon applies the same one to the OPENs it reads (mcrd.bgp.messages).
7. ROUTE-REFRESH answered by mcrd. ExaBGP keeps no Adj-RIB-Out for mcrd's sessions (`adj-rib-out false`), so its
   own answer to a ROUTE-REFRESH is empty: nothing with plain route refresh, and with enhanced route refresh
   (RFC 7313, which ExaBGP offers together with route refresh) a BoRR and an EoRR with nothing between them, which
   makes the peer drop every route mcrd sent it. And ExaBGP turns its Adj-RIB-Out back on for a neighbor with route
   refresh (`ParseNeighbor._post_capa_rr`): it would then drop mcrd's answer as routes already sent, and replay
   stale routes when a session comes back. Fix: the Adj-RIB-Out stays off, ExaBGP does not answer
   (`Peer.resend` does nothing); the
   daemon reads the request from the API and sends the peer's Adj-RIB-Out again from its own tables, bracketed,
   when enhanced route refresh was negotiated, by two API commands this fix adds: `neighbor A announce borr ipv4
   unicast` and `... announce eorr ipv4 unicast`. They go through the peer's outgoing queue in the order the
   commands came: a BoRR is sent before anything queued after it, an EoRR after everything queued before it.
   Without this fix mcrd does not offer route refresh at all (mcrd.bgp.exabgp_config).

One more keeps what a peer holds equal to what mcrd sent it (`apply_queue_fixes`):

8. What ExaBGP sends a peer ends equal to the last command for each prefix. ExaBGP 5.0.15 queues each change to send
   under its attribute set, and a command injects it with `OutgoingRIB.add_to_rib`, which (unlike `del_from_rib`)
   leaves a change already queued for the same prefix under another attribute set in place: an announcement and the
   withdrawal that follows it both stay queued, sent bucket by bucket in the order the buckets were first used, so a
   withdrawal could go out before the announcement it cancels. And the first batch after a session comes up is sent
   without its withdrawals (`Peer._main`, `include_withdraw = False`): an announcement and its withdrawal queued
   together before that batch sent the announcement alone, and the peer kept the route for good (seen at start-up
   in the lab: a route the hub sends AWS via Azure, withdrawn a millisecond later when AWS's own UPDATE wins;
   tests/lab/test_adj_rib_out.py). Fix: a change takes the place of anything queued for its prefix (`superseding`).
   Also, a session's queue starts empty (`fresh_session`): mcrd sends the whole table after ExaBGP reports the
   session up, so anything queued before that was meant for the previous session (sent by the daemon before it read
   the `down`) and would reach the new one behind mcrd's back. Applied to `TUNED_FOR` only, whatever
   `MCRD_EXABGP_STOCK` says.

Listening for BGP (binding absent addresses, resolving connection collisions as RFC 4271 6.8 says) has its own
fixes, in exabgp_listen.py, installed with fix 4's rule.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import os
import runpy
import select
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator, MutableMapping
from typing import Any

TUNED_FOR = "5.0.15"
STOCK_ENV = "MCRD_EXABGP_STOCK"
PARENT_ENV = "MCRD_EXABGP_PARENT"  # the daemon's pid, set by the speaker: ExaBGP dies with it (fix 5)
CEASE_WRITE_TIMEOUT = 1.0  # seconds a Cease may wait for a full socket before the session is closed without it
CEASE_ADMINISTRATIVE_SHUTDOWN, CEASE_PEER_DECONFIGURED = 2, 3  # RFC 4486 subcodes of Cease (code 6)


def installed_release() -> str:
    from exabgp import version  # type: ignore[import-untyped]

    return str(version.release)


def tuning_state() -> tuple[bool, str]:
    """Whether the fixes apply to the installed ExaBGP, and why not when they do not."""
    if os.environ.get(STOCK_ENV) == "1":
        return False, f"{STOCK_ENV}=1"
    release = installed_release()
    if release != TUNED_FOR:
        return False, f"ExaBGP {release} installed; the fixes were read in {TUNED_FOR}"
    return True, f"ExaBGP {release}"


def poll_timeout(commands_queued: bool, sleeptime: int) -> int:
    """Fix 1: the reactor's poll timeout in ms. No wait while API commands are still being applied."""
    return 0 if commands_queued else sleeptime


_REWRITTEN = "_mcrd_next_hop_self"  # on a Neighbor: (source attribute set, packed next hop, rewritten set)


def remove_self(neighbor: Any, change: Any) -> Any:
    """Fix 2: `Neighbor.remove_self` (the change as sent to `neighbor`, `next-hop self` resolved) without deepcopy.

    Copied here is what the rest of ExaBGP changes: the change (its index cache), its NLRI (action, next hop) and,
    when the next hop is rewritten, the attribute set (its NEXT_HOP entry and text caches). The prefixes of one
    command share one attribute set (ExaBGP's parser makes one), so each session keeps the rewritten copy of the
    last set it saw and reuses it: one copy and one index per session and command instead of one per prefix.
    """
    result = _shallow_copy(change)
    result.nlri = _shallow_copy(change.nlri)
    if not result.nlri.nexthop.SELF:
        return result
    neighbor_self = neighbor.ip_self(result.nlri.afi)
    result.nlri.nexthop = neighbor_self
    source = change.attributes
    next_hop_code, next_hop_class = _next_hop_classes()
    if next_hop_code in source:
        packed = neighbor_self.pack()
        cached = getattr(neighbor, _REWRITTEN, None)
        if cached is not None and cached[0] is source and cached[1] == packed:
            result.attributes = cached[2]
        else:
            attributes = copy.copy(source)
            attributes[next_hop_code] = next_hop_class(str(neighbor_self), packed)
            # The copy took the source's text caches, which name the old next hop.
            attributes._str, attributes._idx, attributes._json, attributes._dict = "", "", "", {}
            setattr(neighbor, _REWRITTEN, (source, packed, attributes))
            result.attributes = attributes
    return result


@functools.cache
def _next_hop_classes() -> tuple[int, Any]:
    """ExaBGP's NEXT_HOP code and class, imported once: the daemon that imports this module never loads them."""
    from exabgp.bgp.message.update.attribute import Attribute, NextHop  # type: ignore[import-untyped]

    return Attribute.CODE.NEXT_HOP, NextHop


def sort_by_index(nlris: list[Any]) -> list[Any]:
    """Fix 3: the order of `sorted(nlris)` (NLRI.__lt__ compares `index()`), with one `index()` per prefix."""
    return sorted(nlris, key=lambda nlri: nlri.index())



def _shallow_copy(obj: Any) -> Any:
    """`copy.copy` for ExaBGP's plain classes (Change, INET): a new instance sharing the attribute values."""
    cls: Any = type(obj)
    if cls.__new__ is not object.__new__ or not hasattr(obj, "__dict__") or hasattr(cls, "__slots__"):
        return copy.copy(obj)
    clone = object.__new__(cls)
    clone.__dict__.update(obj.__dict__)
    return clone


FIXES = ("poll", "copy", "sort")  # 1, 2 and 3 above


def apply(fixes: Collection[str] = FIXES) -> bool:
    """Install the fixes into the imported ExaBGP when `tuning_state()` allows; True when installed. `fixes`: a
    subset of FIXES, for the benchmark's option study (bench/hub/exabgp_fixes.py)."""
    applies, _ = tuning_state()
    if not applies:
        return False
    unknown = set(fixes) - set(FIXES)
    if unknown:
        raise ValueError(f"unknown ExaBGP fixes {sorted(unknown)}; known: {', '.join(FIXES)}")
    from exabgp.bgp.message.update import Update  # type: ignore[import-untyped]
    from exabgp.bgp.neighbor import Neighbor  # type: ignore[import-untyped]
    from exabgp.reactor.loop import Reactor  # type: ignore[import-untyped]

    if "poll" in fixes:
        wait_for_io = Reactor._wait_for_io

        def _wait_for_io(self: Any, sleeptime: int) -> Iterator[int]:
            return wait_for_io(self, poll_timeout(not self.asynchronous.ready(), sleeptime))  # type: ignore[no-any-return]

        Reactor._wait_for_io = _wait_for_io
    if "copy" in fixes:
        Neighbor.remove_self = remove_self
    if "sort" in fixes:
        split_nlris = Update._split_nlris

        def _split_nlris(self: Any, negotiated: Any) -> Any:
            self.nlris = sort_by_index(self.nlris)
            return split_nlris(self, negotiated)

        Update._split_nlris = _split_nlris
    return True


def session_fixes_apply() -> bool:
    """Whether fix 4 (a Cease when a session is closed on purpose) applies to the installed ExaBGP."""
    return installed_release() == TUNED_FOR


def send_cease(peer: Any, subcode: int, timeout: float = CEASE_WRITE_TIMEOUT,
               states: Collection[Any] | None = None) -> bool:
    """Fix 4: write a Cease NOTIFICATION with `subcode` on `peer`'s session if it is in one of `states` (default
    OpenConfirm or Established); True when the whole message was written. ExaBGP closes the connection right after."""
    from exabgp.bgp.fsm import FSM  # type: ignore[import-untyped]
    from exabgp.bgp.message import Notify  # type: ignore[import-untyped]

    proto = peer.proto
    connection = getattr(proto, "connection", None)
    if states is None:
        states = (FSM.OPENCONFIRM, FSM.ESTABLISHED)
    if connection is None or connection.io is None or peer.fsm not in states:
        return False
    deadline = time.monotonic() + timeout
    try:
        # One step per write attempt; the last one hands back the message once it is all written.
        for step in proto.new_notification(Notify(6, subcode)):
            if isinstance(step, Notify):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([], [connection.io], [], min(left, 0.05))
    except Exception:  # a connection that broke meanwhile: ExaBGP closes it all the same
        return False
    return False


def apply_session_fixes() -> bool:
    """Install fix 4 when the installed ExaBGP is `TUNED_FOR`; True when installed."""
    if not session_fixes_apply():
        return False
    from exabgp.reactor.peer import Peer  # type: ignore[import-untyped]

    shutdown, remove = Peer.shutdown, Peer.remove

    def _shutdown(self: Any) -> None:  # SIGTERM
        send_cease(self, CEASE_ADMINISTRATIVE_SHUTDOWN)
        shutdown(self)

    def _remove(self: Any) -> None:  # a reload without this neighbor
        send_cease(self, CEASE_PEER_DECONFIGURED)
        remove(self)

    Peer.shutdown, Peer.remove = _shutdown, _remove
    return True


def negotiation_fixes_apply() -> bool:
    """Whether fixes 6 and 7 (implied IPv4 unicast, ROUTE-REFRESH answered by mcrd) apply to the installed ExaBGP."""
    return installed_release() == TUNED_FOR


def implied_families(received_multiprotocol: bool, sent: Collection[Any], ipv4_unicast: Any) -> list[Any]:
    """Fix 6: the families negotiated beyond the common ones: IPv4 unicast, when the peer's OPEN has no Multiprotocol
    capability and ours lists it (a BGP-4 speaker without RFC 4760 speaks IPv4 unicast only)."""
    return [ipv4_unicast] if not received_multiprotocol and ipv4_unicast in sent else []


_BORR, _EORR = "_mcrd_borr", "_mcrd_eorr"  # on an OutgoingRIB: the families whose BoRR / EoRR are queued


def apply_negotiation_fixes() -> bool:
    """Install fixes 6 and 7 when the installed ExaBGP is `TUNED_FOR`; True when installed."""
    if not negotiation_fixes_apply():
        return False
    from exabgp.bgp.message.open.capability.capability import Capability  # type: ignore[import-untyped]
    from exabgp.bgp.message.open.capability.negotiated import Negotiated  # type: ignore[import-untyped]
    from exabgp.configuration.neighbor import ParseNeighbor  # type: ignore[import-untyped]
    from exabgp.protocol.family import AFI, SAFI  # type: ignore[import-untyped]
    from exabgp.reactor.peer import Peer
    from exabgp.rib.outgoing import OutgoingRIB  # type: ignore[import-untyped]

    ipv4_unicast = (AFI.ipv4, SAFI.unicast)
    negotiate, validate = Negotiated._negotiate, Negotiated.validate

    def _implied(self: Any) -> list[Any]:
        received = self.received_open.capabilities.announced(Capability.CODE.MULTIPROTOCOL)
        sent = self.sent_open.capabilities.get(Capability.CODE.MULTIPROTOCOL, [])
        return implied_families(received, sent, ipv4_unicast)

    def _negotiate(self: Any) -> None:
        negotiate(self)
        self.families.extend(family for family in _implied(self) if family not in self.families)

    def _validate(self: Any, neighbor: Any) -> Any:
        error = validate(self, neighbor)
        implied = _implied(self)
        self.mismatch = [(side, family) for side, family in self.mismatch if family not in implied]
        return error

    Negotiated._negotiate, Negotiated.validate = _negotiate, _validate

    def _resend(self: Any, enhanced: bool, family: Any = None) -> None:
        """The daemon answers ROUTE-REFRESH from its own Adj-RIB-Out (it reads the request on the API)."""

    def _keep_adj_rib_out(self: Any, neighbor: Any) -> None:
        """Route refresh no longer turns ExaBGP's Adj-RIB-Out on: mcrd keeps it (`adj-rib-out false`)."""

    Peer.resend, ParseNeighbor._post_capa_rr = _resend, _keep_adj_rib_out

    pending, updates = OutgoingRIB.pending, OutgoingRIB.updates

    def _pending(self: Any) -> bool:
        return bool(pending(self) or getattr(self, _BORR, None) or getattr(self, _EORR, None))

    def _updates(self: Any, grouped: bool) -> Iterator[Any]:
        from exabgp.bgp.message.refresh import RouteRefresh  # type: ignore[import-untyped]

        # Taken when the pass starts, like ExaBGP's own queue: a marker queued meanwhile goes with the next pass,
        # after the changes queued before it.
        begin, end = getattr(self, _BORR, []), getattr(self, _EORR, [])
        setattr(self, _BORR, [])
        setattr(self, _EORR, [])
        for afi, safi in begin:
            yield RouteRefresh(afi, safi, RouteRefresh.start)
        yield from updates(self, grouped)
        for afi, safi in end:
            yield RouteRefresh(afi, safi, RouteRefresh.end)

    OutgoingRIB.pending, OutgoingRIB.updates = _pending, _updates
    _register_marker_commands()
    return True


def _register_marker_commands() -> None:
    """Fix 7: `neighbor A announce borr AFI SAFI` and `... announce eorr AFI SAFI`, queued on A's outgoing RIB."""
    from exabgp.protocol.family import AFI, SAFI
    from exabgp.reactor.api.command.command import Command  # type: ignore[import-untyped]
    from exabgp.reactor.api.command.limit import extract_neighbors, match_neighbors  # type: ignore[import-untyped]

    def marker(attribute: str) -> Any:
        def command(self: Any, reactor: Any, service: Any, line: str, use_json: bool) -> bool:
            descriptions, rest = extract_neighbors(line)
            words = rest.split()
            peers = match_neighbors(reactor.established_peers(), descriptions)
            family = (AFI.fromString(words[-2]), SAFI.fromString(words[-1])) if len(words) == 4 else None
            if not peers or family is None or AFI.undefined in family or SAFI.undefined in family:
                self.log_failure(f"mcrd: cannot queue {attribute[6:]}: {line}")
                reactor.processes.answer_error(service)
                return False

            def apply() -> Iterator[bool]:
                for name in peers:
                    neighbor = reactor.configuration.neighbors.get(name)
                    if neighbor is not None and family in neighbor.families():
                        outgoing = neighbor.rib.outgoing
                        setattr(outgoing, attribute, [*getattr(outgoing, attribute, []), family])
                yield False
                reactor.processes.answer_done(service)

            # Scheduled like the announcements, so that it is applied in the order the commands came.
            reactor.asynchronous.schedule(service, rest, apply())
            return True

        return command

    Command.register("announce borr")(marker(_BORR))
    Command.register("announce eorr")(marker(_EORR))


def superseding(update_rib: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Fix 8: `OutgoingRIB._update_rib` that first takes out what is queued for the change's prefix under another
    attribute set (ExaBGP's `del_from_rib` does the same before a withdrawal; its `add_to_rib` does not)."""

    def _update_rib(self: Any, change: Any) -> Any:
        index = change.index()
        queued = self._new_nlri.get(index)
        if queued is not None:
            bucket = self._new_attr_af_nlri.get(queued.attributes.index(), {}).get(change.nlri.family().afi_safi())
            if bucket is not None:
                bucket.pop(index, None)
        return update_rib(self, change)

    return _update_rib


def fresh_session(main: Callable[[Any], Iterator[Any]]) -> Callable[[Any], Iterator[Any]]:
    """Fix 8: `Peer._main` (the established session) that starts with an empty queue of changes to send."""

    def _main(self: Any) -> Iterator[Any]:
        self.neighbor.rib.outgoing.reset()  # sends nothing: drains the queue into Update objects left unused
        return (yield from main(self))

    return _main


def apply_queue_fixes() -> bool:
    """Install fix 8 when the installed ExaBGP is `TUNED_FOR`; True when installed."""
    if not session_fixes_apply():
        return False
    from exabgp.reactor.peer import Peer
    from exabgp.rib.outgoing import OutgoingRIB

    OutgoingRIB._update_rib = superseding(OutgoingRIB._update_rib)
    Peer._main = fresh_session(Peer._main)
    return True


def apply_listen_fixes() -> bool:
    """Install exabgp_listen.py's fixes (listening on absent addresses, RFC 4271 6.8 collisions) when the installed
    ExaBGP is `TUNED_FOR`; True when installed."""
    if not session_fixes_apply():
        return False
    from mcrd.bgp import exabgp_listen

    exabgp_listen.apply()
    return True


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(environ: MutableMapping[str, str] = os.environ) -> None:
    """Fix 5: SIGKILL this process when its parent dies; exit now if the parent named in `PARENT_ENV` is gone
    already. Nothing is asked when `PARENT_ENV` is unset (ExaBGP started by hand)."""
    parent = environ.pop(PARENT_ENV, None)
    if not parent:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        sys.stderr.write(f"mcrd: ExaBGP may outlive the daemon, prctl(PR_SET_PDEATHSIG): {os.strerror(error)}\n")
        return
    if os.getppid() != int(parent):
        sys.stderr.write(f"mcrd: the daemon (pid {parent}) died before ExaBGP started: exiting\n")
        raise SystemExit(1)


def main() -> None:
    die_with_parent()
    for install in (apply, apply_session_fixes, apply_negotiation_fixes, apply_queue_fixes,
                    apply_listen_fixes):
        try:
            install()
        except Exception as exc:  # a fix that cannot be installed must not stop ExaBGP: it runs without it
            sys.stderr.write(f"mcrd: ExaBGP runs without some of mcrd's fixes, installing them failed: {exc!r}\n")
    run_exabgp()


def run_exabgp() -> None:
    """ExaBGP's own command line (`exabgp server CONF`), in this process, with what `apply()` installed."""
    sys.argv[0] = "exabgp"
    runpy.run_module("exabgp", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
