"""mcrd's fixes to how ExaBGP 5.0.15 accepts BGP connections, installed by exabgp_launch.py.

mcrd renders `listen 179;` on every neighbor (exabgp_config.py): ExaBGP then binds the neighbor's local address, port
179, with the neighbor's MD5 key on the listening socket (one socket per local address, one key per peer), and
accepts a connection only from a configured peer to the local address of that peer's session (others get a Cease,
"no session configured"). Read in ExaBGP 5.0.15's source (reactor/listener.py, reactor/peer.py, reactor/loop.py),
three things are wrong for an MCR and one costs too much, fixed here:

1. A missing address stops ExaBGP. At startup a bind that fails ends the process (`Exit.listening`), and an MCR's
   VXC address may not be there yet (the interface comes later, or is held down). Fix: the listening socket is made
   with IP_FREEBIND (IPV6_FREEBIND), so the bind succeeds for an address the namespace does not have yet and the
   socket accepts connections the moment the address arrives: no rebind needed when addresses come and go. A socket
   that still cannot listen (its address in use) is logged and its sessions only connect, at startup as at a reload.

2. Connection collisions (RFC 4271 6.8) are not resolved as the RFC says. `Peer.handle_connection` decides when the new
   connection is accepted, before its OPEN is read: in OpenConfirm it compares the BGP identifiers, but in Connect or
   OpenSent (both sides connected at once, each has sent its OPEN on its own connection) it always drops its own
   connection and takes the new one. Two speakers doing that drop both connections, over and over: two mcrd nodes never
   peered. It does the same in Idle while its own connection is still being opened (`Peer._connect` keeps it out of
   `peer.proto` until the handshake is done), though the other side may have accepted that one already and be about to
   keep it. No NOTIFICATION goes to the connection closed either (the refusal's Cease is a generator nobody runs). Fix:
   when a connection arrives while the peer has one of its own under way (Connect, OpenSent, OpenConfirm, or still being
   opened: `connecting`, recorded by a wrapper of `Protocol.connect`), it waits, without blocking the reactor, for the
   peer's OPEN on it (read with MSG_PEEK, so that ExaBGP reads it again if it keeps the connection), then `verdict()`
   decides: the peer's own attempt still in the TCP handshake (the kernel's TCP state, `tcp_state`) is no connection yet
   and gives way; otherwise the connection initiated by the higher identifier survives (`keep_new`; RFC 6286 2.3: with
   equal identifiers, the larger AS), and the one closed gets a Cease, subcode 7 "Connection Collision Resolution" (RFC
   4486). Meanwhile the session keeps its KEEPALIVE (`Peer._send_ka`, at most `KEEPALIVE_HOLD`): the other side makes it
   Established on receiving it, and the collision is settled at both ends before either connection is Established. On a
   connection mcrd opened the KEEPALIVE also waits for the peer's answer to our OPEN, however late the network delivers
   that OPEN, and then until the peer's own connection is closed at its end (`hold_keepalive`, `keepalive_first`): a
   connection refused (or Ceased by the peer) is kept open at ours until the peer closes it (`Collisions.close`), and
   one the kernel has not handed to ExaBGP yet (in the handshake, or queued) is read from /proc/net/tcp (`unaccepted`).
   FRR 8.4 must not read our KEEPALIVE before the stop it queued for its own connection has run (see `keepalive_first`),
   nor just as it starts a new connection of its own: once it has answered, the KEEPALIVE waits at most ANSWERED_HOLD
   (see `hold_keepalive`). A connection arriving while the session is Established is refused with that Cease, which is
   now really sent.

3. A link-local address cannot listen. The kernel binds an IPv6 link-local address only on a socket that names its
   interface (EINVAL otherwise), and ExaBGP binds the listening socket with the address alone; its connecting side
   has `source-interface` (SO_BINDTODEVICE), which mcrd renders for a link-local session (exabgp_config.py). And an
   accepted link-local connection's ends are named `fe80::1%eth1` by the kernel, which ExaBGP's address parser
   refuses. Fix: the listening socket of a link-local address is bound to the `source-interface` of the session
   whose local address it is (`link_of`), and the scope is dropped from an accepted connection's ends (`unscoped`).

4. Every pass of the reactor tries `accept()` on every listening socket (one per local address: thirty for thirty
   VXCs), and each try that finds no connection raises an exception: while routes move, a tenth of ExaBGP's time
   (S3, 30 spokes, docs/PERFORMANCE.md). Fix: one `poll()` of the listening sockets first (`any_ready`), and ExaBGP's
   own `accept()` loop only when one of them has a connection waiting.

Installed by exabgp_launch.py with its other fixes, all or none (its `HOOKS["listen"]` names what these replace
and use). tests/bgp/test_exabgp_listen.py runs a real ExaBGP Peer through each case of fix 2 on loopback;
tests/lab/test_listen.py makes mcrd's and FRR's connections collide at every return of a session, and holds mcrd's
OPEN in the network while FRR's own connection waits in OpenSent.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import select
import socket
import struct
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from mcrd.bgp import wire
from mcrd.bgp.exabgp_hook import Hook, send_cease

BGP_PORT = 179
IP_FREEBIND = 15  # <linux/in.h>
IPV6_FREEBIND = 78  # <linux/in6.h>, Linux 4.15+
CEASE, CEASE_COLLISION = 6, 7
OPEN_WAIT = 10.0  # seconds the peer has to send its OPEN on a colliding connection before that connection is closed
# Seconds at most that a session keeps its KEEPALIVE (its step to Established) while a colliding connection's OPEN is
# awaited: well under the shortest hold time a peer waits for it in OpenConfirm (3 s). On a connection mcrd opened,
# waiting for the peer's answer to our OPEN is bounded by the hold time instead, and once the peer has answered the
# wait for its own connection to settle by ANSWERED_HOLD (`hold_keepalive`).
KEEPALIVE_HOLD = 2.0
ANSWERED_HOLD = 0.5
_OPEN_PREFIX = 28  # marker 16, length 2, type 1, version 1, my AS 2, hold time 2, BGP identifier 4
_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
TCP_ESTABLISHED, TCP_SYN_RECV = 1, 3  # tcpi_state, <netinet/tcp.h>; also the `st` column of /proc/net/tcp
_CONNECTING = "_mcrd_connecting"  # on a Peer: the Protocol of the connection it is opening, until it takes it


def freebind(sock: socket.socket) -> None:
    """Let `sock` bind an address this host does not have (yet). Best effort: a failure leaves ExaBGP's bind to
    report the missing address as it always did."""
    for level, option in ((socket.IPPROTO_IP, IP_FREEBIND), (socket.IPPROTO_IPV6, IPV6_FREEBIND)):
        if level == socket.IPPROTO_IPV6 and sock.family != socket.AF_INET6:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, 1)


def link_of(address: str, source_interfaces: dict[str, str]) -> str | None:
    """The interface a listening socket on `address` must be bound to: a link-local address binds only with one
    (EINVAL otherwise), the `source-interface` of the session whose local address it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version != 6 or not ip.is_link_local:
        return None
    return source_interfaces.get(str(ip))


def bind_to_link(sock: socket.socket, ifname: str) -> None:
    """SO_BINDTODEVICE; a failure leaves ExaBGP's bind to report the link-local address it cannot use."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode() + b"\0")


def unscoped(address: str) -> str:
    """`fe80::1%eth1` (how the kernel names the ends of a link-local connection) -> `fe80::1`, as ExaBGP's
    neighbors are configured and as its address parser accepts."""
    return address.partition("%")[0]


def _source_interfaces(reactor: Any) -> dict[str, str]:
    """{local address: source-interface} of the configured neighbors that have one (what the reactor listens for)."""
    out: dict[str, str] = {}
    for neighbor in reactor.configuration.neighbors.values():
        interface, local = neighbor["source-interface"], neighbor["md5-ip"]
        if interface and local is not None:
            out[str(ipaddress.ip_address(local.top()))] = interface
    return out


def keep_new(local_id: bytes, remote_id: bytes, local_as: int, remote_as: int) -> bool:
    """RFC 4271 6.8: whether the connection that just arrived (initiated by the peer) survives a collision with the
    one that exists: yes when the local BGP identifier is the lower (compared as unsigned 32-bit integers); with
    equal identifiers (RFC 6286 2.3) when the local AS is the lower."""
    return (int.from_bytes(local_id, "big"), local_as) < (int.from_bytes(remote_id, "big"), remote_as)


class Own(enum.Enum):
    """What a peer has when a new connection's OPEN is read: nothing to collide with (no connection, or its own
    still in the TCP handshake, which the other side has not accepted: no BGP connection yet), a connection that is
    open but not Established (Connect, OpenSent, OpenConfirm; or its own, connected but not yet taken by ExaBGP), or
    an Established session."""

    NONE = "none"
    OPENING = "opening"
    ESTABLISHED = "established"


class Verdict(enum.Enum):
    ACCEPT = "accept"  # take the new connection (any attempt of the peer's own in progress is given up)
    REFUSE = "refuse"  # Cease 6/7 on the new connection, keep the existing one
    REPLACE = "replace"  # Cease 6/7 on the existing connection, take the new one


def verdict(own: Own, new_survives: bool) -> Verdict:
    """RFC 4271 6.8, decided when the new connection's OPEN arrives and before either connection is Established: an
    Established session is kept; otherwise the connection initiated by the higher BGP identifier (`keep_new`)."""
    if own is Own.NONE:
        return Verdict.ACCEPT
    if own is Own.ESTABLISHED or not new_survives:
        return Verdict.REFUSE
    return Verdict.REPLACE


@dataclass(frozen=True)
class PeekedOpen:
    """What the first bytes of a new connection say: `identifier` when they are an OPEN's, `closed` when the peer
    closed it, `invalid` when they are not an OPEN."""

    identifier: bytes | None = None
    closed: bool = False
    invalid: bool = False


def read_open_prefix(data: bytes) -> PeekedOpen | None:
    """The BGP identifier of the OPEN these bytes start; None while too few have arrived."""
    if not data:
        return PeekedOpen(closed=True)
    if data[:len(wire.MARKER)] != wire.MARKER[:len(data)] or (len(data) > 18 and data[18] != wire.OPEN):
        return PeekedOpen(invalid=True)
    if len(data) < _OPEN_PREFIX:
        return None
    return PeekedOpen(identifier=data[24:28])


def peek_open(io: socket.socket) -> PeekedOpen | None:
    try:
        data = io.recv(_OPEN_PREFIX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return PeekedOpen(closed=True)
    return read_open_prefix(data)


def tcp_state(sock: socket.socket) -> int | None:
    """The kernel's TCP state of `sock` (TCP_ESTABLISHED once the three-way handshake is done), None if unknown."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return None


def connecting(peer: Any) -> Any:
    """The connection `peer` is opening itself (ExaBGP's `Peer._connect`, `self.proto` still None), or None."""
    connection = getattr(getattr(peer, _CONNECTING, None), "connection", None)
    return connection if connection is not None and connection.io is not None else None


@dataclass
class _Waiting:
    peer: Any  # exabgp.reactor.peer.Peer
    connection: Any  # exabgp.reactor.network.incoming.Incoming
    deadline: float


def drained(io: socket.socket) -> bool:
    """Read and drop what the peer sent on a connection being closed; True once the peer has closed it too."""
    try:
        while io.recv(4096, socket.MSG_DONTWAIT):
            pass
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return True


class Collisions:
    """The new connections of a reactor waiting for their OPEN (`waiting`), and those it refused, kept until the peer
    closes them (`closing`), by file descriptor."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.waiting: dict[int, _Waiting] = {}
        self.closing: dict[int, _Waiting] = {}

    def add(self, peer: Any, connection: Any) -> None:
        fd = connection.io.fileno()
        self.reactor._poller.register(fd, _POLL_EVENTS)
        self.waiting[fd] = _Waiting(peer, connection, time.monotonic() + OPEN_WAIT)

    def close(self, peer: Any, connection: Any) -> None:
        """Our side of `connection` is done (FIN sent); it is closed once the peer has closed its side: until then
        the peer's state machine may still have that connection's events to run (`collision_pending`)."""
        with contextlib.suppress(OSError):
            connection.io.shutdown(socket.SHUT_WR)
        fd = connection.io.fileno()
        self.reactor._poller.register(fd, _POLL_EVENTS)
        self.closing[fd] = _Waiting(peer, connection, time.monotonic() + OPEN_WAIT)

    def owns(self, fd: int) -> bool:
        return fd in self.waiting or fd in self.closing

    def pending(self, peer: Any) -> bool:
        return any(w.peer is peer for w in (*self.waiting.values(), *self.closing.values()))

    def timeout_ms(self, sleeptime: int) -> int:
        if not self.waiting and not self.closing:
            return sleeptime
        left = min(w.deadline for w in (*self.waiting.values(), *self.closing.values())) - time.monotonic()
        return max(0, min(sleeptime, int(left * 1000) + 1))

    def resolve(self) -> None:
        """Decide every waiting connection whose OPEN has arrived (or that closed, or waited too long); close every
        refused connection the peer has closed (or that waited too long)."""
        now = time.monotonic()
        for fd, closing in list(self.closing.items()):
            if drained(closing.connection.io) or now >= closing.deadline:
                del self.closing[fd]
                self.reactor._poller.unregister(fd)
                closing.connection.close()
        for fd, waiting in list(self.waiting.items()):
            peeked = peek_open(waiting.connection.io)
            if peeked is None and now < waiting.deadline:
                continue
            del self.waiting[fd]
            self.reactor._poller.unregister(fd)
            _decide(waiting.peer, waiting.connection, peeked)


def _refuse(peer: Any, connection: Any, why: str) -> None:
    """Close `connection` with a Cease "Connection Collision Resolution": written at once (the first bytes on the
    connection: the socket's buffer takes them), the connection then kept until the peer closes it."""
    from exabgp.bgp.message import Notify  # type: ignore[import-untyped]

    with contextlib.suppress(OSError):
        connection.io.send(Notify(CEASE, CEASE_COLLISION, why).message(), socket.MSG_DONTWAIT)
    _collisions(peer.reactor).close(peer, connection)


def collision_pending(peer: Any) -> bool:
    """Whether a connection from `peer`'s address is still to be settled: accepted by the listener and not yet
    handed to the peer, waiting for its OPEN, or refused and not yet closed by the peer (Collisions)."""
    collisions = getattr(peer.reactor, "_mcrd_collisions", None)
    if collisions is not None and collisions.pending(peer):
        return True
    address = str(peer.neighbor["peer-address"].top())
    for io in getattr(getattr(peer.reactor, "listener", None), "_accepted", {}).values():
        with contextlib.suppress(OSError):
            if unscoped(io.getpeername()[0]) == address:
                return True
    return False


def keepalive_first(io: socket.socket) -> bool:
    """Whether the peer's answer to our OPEN has arrived on `io` (read with MSG_PEEK: ExaBGP reads it next): its
    KEEPALIVE, or a NOTIFICATION, or the connection closed. A peer sends its KEEPALIVE once it has processed our OPEN,
    collision resolution included (RFC 4271 6.8 runs on receipt of an OPEN). FRR 8.4 must not get our OPEN and
    KEEPALIVE together while its own connection to us is in OpenSent: it stops that connection by an event it queues,
    then takes ours to Established on the KEEPALIVE, then runs the queued stop, which closes ours instead (no
    NOTIFICATION; seen in the MQTT events test with MCRD_FAST_PATH=1, and in FRR's log when our OPEN is held in the
    network past KEEPALIVE_HOLD: "Receive_KEEPALIVE_message (OpenConfirm->Established)", "peer transfer", then
    "BGP_Stop (Established->Clearing)"). FRR writes its KEEPALIVE while still processing our OPEN and reads the
    packets that have arrived in the same pass, so a KEEPALIVE of ours sent on receipt of FRR's can still come before
    the queued stop: hence `hold_keepalive` also waits for FRR's own connection to close at FRR's end, which the stop
    does. The connection's initiator waits, the other side answers at once: two mcrd nodes do not wait for each
    other."""
    try:
        data = io.recv(19, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return not data or len(data) == 19


def hold_keepalive(waited: float, answered_for: float | None, hold_time: int, *, outgoing: bool,
                   pending: Callable[[], bool]) -> bool:
    """Whether a session in OpenConfirm, `waited` seconds into it, keeps its KEEPALIVE a while longer.

    On a connection it opened (`outgoing`), until the peer has answered its OPEN (`keepalive_first`; `answered_for`
    None until then): the peer sends its KEEPALIVE as it processes our OPEN, entering OpenConfirm, so ours reaches it
    a round trip later however long we waited; a KEEPALIVE written before, behind an OPEN the network holds (lost,
    sent again), reaches FRR 8.4 together with the OPEN. Bounded by the negotiated hold time (KEEPALIVE_HOLD if none):
    without the peer's KEEPALIVE by then ExaBGP's own timer ends the connection anyway. Then, while a connection from
    the same peer is being decided, refused and not yet closed by the peer, or not yet accepted (`pending`), at most
    ANSWERED_HOLD: FRR 8.4 sends its KEEPALIVE while still processing our OPEN and may read ours in the same pass,
    before the stop it queued for its own connection has run; that connection closed at its end means the stop has
    run. The stop runs in FRR's next event-loop turn (milliseconds) whether or not its FIN reaches us, and FRR starts a
    new connection of its own 1 s after it at the soonest (its start timer: 1 s, then 2 s): a KEEPALIVE sent when a
    2-s hold ran out (FRR's FIN held in the network) reached FRR just as it started that connection, and FRR ran the
    connection's open event on the session it had just made Established ("TCP_connection_open
    (Established->Clearing)"): a DOWN and a second UP. Hence a KEEPALIVE by half a second after the answer.

    On a connection the peer opened (`answered_for` is `waited`), while `pending`, at most KEEPALIVE_HOLD: the
    colliding connection's OPEN is awaited, the collision settled before either connection is Established."""
    if answered_for is None:
        return waited < (hold_time or KEEPALIVE_HOLD)
    return answered_for < (ANSWERED_HOLD if outgoing else KEEPALIVE_HOLD) and pending()


def proc_net_tcp(text: str) -> list[tuple[str, int, str, int, int]]:
    """The sockets of /proc/net/tcp or /proc/net/tcp6 (the reading process's namespace): (local address, local port,
    remote address, remote port, state). Addresses are printed as 32-bit words in host order (little-endian here)."""
    def address(hex_words: str) -> str:
        raw = b"".join(bytes.fromhex(hex_words[i:i + 8])[::-1] for i in range(0, len(hex_words), 8))
        return str(ipaddress.ip_address(raw))

    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        (local, local_port), (remote, remote_port) = (f.split(":") for f in fields[1:3])
        found.append((address(local), int(local_port, 16), address(remote), int(remote_port, 16), int(fields[3], 16)))
    return found


def unaccepted(sockets: list[tuple[str, int, str, int, int]], local: str, remote: str) -> bool:
    """Whether `remote` has a connection to port 179 of `local` that ExaBGP has not accepted: in the TCP handshake
    (SYN_RECV, the peer's side of it may be open and in OpenSent already) or in the listening socket's queue. Call it
    only when no accepted connection from `remote` is open (`collision_pending` False): those are ESTABLISHED too."""
    return any(la == local and lp == BGP_PORT and ra == remote and st in (TCP_SYN_RECV, TCP_ESTABLISHED)
               for la, lp, ra, _, st in sockets)


def _unaccepted_from(connection: Any) -> bool:
    try:
        local, remote = connection.io.getsockname()[0], connection.io.getpeername()[0]
        path = "/proc/net/tcp6" if connection.io.family == socket.AF_INET6 else "/proc/net/tcp"
        with open(path) as table:
            return unaccepted(proc_net_tcp(table.read()), unscoped(local), unscoped(remote))
    except (OSError, ValueError):
        return False


def _has_own(peer: Any) -> bool:
    """Whether `peer` has a connection of its own under way that a new one may collide with: one it opened (or
    accepted) in Connect, OpenSent or OpenConfirm, or one it is still opening (ExaBGP keeps that one out of
    `peer.proto` until the handshake is done, with the FSM in Idle)."""
    from exabgp.bgp.fsm import FSM  # type: ignore[import-untyped]

    if peer.proto is not None:
        return bool(peer.fsm in (FSM.CONNECT, FSM.OPENSENT, FSM.OPENCONFIRM))
    return connecting(peer) is not None


def _own_state(peer: Any) -> Own:
    """What `peer` has when a new connection's OPEN is read (see `Own`)."""
    from exabgp.bgp.fsm import FSM

    if peer.proto is not None:
        if peer.fsm == FSM.ESTABLISHED:
            return Own.ESTABLISHED
        return Own.OPENING if peer.fsm in (FSM.CONNECT, FSM.OPENSENT, FSM.OPENCONFIRM) else Own.NONE
    opening = connecting(peer)
    if opening is None:
        return Own.NONE
    return Own.OPENING if tcp_state(opening.io) == TCP_ESTABLISHED else Own.NONE


def _decide(peer: Any, connection: Any, peeked: PeekedOpen | None) -> None:
    from exabgp.bgp.fsm import FSM

    if peeked is not None and peeked.invalid:  # e.g. the peer's own Cease: closed once the peer has closed it
        _collisions(peer.reactor).close(peer, connection)
        return
    if peeked is None or peeked.identifier is None:  # no OPEN: nothing to compare, the connection is not BGP's
        connection.close()
        return
    own = Own.NONE if peer.stopping() else _own_state(peer)
    new_survives = keep_new(peer.neighbor["router-id"].pack(), peeked.identifier, int(peer.neighbor["local-as"]),
                            int(peer.neighbor["peer-as"]))
    outcome = verdict(own, new_survives)
    if outcome is Verdict.REFUSE:
        _refuse(peer, connection, "connection collision resolution: the existing connection survives")
        return
    if outcome is Verdict.REPLACE:
        if peer.proto is not None:
            send_cease(peer, CEASE_COLLISION, states=(FSM.CONNECT, FSM.OPENSENT, FSM.OPENCONFIRM))
            peer._close("connection collision resolution: the peer's connection survives")
        else:  # connected, not yet taken: the peer has it in OpenSent, its own OPEN sent; ours is not
            _abort(connecting(peer), cease=True)
    else:
        _abort(connecting(peer), cease=False)
    _stock_handle_connection(peer, connection)  # drops the attempt in progress, if any, with its generator


def _abort(opening: Any, cease: bool) -> None:
    """Close the connection the peer was opening itself and gives up. `cease`: its handshake is done and the other
    side speaks BGP on it, so it gets a Cease "Connection Collision Resolution" first. Otherwise it is reset: were its
    handshake to complete just now, the other side must not keep a connection of ours open until a FIN arrives."""
    if opening is None:
        return
    io = opening.io
    with contextlib.suppress(OSError):
        if cease:
            io.send(wire.notification(CEASE, CEASE_COLLISION), socket.MSG_DONTWAIT)
        else:
            io.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    opening.close()


def _stock_handle_connection(peer: Any, connection: Any) -> None:
    refusal = _HANDLE_CONNECTION(peer, connection)
    if refusal is not None:  # a Cease generator that stock ExaBGP never runs
        peer.reactor.asynchronous.schedule(str(uuid.uuid1()), "refusing a connection", refusal)


_HANDLE_CONNECTION: Any = None


_LISTEN_POLL = "_mcrd_listen_poll"


def any_ready(listener: Any) -> bool:
    """Fix 4: whether a listening socket of `listener` (ExaBGP's `Listener._sockets`) has a connection to accept, or
    an error to report; one `poll()` for all, its registrations kept while the set of sockets stays the same."""
    sockets = listener._sockets.keys()
    cached = listener.__dict__.get(_LISTEN_POLL)
    if cached is None or cached[0] != sockets:
        poller = select.poll()
        try:
            for sock in sockets:
                poller.register(sock, select.POLLIN)
        except (ValueError, OSError):  # a socket closed but still listed: ExaBGP's own loop deals with it
            return True
        cached = (frozenset(sockets), poller)
        listener.__dict__[_LISTEN_POLL] = cached
    return bool(cached[1].poll(0))


def _collisions(reactor: Any) -> Collisions:
    found = getattr(reactor, "_mcrd_collisions", None)
    if found is None:
        found = reactor._mcrd_collisions = Collisions(reactor)
    return found


def replacements(find: Callable[[Any], Any]) -> list[tuple[Any, str, Any]]:
    """The four fixes, as (class, attribute, new value) for exabgp_launch.install() to make (and undo if need be)."""
    from exabgp.bgp.fsm import FSM


    listener = find(Hook("exabgp.reactor.listener", "Listener"))
    reactor = find(Hook("exabgp.reactor.loop", "Reactor"))
    peer = find(Hook("exabgp.reactor.peer", "Peer"))
    incoming = find(Hook("exabgp.reactor.network.incoming", "Incoming"))
    protocol = find(Hook("exabgp.reactor.protocol", "Protocol"))

    global _HANDLE_CONNECTION
    new_socket = listener._new_socket

    def _new_socket(self: Any, ip: Any) -> Any:
        sock = new_socket(self, ip)
        freebind(sock)
        link = link_of(ip.top(), _source_interfaces(self._reactor))
        if link:
            bind_to_link(sock, link)
        return sock

    incoming_init = incoming.__init__

    def _incoming_init(self: Any, afi: Any, peer_address: str, local_address: str, io: Any) -> None:
        incoming_init(self, afi, unscoped(peer_address), unscoped(local_address), io)

    _HANDLE_CONNECTION = peer.handle_connection

    protocol_connect = protocol.connect

    def connect(self: Any) -> Generator[Any, Any, Any]:
        # The connection being opened, for handle_connection to see: ExaBGP keeps it in a local of Peer._connect.
        owner = self.peer
        setattr(owner, _CONNECTING, self)
        try:
            return (yield from protocol_connect(self))
        finally:  # taken (Peer._connect breaks out of this generator), failed, or dropped with the peer's generator
            if getattr(owner, _CONNECTING, None) is self:
                setattr(owner, _CONNECTING, None)

    send_ka = peer._send_ka
    later = find(Hook("exabgp.reactor.peer", "ACTION.LATER"))

    def _send_ka(self: Any) -> Generator[Any, Any, Any]:
        # OpenConfirm: our KEEPALIVE makes the session Established at the other end. On a connection we opened not
        # before the peer's KEEPALIVE, and not while a connection from the same peer is unsettled (being decided,
        # refused and still open at the peer, not yet accepted): the collision is settled first, at both ends, before
        # either connection is Established (see `hold_keepalive`, `keepalive_first`).
        start, connection = time.monotonic(), self.proto.connection
        hold_time = int(self.proto.negotiated.holdtime)
        outgoing = connection.direction == "outgoing"
        answered = None if outgoing else start
        while True:
            now = time.monotonic()
            if answered is None and keepalive_first(connection.io):
                answered = now
            if not hold_keepalive(now - start, None if answered is None else now - answered, hold_time,
                                  outgoing=outgoing, pending=lambda: collision_pending(self) or (
                                      outgoing and _unaccepted_from(connection))):
                break
            yield later
        return (yield from send_ka(self))

    def handle_connection(self: Any, connection: Any) -> Any:
        if self.stopping() or self.fsm == FSM.ESTABLISHED or not _has_own(self):
            _stock_handle_connection(self, connection)
            return None  # the refusal, if any, is scheduled: the listener has nothing more to do
        _collisions(self.reactor).add(self, connection)
        return None

    wait_for_io = reactor._wait_for_io

    def _wait_for_io(self: Any, sleeptime: int) -> Any:
        collisions = _collisions(self)
        for fd in wait_for_io(self, collisions.timeout_ms(sleeptime)):
            if not collisions.owns(fd):  # the reactor knows only its peers' and processes' descriptors
                yield fd
        collisions.resolve()

    stock_incoming = listener.incoming

    def _incoming(self: Any) -> Any:
        if self.serving and not any_ready(self):
            return False  # what ExaBGP's loop finds when no accept() succeeds
        return stock_incoming(self)

    listen_for_neighbors = reactor._listen_for_neighbors

    def _listen_for_neighbors(self: Any) -> bool:
        # A socket that cannot listen (its address is in use, or cannot be bound at all) was logged by ExaBGP; its
        # sessions still connect out. Stock ExaBGP exits at startup instead: one address would stop every session.
        listen_for_neighbors(self)
        return True

    return [(listener, "_new_socket", _new_socket), (incoming, "__init__", _incoming_init),
            (peer, "handle_connection", handle_connection),
            (protocol, "connect", connect), (peer, "_send_ka", _send_ka),
            (reactor, "_wait_for_io", _wait_for_io), (reactor, "_listen_for_neighbors", _listen_for_neighbors),
            (listener, "incoming", _incoming)]
