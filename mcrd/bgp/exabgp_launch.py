"""Start ExaBGP with mcrd's fixes: `python -m mcrd.bgp.exabgp_launch server CONF`.

ExaBGP is mcrd's slowest part: at S2 of the hub benchmark (10 spokes x 1,000 prefixes) its announce path was 92 % of
the hub's CPU. Three causes, read in ExaBGP 5.0.15's source and measured (docs/BENCHMARK-HUB.md):

1. The reactor applies API commands as generators, at most 50 steps (`ASYNC.LIMIT`) per loop pass, one step per
   prefix, and ends each pass with `poll(reactor.speed / 100 s)` unless a *new* API line or a peer wants an
   immediate turn. Commands already read and still being applied do not count, so ExaBGP injects 50 prefixes and
   sleeps 10 ms. Fix: no poll timeout while that queue is not empty. Idle behaviour is unchanged.
   Also, the reactor leaves a session's socket registered in its poll after the connection is closed: until a new
   socket gets that number, every poll reports it invalid (POLLNVAL), and the reactor takes that for a busy loop and
   sleeps 10 ms a pass (`_prevent_spin`, more than `speed` of them a second): a whole ExaBGP reading ~100 messages
   a second (seen in tests/lab/test_fastpath.py after a session reset: a burst took 30 s to reach a peer). Fix: the
   poll forgets a descriptor it reports invalid (`ClosedForgotten`); the reactor registers a peer's socket again
   whenever that peer waits for it.
2. `Neighbor.remove_self` deep-copies every change for every session it is injected into (half of ExaBGP's time in a
   py-spy profile of S2). Nothing changes the prefix or the attribute objects afterwards; the NLRI gets its next hop
   set, and the attribute set gets a new NEXT_HOP when the next hop is `self`. Fix: copy the change and its NLRI,
   and the attribute set only when it is rewritten: the same result (tests/bgp/test_exabgp_launch.py compares
   both on every kind of change mcrd sends).
3. Before an UPDATE is packed, its prefixes are sorted (`sorted(self.nlris)` in `Update._split_nlris`) by
   comparisons that each build two index strings, packing both prefixes: 2 n log n packs for n prefixes, half of
   ExaBGP's time in a py-spy profile of S2's withdrawal. Fix: sort them once by that same index first, so ExaBGP's
   own sort finds them in order (n - 1 comparisons) and yields the same order.

Two more are about how sessions end, not speed:

4. A Cease NOTIFICATION when a session is closed on purpose. ExaBGP 5.0.15's `Peer.shutdown()` (SIGTERM) and
   `Peer.remove()` (a SIGUSR1 reload whose configuration no longer has the neighbor) close the TCP connection at
   once, then set a teardown code that nothing reads any more: peers see "connection closed" and count no
   NOTIFICATION. (Its API command `neighbor X teardown N` does nothing at all in 5.0.15: `Reactor.teardown_peer`
   calls `Peer.teardown`, a generator function, without running it.) Fix: before that close, write a Cease on the
   established session, subcode 2 (Administrative Shutdown, RFC 4486) on shutdown and 3 (Peer De-configured) on
   removal, waiting at most `exabgp_hook.CEASE_WRITE_TIMEOUT` for the socket to take it.
5. ExaBGP dies with the daemon. mcrd starts ExaBGP in a session of its own (so a terminal's ^C reaches only the
   daemon): a `kill -9` of the daemon used to leave ExaBGP running, every session Established and traffic flowing
   through a dead router. `die_with_parent()` asks the kernel for SIGKILL when the parent dies (PR_SET_PDEATHSIG),
   then checks that the parent named in `MCRD_EXABGP_PARENT` is still the parent (it may have died before the
   request). SIGKILL, not SIGTERM: a crashed MCR must look crashed, its sockets closed by the kernel without a Cease.
   The kernel sends the signal when the *thread* that forked ExaBGP ends: mcrd starts it from its event loop, in the
   main thread. It asks the kernel and changes nothing of ExaBGP's: every release, `MCRD_EXABGP_STOCK=1` too.

Two more are about what a session carries:

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

One more keeps what a peer holds equal to what mcrd sent it:

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
   the `down`) and would reach the new one behind mcrd's back.

One more, `fastpath` (fix 9), is in the all or none unless `MCRD_FAST_PATH=0` in the daemon's environment, which
ExaBGP inherits, leaves it out (`default_fixes`). The send fast path (issue 14): compact commands carrying the
attributes once, the NLRI once and the session instances they are for, packed per session by mcrd/bgp/wire.py and
written through one ordered byte queue per connection that ExaBGP's own messages also go through; session instances
tagged on `up` (mcrd/bgp/exabgp_fastpath.py). With it, `receive` (fix 10): the UPDATEs peers send that mcrd's strict
decoder takes skip ExaBGP's parse and JSON and reach the daemon as their bytes; everything else is parsed by ExaBGP
as stock (mcrd/bgp/exabgp_receive.py). It joins the all or none with `fastpath`; `MCRD_FAST_RECEIVE=0` leaves it
alone out, `MCRD_FAST_PATH=0` both.

Listening for BGP (binding absent addresses, resolving connection collisions as RFC 4271 6.8 says) has its own
fixes, in exabgp_listen.py: here they are one more, `listen`.

Fixes 1 to 4, 6 to 8, `listen`, `fastpath` and `receive` (unless left out) are all or none. Each
replaces a method of ExaBGP's own classes and relies on others, so before anything is installed the launcher checks
the release (`TUNED_FOR`: the one mcrd pins, which the fixes were read in) and every name the fixes replace or use,
with the parameters they expect (`HOOKS`). When one check fails, or with `MCRD_EXABGP_STOCK=1`, none is installed
and ExaBGP runs stock; if installing fails halfway, what was installed is put back. Then the launcher sets the
reactor speed that fits what it installed (`reactor_speed`) and reports both to the daemon before ExaBGP starts: the
report (`Report`) goes in the environment ExaBGP passes to its API process, and the bridge (mcrd.bgp.bridge) sends
it to the daemon as its first line, ahead of anything ExaBGP writes. The daemon logs it (`exabgp_fixes`), so the log
says what runs, not what was hoped for. The daemon expects all of them (none with `MCRD_EXABGP_STOCK=1` or another
release: `expected_fixes()`) when it writes ExaBGP's configuration, which offers route refresh only with fixes 6 and
7; a report that says otherwise makes it rewrite the configuration to match before it reads anything else from that
ExaBGP.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import importlib
import inspect
import json
import os
import runpy
import select
import signal
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from mcrd.bgp import exabgp_fastpath, exabgp_listen, exabgp_receive
from mcrd.bgp.exabgp_hook import Hook, send_cease

TUNED_FOR = "5.0.15"
STOCK_ENV = "MCRD_EXABGP_STOCK"
PARENT_ENV = "MCRD_EXABGP_PARENT"  # the daemon's pid, set by the speaker: ExaBGP dies with it (fix 5)
REPORT_ENV = "MCRD_EXABGP_FIXES"  # the launcher's Report, for the bridge to hand to the daemon
REPORT_LINE = b"mcrd-exabgp-fixes "  # how the bridge's first line starts (then the report, or "-")
SPEED_ENV = "exabgp_reactor_speed"
# The reactor sleeps `speed / 100` s between passes. Stock ExaBGP also sleeps while it still has commands to apply;
# measured (docs/BENCHMARK-HUB.md, "ExaBGP option study"): at 1.0 ~3,700 routes/s and 0.7 % of a CPU when idle; at
# 0.1 ~10,200/s and 5 % idle; at 0.01 ~13,600/s but 100 % idle, a busy loop no lab can afford. With fix 1 it does
# not sleep while it has work, so 1.0 costs nothing (S2 1.36-1.42 s at 1.0, 1.38-1.61 s at 0.1).
SPEED_WITH_FIXES, SPEED_STOCK = "1.0", "0.1"
CEASE_ADMINISTRATIVE_SHUTDOWN, CEASE_PEER_DECONFIGURED = 2, 3  # RFC 4486 subcodes of Cease (code 6)


def installed_release() -> str:
    from exabgp import version  # type: ignore[import-untyped]

    return str(version.release)


_NEGOTIATED = "exabgp.bgp.message.open.capability.negotiated"
# Per fix, every name of ExaBGP's it replaces (first) or relies on, as read in TUNED_FOR.
HOOKS: dict[str, tuple[Hook, ...]] = {
    "poll": (Hook("exabgp.reactor.loop", "Reactor._wait_for_io", ("self", "sleeptime")),
             Hook("exabgp.reactor.loop", "Reactor.__init__", ("self", "configuration")),  # sets .asynchronous, ._poller
             Hook("exabgp.reactor.asynchronous", "ASYNC.ready", ("self",))),
    "copy": (Hook("exabgp.bgp.neighbor", "Neighbor.remove_self", ("self", "changes")),
             Hook("exabgp.bgp.neighbor", "Neighbor.ip_self", ("self", "afi")),
             Hook("exabgp.bgp.message.update.attribute", "Attribute.CODE.NEXT_HOP"),
             Hook("exabgp.bgp.message.update.attribute", "NextHop.__init__", ("self", "string", "packed"))),
    "sort": (Hook("exabgp.bgp.message.update", "Update._split_nlris", ("self", "negotiated")),
             # the order ExaBGP sorts by, which sort_by_index reproduces
             Hook("exabgp.bgp.message.update.nlri.nlri", "NLRI.__lt__", ("self", "other")),
             Hook("exabgp.bgp.message.update.nlri.inet", "INET.index", ("self",))),
    "cease": (Hook("exabgp.reactor.peer", "Peer.shutdown", ("self",)),
              Hook("exabgp.reactor.peer", "Peer.remove", ("self",)),
              Hook("exabgp.reactor.protocol", "Protocol.new_notification", ("self", "notification")),
              Hook("exabgp.bgp.fsm", "FSM.OPENCONFIRM"),
              Hook("exabgp.bgp.fsm", "FSM.ESTABLISHED"),
              Hook("exabgp.bgp.message", "Notify.__init__", ("self", "code", "subcode", "data"))),
    "implied": (Hook(_NEGOTIATED, "Negotiated._negotiate", ("self",)),
                Hook(_NEGOTIATED, "Negotiated.validate", ("self", "neighbor")),
                Hook(_NEGOTIATED, "Negotiated.__init__", ("self", "neighbor")),  # sets families, mismatch
                Hook("exabgp.bgp.message.open.capability.capabilities", "Capabilities.announced",
                     ("self", "capability")),
                Hook("exabgp.bgp.message.open.capability.capability", "Capability.CODE.MULTIPROTOCOL"),
                Hook("exabgp.protocol.family", "AFI.ipv4"),
                Hook("exabgp.protocol.family", "SAFI.unicast")),
    "refresh": (Hook("exabgp.reactor.peer", "Peer.resend", ("self", "enhanced", "family")),
                Hook("exabgp.configuration.neighbor", "ParseNeighbor._post_capa_rr", ("self", "neighbor")),
                Hook("exabgp.rib.outgoing", "OutgoingRIB.pending", ("self",)),
                Hook("exabgp.rib.outgoing", "OutgoingRIB.updates", ("self", "grouped")),
                Hook("exabgp.reactor.api.command.command", "Command.functions"),
                Hook("exabgp.reactor.api.command.command", "Command.callback"),
                Hook("exabgp.reactor.api.command.limit", "extract_neighbors", ("command",)),
                Hook("exabgp.reactor.api.command.limit", "match_neighbors", ("peers", "descriptions")),
                Hook("exabgp.reactor.api", "API.response", ("self", "reactor", "service", "command", "use_json")),
                Hook("exabgp.reactor.asynchronous", "ASYNC.schedule", ("self", "uid", "command", "callback")),
                Hook("exabgp.reactor.api.processes", "Processes.answer_done", ("self", "service", "force")),
                Hook("exabgp.reactor.api.processes", "Processes.answer_error", ("self", "service")),
                Hook("exabgp.reactor.loop", "Reactor.established_peers", ("self",)),
                Hook("exabgp.bgp.message.refresh", "RouteRefresh.__init__", ("self", "afi", "safi", "reserved")),
                Hook("exabgp.bgp.message.refresh", "RouteRefresh.start"),
                Hook("exabgp.bgp.message.refresh", "RouteRefresh.end"),
                Hook("exabgp.protocol.family", "AFI.fromString", ("string",)),
                Hook("exabgp.protocol.family", "SAFI.fromString", ("string",)),
                Hook("exabgp.protocol.family", "AFI.undefined"),
                Hook("exabgp.protocol.family", "SAFI.undefined")),
    "queue": (Hook("exabgp.rib.outgoing", "OutgoingRIB._update_rib", ("self", "change")),
              Hook("exabgp.reactor.peer", "Peer._main", ("self",)),
              Hook("exabgp.rib.outgoing", "OutgoingRIB.reset", ("self",)),
              Hook("exabgp.rib.outgoing", "OutgoingRIB.__init__", ("self", "cache", "families")),  # the two queues
              Hook("exabgp.rib.change", "Change.index", ("self",)),
              Hook("exabgp.protocol.family", "Family.afi_safi", ("self",))),
    "listen": (Hook("exabgp.reactor.listener", "Listener._new_socket", ("self", "ip")),
               Hook("exabgp.reactor.network.incoming", "Incoming.__init__", ("self", "afi", "peer", "local", "io")),
               Hook("exabgp.reactor.listener", "Listener.__init__", ("self", "reactor", "backlog")),  # ._accepted
               Hook("exabgp.reactor.peer", "Peer.handle_connection", ("self", "connection")),
               Hook("exabgp.reactor.protocol", "Protocol.connect", ("self",)),  # a generator: wrapped with yield from
               Hook("exabgp.reactor.peer", "Peer._send_ka", ("self",)),  # a generator too
               Hook("exabgp.reactor.peer", "ACTION.LATER"),
               Hook("exabgp.reactor.loop", "Reactor._wait_for_io", ("self", "sleeptime")),
               Hook("exabgp.reactor.loop", "Reactor._listen_for_neighbors", ("self",)),
               Hook("exabgp.reactor.listener", "Listener.incoming", ("self",)),  # reads .serving and ._sockets
               Hook("exabgp.reactor.loop", "Reactor.__init__", ("self", "configuration")),  # sets ._poller
               Hook("exabgp.reactor.peer", "Peer.stopping", ("self",)),
               Hook("exabgp.reactor.peer", "Peer._close", ("self", "message", "error")),
               Hook("exabgp.reactor.network.incoming", "Incoming.notification",
                    ("self", "code", "subcode", "message")),
               Hook("exabgp.reactor.network.incoming", "Incoming.close", ("self",)),
               Hook("exabgp.bgp.message", "Notify.__init__", ("self", "code", "subcode", "data")),  # a refusal
               Hook("exabgp.reactor.asynchronous", "ASYNC.schedule", ("self", "uid", "command", "callback")),
               Hook("exabgp.bgp.fsm", "FSM.CONNECT"),
               Hook("exabgp.bgp.fsm", "FSM.OPENSENT"),
               Hook("exabgp.bgp.fsm", "FSM.OPENCONFIRM"),
               Hook("exabgp.bgp.fsm", "FSM.ESTABLISHED")),
}
_FAST = "exabgp.reactor"
# Fix 9 (exabgp_fastpath.py): installed with the others unless MCRD_FAST_PATH=0 leaves it out.
HOOKS["fastpath"] = (
    Hook(f"{_FAST}.api", "API.process", ("self", "reactor", "service", "command")),
    Hook(f"{_FAST}.api.processes", "Processes.up", ("self", "args")),  # `silenced`: (self, neighbor) inside
    Hook(f"{_FAST}.api.processes", "Processes.down", ("self", "args")),  # (self, neighbor, reason) inside
    Hook(f"{_FAST}.api.response.json", "JSON.up", ("self", "neighbor")),
    Hook(f"{_FAST}.api.response.json", "JSON.down", ("self", "neighbor", "reason")),
    Hook(f"{_FAST}.network.connection", "Connection.writer", ("self", "data")),
    Hook(f"{_FAST}.loop", "Reactor._wait_for_io", ("self", "sleeptime")),
    Hook(f"{_FAST}.loop", "Reactor.__init__", ("self", "configuration")),  # sets ._peers and ._poller
    Hook(f"{_FAST}.peer", "Peer.run", ("self",)),
    Hook(f"{_FAST}.peer", "ACTION.NOW"),
    Hook(f"{_FAST}.peer", "ACTION.LATER"),
    Hook(f"{_FAST}.network.connection", "Connection.close", ("self",)),
    Hook(f"{_FAST}.network.error", "LostConnection"),
    Hook(f"{_FAST}.network.error", "NetworkError"),
    Hook(f"{_FAST}.api.processes", "Processes.answer_done", ("self", "service", "force")),
    Hook(f"{_FAST}.api.processes", "Processes.answer_error", ("self", "service")),
    Hook("exabgp.bgp.fsm", "FSM.ESTABLISHED"),
    Hook("exabgp.protocol.family", "AFI.ipv4"),
    Hook("exabgp.protocol.family", "AFI.ipv6"),
    Hook("exabgp.protocol.family", "SAFI.unicast"),
)
# Fix 10 (exabgp_receive.py): the receive fast path, installed with fix 9 unless MCRD_FAST_RECEIVE=0.
HOOKS["receive"] = (
    Hook("exabgp.bgp.message.update", "Update.unpack_message", ("data", "direction", "negotiated")),
    Hook(f"{_FAST}.api.response.json", "JSON.update",
         ("self", "neighbor", "direction", "update", "negotiated", "header", "body")),
    Hook("exabgp.bgp.message.update", "Update.__init__", ("self", "nlris", "attributes")),  # FastUpdate's base
    Hook("exabgp.bgp.message.update.attribute", "Attributes.__init__", ("self",)),
    Hook("exabgp.bgp.message.direction", "Direction.IN"),
    Hook("exabgp.bgp.message.open.capability.negotiated", "Negotiated.__init__", ("self", "neighbor")),  # .neighbor
    Hook("exabgp.bgp.message.open.capability.negotiated", "RequirePath.receive", ("self", "afi", "safi")),
    # What a FastUpdate goes through as any UPDATE does: counted, the hold timer reset, written in order.
    Hook(f"{_FAST}.protocol", "Protocol.read_message", ("self",)),
    Hook("exabgp.bgp.timer", "ReceiveTimer.check_ka", ("self", "message", "ignore")),
    Hook(f"{_FAST}.api.processes", "Processes.write", ("self", "process", "string", "neighbor")),
    Hook("exabgp.protocol.family", "AFI.ipv4"),
    Hook("exabgp.protocol.family", "AFI.ipv6"),
    Hook("exabgp.protocol.family", "SAFI.unicast"),
)
FIXES = tuple(HOOKS)  # 1 to 4, 6 to 8, exabgp_listen.py's, 9 and 10
# Left out when one of these variables is 0: the send fast path (on by default), and the receive side with it (it
# needs the send side's session instances) or alone (to measure what it adds).
OPT_OUT = {"fastpath": (exabgp_fastpath.FAST_PATH_ENV,),
           "receive": (exabgp_fastpath.FAST_PATH_ENV, exabgp_receive.RECEIVE_ENV)}


def default_fixes(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """What mcrd installs: FIXES, without one that a variable of its own leaves out (0)."""
    return tuple(name for name in FIXES if all(environ.get(var) != "0" for var in OPT_OUT.get(name, ())))


def resolve(hook: Hook) -> Any:
    """The object `hook` names in the installed ExaBGP (ImportError, AttributeError when there is none)."""
    target: Any = importlib.import_module(hook.module)
    for part in hook.path.split("."):
        target = getattr(target, part)
    return target


def hook_problems(hooks: Iterable[Hook], find: Callable[[Hook], Any] = resolve) -> list[str]:
    """What is missing or different from what the fixes were written against; empty when every hook fits."""
    problems = []
    for hook in hooks:
        try:
            target = find(hook)
        except (ImportError, AttributeError):
            problems.append(f"{hook} is missing")
            continue
        if hook.params is None:
            continue
        try:
            params = tuple(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            problems.append(f"{hook} is not a function")
            continue
        if params != hook.params:
            problems.append(f"{hook} takes ({', '.join(params)}), the fix expects ({', '.join(hook.params)})")
    return problems


@dataclass(frozen=True)
class Report:
    """What the launcher installed (all of FIXES, or none: `fixes` empty) and why, and the reactor speed it set."""

    release: str
    fixes: tuple[str, ...]
    reason: str
    reactor_speed: str

    @property
    def applied(self) -> bool:
        return bool(self.fixes)

    def to_json(self) -> str:
        return json.dumps({"release": self.release, "fixes": list(self.fixes), "reason": self.reason,
                           "reactor_speed": self.reactor_speed}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Report:
        """ValueError when `text` is not a report."""
        try:
            data = json.loads(text)
            return cls(str(data["release"]), tuple(str(f) for f in data["fixes"]), str(data["reason"]),
                       str(data["reactor_speed"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a launcher report: {text[:200]!r}") from exc


Replacement = tuple[Any, str, Any]  # (a class and an attribute of its own, or a dict and a key; the new value)
_ABSENT = object()  # no attribute of the class's own (it takes a base class's), or no such key


def _get(owner: Any, key: str) -> Any:
    return owner.get(key, _ABSENT) if isinstance(owner, dict) else vars(owner).get(key, _ABSENT)


def _set(owner: Any, key: str, value: Any) -> None:
    if isinstance(owner, dict):
        if value is _ABSENT:
            owner.pop(key, None)
        else:
            owner[key] = value
    elif value is _ABSENT:
        delattr(owner, key)
    else:
        setattr(owner, key, value)


def expected_fixes(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """What the launcher will install, as far as the daemon can tell without importing ExaBGP's internals: all of
    FIXES, or none with `MCRD_EXABGP_STOCK=1` or another release. The launcher's report is the truth."""
    if environ.get(STOCK_ENV) == "1" or installed_release() != TUNED_FOR:
        return ()
    return default_fixes(environ)


def reactor_speed(fixes: Collection[str]) -> str:
    """The reactor speed for ExaBGP running with `fixes` (see SPEED_WITH_FIXES)."""
    return SPEED_WITH_FIXES if "poll" in fixes else SPEED_STOCK


def install(fixes: Collection[str] = FIXES, *, release: str | None = None,
            find: Callable[[Hook], Any] = resolve, environ: MutableMapping[str, str] = os.environ) -> Report:
    """Install every one of `fixes` into the imported ExaBGP, or none of them; say which and why. `fixes`: a subset
    of FIXES for the benchmark's option study (bench/hub/exabgp_fixes.py); mcrd installs all. `release` and `find`
    stand for the installed ExaBGP (a test gives another release or other classes)."""
    unknown = set(fixes) - set(FIXES)
    if unknown:
        raise ValueError(f"unknown ExaBGP fixes {sorted(unknown)}; known: {', '.join(FIXES)}")
    release = installed_release() if release is None else release

    def stock(reason: str) -> Report:
        return Report(release, (), reason, SPEED_STOCK)

    if environ.get(STOCK_ENV) == "1":
        return stock(f"{STOCK_ENV}=1")
    if release != TUNED_FOR:
        return stock(f"ExaBGP {release} installed; the fixes were read in {TUNED_FOR}")
    chosen = [name for name in FIXES if name in fixes]
    problems = hook_problems(dict.fromkeys(hook for name in chosen for hook in HOOKS[name]), find)  # each once
    if problems:
        return stock("ExaBGP differs from what the fixes were written against: " + "; ".join(problems))
    replaced: list[Replacement] = []  # (class or dict, name, what it had or _ABSENT), to put back
    try:
        for name in chosen:
            for owner, key, new in _INSTALLERS[name](find):
                replaced.append((owner, key, _get(owner, key)))
                _set(owner, key, new)
    except Exception as exc:
        for owner, key, original in reversed(replaced):
            _set(owner, key, original)
        return stock(f"installing the fixes failed, none is installed: {exc!r}")
    return Report(release, tuple(chosen), f"ExaBGP {release}", reactor_speed(chosen))


def publish(report: Report, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the reactor speed and leave the report for the bridge, in the environment ExaBGP reads (on its first
    `getenv()`, after this) and hands to its API process."""
    environ[SPEED_ENV] = report.reactor_speed
    environ[REPORT_ENV] = report.to_json()
    if environ is os.environ and "exabgp.environment.setup" in sys.modules:  # read already: set it there too
        from exabgp.environment import getenv  # type: ignore[import-untyped]

        getenv().reactor.speed = float(report.reactor_speed)


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


class ClosedForgotten:
    """Fix 1: the reactor's `select.poll` object, which forgets a descriptor it reports invalid (POLLNVAL: closed,
    and left registered by the reactor) instead of reporting it again at every poll."""

    __slots__ = ("forgotten", "poller")

    def __init__(self, poller: Any) -> None:
        self.poller = poller
        self.forgotten: set[int] = set()

    def register(self, fd: int, eventmask: int = select.POLLIN | select.POLLPRI | select.POLLOUT) -> None:
        self.forgotten.discard(fd)
        self.poller.register(fd, eventmask)

    def modify(self, fd: int, eventmask: int) -> None:
        self.poller.modify(fd, eventmask)

    def unregister(self, fd: int) -> None:
        # The reactor unregisters an API descriptor it still believes registered: one forgotten here would raise
        # KeyError in its main loop, which catches none, and ExaBGP would die.
        if fd in self.forgotten:
            self.forgotten.discard(fd)
            return
        self.poller.unregister(fd)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        events: list[tuple[int, int]] = self.poller.poll(timeout)
        if not any(event & select.POLLNVAL for _, event in events):
            return events
        for fd, event in events:
            if event & select.POLLNVAL:
                with contextlib.suppress(KeyError):
                    self.poller.unregister(fd)
                self.forgotten.add(fd)
        return [(fd, event) for fd, event in events if not event & select.POLLNVAL]


def _install_poll(find: Callable[[Hook], Any]) -> list[Replacement]:
    reactor = find(Hook("exabgp.reactor.loop", "Reactor"))
    wait_for_io = reactor._wait_for_io

    def _wait_for_io(self: Any, sleeptime: int) -> Iterator[int]:
        if type(self._poller) is not ClosedForgotten:
            self._poller = ClosedForgotten(self._poller)
        return wait_for_io(self, poll_timeout(not self.asynchronous.ready(), sleeptime))  # type: ignore[no-any-return]

    return [(reactor, "_wait_for_io", _wait_for_io)]


def _install_copy(find: Callable[[Hook], Any]) -> list[Replacement]:
    return [(find(Hook("exabgp.bgp.neighbor", "Neighbor")), "remove_self", remove_self)]


def _install_sort(find: Callable[[Hook], Any]) -> list[Replacement]:
    update = find(Hook("exabgp.bgp.message.update", "Update"))
    split_nlris = update._split_nlris

    def _split_nlris(self: Any, negotiated: Any) -> Any:
        self.nlris = sort_by_index(self.nlris)
        return split_nlris(self, negotiated)

    return [(update, "_split_nlris", _split_nlris)]


def _install_cease(find: Callable[[Hook], Any]) -> list[Replacement]:
    peer = find(Hook("exabgp.reactor.peer", "Peer"))
    shutdown, remove = peer.shutdown, peer.remove

    def _shutdown(self: Any) -> None:  # SIGTERM
        send_cease(self, CEASE_ADMINISTRATIVE_SHUTDOWN)
        shutdown(self)

    def _remove(self: Any) -> None:  # a reload without this neighbor
        send_cease(self, CEASE_PEER_DECONFIGURED)
        remove(self)

    return [(peer, "shutdown", _shutdown), (peer, "remove", _remove)]


def implied_families(received_multiprotocol: bool, sent: Collection[Any], ipv4_unicast: Any) -> list[Any]:
    """Fix 6: the families negotiated beyond the common ones: IPv4 unicast, when the peer's OPEN has no Multiprotocol
    capability and ours lists it (a BGP-4 speaker without RFC 4760 speaks IPv4 unicast only)."""
    return [ipv4_unicast] if not received_multiprotocol and ipv4_unicast in sent else []


def _install_implied(find: Callable[[Hook], Any]) -> list[Replacement]:
    negotiated = find(Hook(_NEGOTIATED, "Negotiated"))
    multiprotocol = find(Hook("exabgp.bgp.message.open.capability.capability", "Capability.CODE.MULTIPROTOCOL"))
    ipv4_unicast = (find(Hook("exabgp.protocol.family", "AFI.ipv4")),
                    find(Hook("exabgp.protocol.family", "SAFI.unicast")))
    negotiate, validate = negotiated._negotiate, negotiated.validate

    def _implied(self: Any) -> list[Any]:
        received = self.received_open.capabilities.announced(multiprotocol)
        sent = self.sent_open.capabilities.get(multiprotocol, [])
        return implied_families(received, sent, ipv4_unicast)

    def _negotiate(self: Any) -> None:
        negotiate(self)
        self.families.extend(family for family in _implied(self) if family not in self.families)

    def _validate(self: Any, neighbor: Any) -> Any:
        error = validate(self, neighbor)
        implied = _implied(self)
        self.mismatch = [(side, family) for side, family in self.mismatch if family not in implied]
        return error

    return [(negotiated, "_negotiate", _negotiate), (negotiated, "validate", _validate)]


_BORR, _EORR = "_mcrd_borr", "_mcrd_eorr"  # on an OutgoingRIB: the families whose BoRR / EoRR are queued
_MARKERS = {"announce borr": _BORR, "announce eorr": _EORR}  # fix 7's API commands


def _install_refresh(find: Callable[[Hook], Any]) -> list[Replacement]:
    peer = find(Hook("exabgp.reactor.peer", "Peer"))
    parse_neighbor = find(Hook("exabgp.configuration.neighbor", "ParseNeighbor"))
    outgoing_rib = find(Hook("exabgp.rib.outgoing", "OutgoingRIB"))
    route_refresh = find(Hook("exabgp.bgp.message.refresh", "RouteRefresh"))
    command = find(Hook("exabgp.reactor.api.command.command", "Command"))

    def _resend(self: Any, enhanced: bool, family: Any = None) -> None:
        """The daemon answers ROUTE-REFRESH from its own Adj-RIB-Out (it reads the request on the API)."""

    def _keep_adj_rib_out(self: Any, neighbor: Any) -> None:
        """Route refresh no longer turns ExaBGP's Adj-RIB-Out on: mcrd keeps it (`adj-rib-out false`)."""

    pending, updates = outgoing_rib.pending, outgoing_rib.updates

    def _pending(self: Any) -> bool:
        return bool(pending(self) or getattr(self, _BORR, None) or getattr(self, _EORR, None))

    def _updates(self: Any, grouped: bool) -> Iterator[Any]:
        # Taken when the pass starts, like ExaBGP's own queue: a marker queued meanwhile goes with the next pass,
        # after the changes queued before it.
        begin, end = getattr(self, _BORR, []), getattr(self, _EORR, [])
        setattr(self, _BORR, [])
        setattr(self, _EORR, [])
        for afi, safi in begin:
            yield route_refresh(afi, safi, route_refresh.start)
        yield from updates(self, grouped)
        for afi, safi in end:
            yield route_refresh(afi, safi, route_refresh.end)

    # The two commands, registered as Command.register would, in a way that can be put back.
    functions = sorted({*command.functions, *_MARKERS}, reverse=True)
    registered: list[Replacement] = [(command, "functions", functions)]
    for name, attribute in _MARKERS.items():
        function = _marker_command(find, attribute)
        function.func_name = name.replace(" ", "_")  # type: ignore[attr-defined]
        registered += [(command.callback["text"], name, function), (command.callback["neighbor"], name, True),
                       (command.callback["options"], name, None)]
    return [(peer, "resend", _resend), (parse_neighbor, "_post_capa_rr", _keep_adj_rib_out),
            (outgoing_rib, "pending", _pending), (outgoing_rib, "updates", _updates), *registered]


def _marker_command(find: Callable[[Hook], Any], attribute: str) -> Callable[..., bool]:
    """Fix 7: `neighbor A announce borr AFI SAFI` (or eorr), queued on A's outgoing RIB."""
    afi_class, safi_class = find(Hook("exabgp.protocol.family", "AFI")), find(Hook("exabgp.protocol.family", "SAFI"))
    extract_neighbors = find(Hook("exabgp.reactor.api.command.limit", "extract_neighbors"))
    match_neighbors = find(Hook("exabgp.reactor.api.command.limit", "match_neighbors"))

    def command(self: Any, reactor: Any, service: Any, line: str, use_json: bool) -> bool:
        descriptions, rest = extract_neighbors(line)
        words = rest.split()
        peers = match_neighbors(reactor.established_peers(), descriptions)
        family = (afi_class.fromString(words[-2]), safi_class.fromString(words[-1])) if len(words) == 4 else None
        if not peers or family is None or afi_class.undefined in family or safi_class.undefined in family:
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


def _install_queue(find: Callable[[Hook], Any]) -> list[Replacement]:
    outgoing_rib = find(Hook("exabgp.rib.outgoing", "OutgoingRIB"))
    peer = find(Hook("exabgp.reactor.peer", "Peer"))
    return [(outgoing_rib, "_update_rib", superseding(outgoing_rib._update_rib)),
            (peer, "_main", fresh_session(peer._main))]


_INSTALLERS: dict[str, Callable[[Callable[[Hook], Any]], list[Replacement]]] = {
    "poll": _install_poll, "copy": _install_copy, "sort": _install_sort, "cease": _install_cease,
    "implied": _install_implied, "refresh": _install_refresh, "queue": _install_queue,
    "listen": exabgp_listen.replacements, "fastpath": exabgp_fastpath.replacements,
    "receive": exabgp_receive.replacements,
}


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
    try:
        report = install(default_fixes())
    except Exception as exc:  # the check itself failed: ExaBGP must still run, stock
        report = Report("unknown", (), f"checking the fixes failed, none is installed: {exc!r}", SPEED_STOCK)
    publish(report)
    run_exabgp()


def run_exabgp() -> None:
    """ExaBGP's own command line (`exabgp server CONF`), in this process, with what `install()` installed."""
    sys.argv[0] = "exabgp"
    runpy.run_module("exabgp", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
