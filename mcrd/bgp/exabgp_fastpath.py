"""The send fast path's hooks into ExaBGP 5.0.15 (issue 14, exabgp_launch's `fastpath`): on unless `MCRD_FAST_PATH=0`
(or `MCRD_EXABGP_STOCK=1`, which leaves every fix out).

ExaBGP keeps terminating the sessions (FSM, OPEN, keepalives, hold timer, NOTIFICATION); mcrd's routes skip its
announce path (~12 us per route and session: per-route objects, copies, its outgoing RIB) and go as one compact
command for all the sessions they are meant for:

    mcrd {"op": "announce", "sessions": ["192.0.2.1#3", ...], "attributes": {...}, "nlri": ["10.0.0.0/24", ...]}
    mcrd {"op": "withdraw", "sessions": [...], "nlri": [...]}
    mcrd {"op": "eor", "sessions": [...], "family": 4}
    mcrd {"op": "borr" | "eorr", "sessions": [...], "family": 4}   (enhanced route refresh, RFC 7313)

The launcher packs the UPDATEs per session from what that session negotiated (mcrd/bgp/wire.py: 4-byte AS or
AS_TRANS + AS4_PATH, 4,096 or 65,535 octets, IPv4 NLRI or MP_REACH / MP_UNREACH, next hop self) and appends them to
the connection's byte queue. The command is answered `done` once its messages are queued; `error` when it cannot be
read or packed (an exception never leaves the hook: ExaBGP would die of it).

The hooks, each tested against ExaBGP's own classes (tests/bgp/test_exabgp_fastpath.py):

- One ordered byte queue per connection (`Connection.writer`). Every message goes through it: the fast path's
  UPDATEs and ExaBGP's own OPEN, KEEPALIVE, End-of-RIB and NOTIFICATION. ExaBGP's own writer is a generator that
  holds a partly written message in its frame, and `Peer._main` can run the keepalive generator before resuming it:
  on a socket that takes partial writes, a KEEPALIVE landed inside an UPDATE. With the queue a message goes after
  every byte queued before it, and a writer is done when the queue has sent its last byte.
- Session instances (`Processes.up` / `down`). Each time a session comes up it gets a new number, written into its
  `up` and `down` lines as `"mcrd-instance"`; a command names the instance (`peer#instance`), and one for an instance
  that is no longer up is dropped: nothing meant for an old session reaches a new one. The daemon sends these
  commands to the sessions whose `up` carried an instance, ExaBGP's own to the others (mcrd/bgp/commands.py).
- The command itself (`API.process`), taken before ExaBGP's own command chain.
- The reactor's wait (`Reactor._wait_for_io`) flushes the queues first and also wakes on POLLOUT for a socket with
  bytes left, so what a command queued on a full socket goes when the peer reads, not with the next KEEPALIVE.
  A peer whose turn ended with one of ExaBGP's own writers waiting on a full socket (`Peer.run`) is not given an
  immediate turn: the reactor sleeps until that socket takes more (or something else happens), instead of looping
  without sleeping (ExaBGP's notification loop asks for an immediate turn after every attempt). A NOTIFICATION goes
  right after the message being sent (the session ends: the UPDATEs queued behind it are dropped); if the peer does
  not take it within NOTIFY_WAIT seconds (a stopped peer) the connection is closed, and ExaBGP resets the session.

The receive side (the UPDATEs peers send, parsed in mcrd instead of ExaBGP) is exabgp_receive.py, fix 10: it uses
the session instances kept here to know which sessions are fast.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcrd.bgp import wire
from mcrd.bgp.exabgp_hook import Hook
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

FAST_PATH_ENV = "MCRD_FAST_PATH"
COMMAND = "mcrd "  # the first word of a fast path command
INSTANCE_KEY = "mcrd-instance"
# Peer address -> the instance of its session now up. Not kept on ExaBGP's Neighbor: a reload (SIGUSR1) replaces the
# Neighbor objects of sessions it keeps up. mcrd has one session per peer address.
_up_instances: dict[str, int] = {}
_QUEUE = "_mcrd_queue"  # on an ExaBGP Connection: its WriteQueue
COALESCE = 65536  # octets handed to one send() at most
SNDBUF_ENV = "MCRD_FAST_PATH_SNDBUF"  # tests: a small send buffer, so that a slow reader fills it and the queue
NOTIFICATION = wire.NOTIFICATION
NOTIFY_WAIT = 5.0  # seconds a NOTIFICATION waits for a peer that does not read before the connection is closed
# The reactor's poll timeout when it has nothing to do at once (stock: speed / 100, 10 ms): its loop gives every
# peer a turn each time, ~36 us each, 3.6 % of a core with 10 idle sessions. Messages, commands and POLLOUT wake the
# poll; what only the clock brings (keepalive and hold timers, a connection accepted or made, a signal) waits up to
# this long.
IDLE_WAIT_MS = 100


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(FAST_PATH_ENV) != "0"


# --- the command (pure: the daemon builds it, the launcher reads it) -------------------------------------------------


def attributes_json(attrs: PathAttributes) -> dict[str, Any]:
    """`attrs` as the command carries them; the next hop is each session's own address, so it is not sent."""
    return {"origin": int(attrs.origin), "as_path": list(attrs.as_path), "as_set": list(attrs.as_set),
            "med": attrs.med, "local_pref": attrs.local_pref, "communities": list(attrs.communities),
            "extended_communities": [ext.value for ext in attrs.extended_communities],
            "large_communities": list(attrs.large_communities)}


def announce_command(sessions: Iterable[str], attrs: PathAttributes, prefixes: Iterable[str]) -> str:
    return COMMAND + json.dumps({"op": "announce", "sessions": list(sessions), "attributes": attributes_json(attrs),
                                 "nlri": list(prefixes)}, separators=(",", ":"))


def withdraw_command(sessions: Iterable[str], prefixes: Iterable[str]) -> str:
    return COMMAND + json.dumps({"op": "withdraw", "sessions": list(sessions), "nlri": list(prefixes)},
                                separators=(",", ":"))


def eor_command(sessions: Iterable[str], family: int, op: str = "eor") -> str:
    """End-of-RIB (`eor`), or the start (`borr`) or end (`eorr`) of an enhanced route refresh's answer."""
    return COMMAND + json.dumps({"op": op, "sessions": list(sessions), "family": family}, separators=(",", ":"))


def session_name(peer: str, instance: int) -> str:
    return f"{peer}#{instance}"


@dataclass(frozen=True, slots=True)
class Command:
    op: str
    sessions: tuple[tuple[str, int], ...]  # (peer address, instance)
    attributes: PathAttributes | None = None
    nlri: tuple[str, ...] = ()
    family: int = 4


def parse_command(line: str) -> Command:
    """A fast path command; ValueError naming what is wrong."""
    try:
        body = json.loads(line.removeprefix(COMMAND))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON after {COMMAND.strip()!r}: {exc}") from None
    if not isinstance(body, dict) or body.get("op") not in ("announce", "withdraw", "eor", "borr", "eorr"):
        raise ValueError("expected an object with op announce, withdraw, eor, borr or eorr")
    sessions = []
    for name in body.get("sessions", []):
        peer, _, instance = str(name).rpartition("#")
        if not peer or not instance.isdigit():
            raise ValueError(f"session {name!r}: expected PEER#INSTANCE")
        sessions.append((peer, int(instance)))
    attributes = None
    if body["op"] == "announce":
        given = body.get("attributes")
        if not isinstance(given, dict):
            raise ValueError("announce without attributes")
        attributes = PathAttributes(
            "self", tuple(given.get("as_path", ())), Origin(given.get("origin", 0)), given.get("med"),
            given.get("local_pref"), tuple(given.get("communities", ())), tuple(given.get("as_set", ())),
            tuple(ExtendedCommunity(value, "") for value in given.get("extended_communities", ())),
            tuple(given.get("large_communities", ())))
    family = body.get("family", 4)
    if family not in (4, 6):
        raise ValueError(f"family {family!r}: expected 4 or 6")
    return Command(body["op"], tuple(sessions), attributes, tuple(body.get("nlri", ())), family)


def messages(command: Command, packed: Mapping[int, Sequence[bytes]], profile: wire.Profile,
             next_hops: Mapping[int, str | None], families: Iterable[int],
             fills: wire.Fills | None = None) -> Iterator[bytes]:
    """The UPDATEs of `command` for one session: `profile`, its own address per family (`next_hops`), the families
    it negotiated (others are left out, as ExaBGP does). `fills`: one per command, shared by its sessions."""
    for family in families:
        if command.op in ("eor", "borr", "eorr"):
            if family == command.family:
                yield (wire.end_of_rib(family) if command.op == "eor"
                       else wire.route_refresh_marker(family, wire.BORR if command.op == "borr" else wire.EORR))
            continue
        nlris = packed.get(family)
        if not nlris:
            continue
        if command.op == "withdraw":
            yield from wire.withdrawals(family, nlris, profile, fills)
            continue
        assert command.attributes is not None
        hop = next_hops.get(family)
        if hop is None:
            raise ValueError(f"no IPv{family} address of our own on this session for next hop self")
        yield from wire.announcements(command.attributes, family, nlris, profile, hop, fills)


# --- the ordered byte queue ------------------------------------------------------------------------------------------


class WriteQueue:
    """The bytes a connection still has to send, in order, with counts of the bytes queued and sent so far."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes | memoryview] = collections.deque()
        self.queued = 0
        self.sent = 0
        self.closing = False  # a NOTIFICATION is queued: the session ends, nothing more is read on it

    def drop_unstarted(self) -> int:
        """Drop what is queued behind the first chunk (which may be partly sent): the octets dropped, counted as
        sent so that the byte counts of the writers still waiting stay in step."""
        dropped = 0
        while len(self.chunks) > 1:
            dropped += len(self.chunks.pop())
        self.sent += dropped
        return dropped

    def append(self, data: bytes) -> int:
        """Queue `data`; the count `sent` reaches once its last byte is sent."""
        self.chunks.append(data)
        self.queued += len(data)
        return self.queued

    def pending(self) -> bool:
        return self.sent < self.queued

    def flush(self, sock: socket.socket) -> bool:
        """Send what `sock` takes without blocking; True when nothing is left. OSError other than EAGAIN and a
        closed connection (send() of 0) are raised for the caller."""
        chunks = self.chunks
        while chunks:
            data: bytes | memoryview = chunks[0]
            if len(data) < COALESCE and len(chunks) > 1:  # fewer system calls for runs of small messages
                parts = []
                size = 0
                while chunks and size + len(chunks[0]) <= COALESCE:
                    part = chunks.popleft()
                    parts.append(part)
                    size += len(part)
                if not parts:
                    parts.append(chunks.popleft())
                data = b"".join(parts)
                chunks.appendleft(data)
            try:
                number = sock.send(data)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    return False
                raise
            if number == 0:
                raise ConnectionError("send() returned 0")
            self.sent += number
            if number == len(data):
                chunks.popleft()
            else:
                chunks[0] = memoryview(data)[number:]
                return False
        return True


def queue_of(connection: Any) -> WriteQueue:
    queue: WriteQueue | None = connection.__dict__.get(_QUEUE)
    if queue is None:
        queue = WriteQueue()
        connection.__dict__[_QUEUE] = queue
        sndbuf = os.environ.get(SNDBUF_ENV)
        if sndbuf and connection.io:
            connection.io.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(sndbuf))
    return queue


def _flush(connection: Any) -> None:
    """Flush `connection`'s queue, failing as ExaBGP's own writer fails (the same exceptions, the socket closed)."""
    from exabgp.reactor.network.error import LostConnection, NetworkError  # type: ignore[import-untyped]

    try:
        queue_of(connection).flush(connection.io)
    except ConnectionError:
        connection.close()
        raise LostConnection("lost the TCP connection") from None
    except OSError as exc:
        connection.close()
        raise NetworkError(f"Problem while writing data to the network ({exc})") from None


_blocked_turn = False  # one of ExaBGP's own writers waited on a full socket during the current peer's turn


def ordered_writer(connection: Any, data: bytes) -> Iterator[bool]:
    """`Connection.writer`: queue `data` behind everything queued before it; yield False until its last byte is
    sent, then True. A NOTIFICATION goes right after the message being sent, and gives up after NOTIFY_WAIT s."""
    global _blocked_turn
    if not connection.io:
        yield True
        return
    queue = queue_of(connection)
    deadline = None
    if len(data) > 18 and data[18] == NOTIFICATION:
        queue.drop_unstarted()
        queue.closing = True
        deadline = time.monotonic() + NOTIFY_WAIT
    end = queue.append(data)
    while True:
        _flush(connection)
        if queue.sent >= end:
            yield True
            return
        if deadline is not None and time.monotonic() > deadline:
            from exabgp.reactor.network.error import NetworkError

            connection.close()
            raise NetworkError(f"the peer took no NOTIFICATION in {NOTIFY_WAIT:g} s (it does not read)")
        _blocked_turn = True
        yield False


# --- the hooks -------------------------------------------------------------------------------------------------------


# From the clock (microseconds): the instances of an ExaBGP started again after one died do not repeat the dead
# one's, so a command for a session of that one can name no session of this one.
_instances = itertools.count(time.time_ns() // 1000)


def with_instance(line: str, instance: int | None) -> str:
    """An ExaBGP JSON line (`{ "exabgp": ...`) with `"mcrd-instance": N` first."""
    if instance is None or not line.startswith("{ "):
        return line
    return f'{{ "{INSTANCE_KEY}": {instance}, {line[2:]}'


def _established_sessions(reactor: Any) -> dict[tuple[str, int], Any]:
    from exabgp.bgp.fsm import FSM  # type: ignore[import-untyped]

    found = {}
    for peer in reactor._peers.values():
        address = str(peer.neighbor["peer-address"])
        instance = _up_instances.get(address)
        if instance is not None and peer.fsm == FSM.ESTABLISHED:
            found[(address, instance)] = peer
    return found


def _profile(peer: Any) -> tuple[wire.Profile, dict[int, str | None], list[int]]:
    from exabgp.protocol.family import AFI, SAFI  # type: ignore[import-untyped]

    negotiated = peer.proto.negotiated
    neighbor = peer.neighbor
    # iBGP from the configuration: ExaBGP's negotiated local AS is AS_TRANS for a 4-byte AS (tests/bgp/test_wire.py).
    profile = wire.Profile(asn4=bool(negotiated.asn4), max_size=int(negotiated.msg_size),
                           ibgp=int(neighbor["local-as"]) == int(neighbor["peer-as"]))
    local = str(neighbor["local-address"])
    hops: dict[int, str | None] = {6 if ":" in local else 4: local}
    families = [family for family, afi in ((4, AFI.ipv4), (6, AFI.ipv6)) if (afi, SAFI.unicast) in negotiated.families]
    return profile, hops, families


def run_command(reactor: Any, line: str) -> int:
    """Apply a fast path command; the number of sessions it was written to (instances no longer up are skipped)."""
    command = parse_command(line)
    packed = wire.nlris_by_family(command.nlri)  # once for every session
    sessions = _established_sessions(reactor)
    fills: wire.Fills = {}
    written = 0
    for key in command.sessions:
        peer = sessions.get(key)
        if peer is None:
            continue
        connection = peer.proto.connection
        if connection is None or not connection.io:
            continue
        profile, hops, families = _profile(peer)
        queue = queue_of(connection)
        for message in messages(command, packed, profile, hops, families, fills):
            queue.append(message)
        # A connection that fails (the peer reset it) is left to ExaBGP, which finds out at its next read or write:
        # raised here, it would fail the command for the sessions after this one in it too.
        with contextlib.suppress(Exception):
            _flush(connection)
        written += 1
    return written


_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLNVAL | select.POLLERR  # the reactor's mask


def flush_queues(reactor: Any) -> list[tuple[int, bool]]:
    """Send what each connection's queue holds and its socket takes; the sockets that still have bytes to send, each
    with whether its session is closing. A connection that fails is left to ExaBGP, which finds out at its next read
    or write."""
    waiting = []
    for peer in list(reactor._peers.values()):
        connection: Any = getattr(getattr(peer, "proto", None), "connection", None)
        if connection is None or not connection.io:
            continue
        queue = connection.__dict__.get(_QUEUE)
        if queue is None or not queue.pending():
            continue
        with contextlib.suppress(Exception):
            _flush(connection)
        if queue.pending() and connection.io:
            waiting.append((connection.io.fileno(), queue.closing))
    return waiting


def waiting_for_pollout(wait_for_io: Any) -> Any:
    """`Reactor._wait_for_io` that first flushes the queues, and also wakes when a socket with bytes left can take
    more: bytes a command queued on a full socket go as soon as the peer reads, not with the next KEEPALIVE."""

    def _wait_for_io(self: Any, sleeptime: int) -> Iterator[int]:
        waiting = flush_queues(self)
        if sleeptime > 0:  # nothing to do at once: what could be (a message, a command, POLLOUT) wakes the poll
            sleeptime = max(sleeptime, IDLE_WAIT_MS)
        added = []
        for fd, closing in waiting:
            # A closing session reads nothing more: data it has not read would wake the poll at once, again and again.
            mask = (_POLL_IN & ~(select.POLLIN | select.POLLPRI) if closing else _POLL_IN) | select.POLLOUT
            try:
                self._poller.modify(fd, mask)
            except FileNotFoundError:  # not registered by the reactor: POLLOUT only, so the reactor sees no event
                self._poller.register(fd, select.POLLOUT)
                added.append(fd)
        try:
            yield from wait_for_io(self, sleeptime)
        finally:
            for fd, _ in waiting:
                with contextlib.suppress(OSError, KeyError, ValueError):
                    if fd in added:
                        self._poller.unregister(fd)
                    else:
                        self._poller.modify(fd, _POLL_IN)

    return _wait_for_io


def no_turn_while_blocked(run: Any, now: Any, later: Any) -> Any:
    """`Peer.run` that answers `later` instead of `now` when one of the peer's writers waited on a full socket during
    its turn: another turn could do nothing before the socket takes more, and the reactor's wait wakes on POLLOUT."""

    def _run(self: Any) -> Any:
        global _blocked_turn
        _blocked_turn = False
        action = run(self)
        if action == now and _blocked_turn:
            return later
        return action

    return _run


def replacements(find: Callable[[Any], Any]) -> list[tuple[Any, str, Any]]:
    """The hooks, as (class, attribute, new value) for exabgp_launch.install() to make (and undo if need be)."""

    api = find(Hook("exabgp.reactor.api", "API"))
    processes = find(Hook("exabgp.reactor.api.processes", "Processes"))
    encoder = find(Hook("exabgp.reactor.api.response.json", "JSON"))
    connection = find(Hook("exabgp.reactor.network.connection", "Connection"))
    reactor = find(Hook("exabgp.reactor.loop", "Reactor"))
    peer = find(Hook("exabgp.reactor.peer", "Peer"))
    action = find(Hook("exabgp.reactor.peer", "ACTION"))
    process, up, down = api.process, processes.up, processes.down
    json_up, json_down = encoder.up, encoder.down

    def _process(self: Any, reactor: Any, service: Any, command: str) -> Any:
        if not command.startswith(COMMAND):
            return process(self, reactor, service, command)
        try:
            run_command(reactor, command)
        except Exception as exc:  # an exception here would stop ExaBGP (Reactor.run does not catch it)
            sys.stderr.write(f"mcrd: fast path command failed: {exc!r}: {command[:200]}\n")
            reactor.processes.answer_error(service)
            return False
        reactor.processes.answer_done(service)
        return True

    def _up(self: Any, neighbor: Any) -> Any:
        _up_instances[str(neighbor["peer-address"])] = next(_instances)
        return up(self, neighbor)

    def _down(self: Any, neighbor: Any, reason: Any) -> Any:
        try:
            return down(self, neighbor, reason)
        finally:
            _up_instances.pop(str(neighbor["peer-address"]), None)

    def _json_up(self: Any, neighbor: Any) -> str:
        return with_instance(json_up(self, neighbor), _up_instances.get(str(neighbor["peer-address"])))

    def _json_down(self: Any, neighbor: Any, reason: Any = "") -> str:
        return with_instance(json_down(self, neighbor, reason), _up_instances.get(str(neighbor["peer-address"])))

    return [(api, "process", _process), (processes, "up", _up), (processes, "down", _down),
            (encoder, "up", _json_up), (encoder, "down", _json_down), (connection, "writer", ordered_writer),
            (reactor, "_wait_for_io", waiting_for_pollout(reactor._wait_for_io)),
            (peer, "run", no_turn_while_blocked(peer.run, action.NOW, action.LATER))]
