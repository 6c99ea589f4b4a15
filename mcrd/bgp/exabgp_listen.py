"""mcrd's fixes to how ExaBGP 5.0.15 accepts BGP connections, installed by exabgp_launch.py.

mcrd renders `listen 179;` on every neighbor (exabgp_config.py): ExaBGP then binds the neighbor's local address, port
179, with the neighbor's MD5 key on the listening socket (one socket per local address, one key per peer), and
accepts a connection only from a configured peer to the local address of that peer's session (others get a Cease,
"no session configured"). Read in ExaBGP 5.0.15's source (reactor/listener.py, reactor/peer.py, reactor/loop.py),
three things are wrong for an MCR, fixed here:

1. A missing address stops ExaBGP. At startup a bind that fails ends the process (`Exit.listening`), and an MCR's
   VXC address may not be there yet (the interface comes later, or is held down). Fix: the listening socket is made
   with IP_FREEBIND (IPV6_FREEBIND), so the bind succeeds for an address the namespace does not have yet and the
   socket accepts connections the moment the address arrives: no rebind needed when addresses come and go. A socket
   that still cannot listen (its address in use) is logged and its sessions only connect, at startup as at a reload.

2. Connection collisions (RFC 4271 6.8) are not resolved as the RFC says. `Peer.handle_connection` decides when the
   new connection is accepted, before its OPEN is read: in OpenConfirm it compares the BGP identifiers, but in
   Connect or OpenSent (both sides connected at once, each has sent its OPEN on its own connection) it always drops
   its own connection and takes the new one. Two speakers doing that drop both connections, over and over: two mcrd
   nodes never peered. No NOTIFICATION goes to the connection closed either (the refusal's Cease is a generator
   nobody runs). Fix: when a connection arrives while the peer's connection is in Connect, OpenSent or
   OpenConfirm, it waits, without blocking the reactor, for the peer's OPEN on it (read with MSG_PEEK, so that
   ExaBGP reads it again if it keeps the connection), then `keep_new()` decides with the BGP identifiers: the
   connection initiated by the higher identifier survives (RFC 6286 2.3: with equal identifiers, the larger AS),
   and the one closed gets a Cease, subcode 7 "Connection Collision Resolution" (RFC 4486). A connection arriving
   while the session is Established is refused with that Cease, which is now really sent.

3. A link-local address cannot listen. The kernel binds an IPv6 link-local address only on a socket that names its
   interface (EINVAL otherwise), and ExaBGP binds the listening socket with the address alone; its connecting side
   has `source-interface` (SO_BINDTODEVICE), which mcrd renders for a link-local session (exabgp_config.py). And an
   accepted link-local connection's ends are named `fe80::1%eth1` by the kernel, which ExaBGP's address parser
   refuses. Fix: the listening socket of a link-local address is bound to the `source-interface` of the session
   whose local address it is (`link_of`), and the scope is dropped from an accepted connection's ends (`unscoped`).

Installed by exabgp_launch.py with its other fixes, all or none (its `HOOKS["listen"]` names what these replace
and use).
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcrd.bgp.exabgp_hook import Hook, send_cease

BGP_PORT = 179
IP_FREEBIND = 15  # <linux/in.h>
IPV6_FREEBIND = 78  # <linux/in6.h>, Linux 4.15+
CEASE, CEASE_COLLISION = 6, 7
OPEN_WAIT = 10.0  # seconds the peer has to send its OPEN on a colliding connection before that connection is closed
_OPEN_PREFIX = 28  # marker 16, length 2, type 1, version 1, my AS 2, hold time 2, BGP identifier 4
_MARKER = b"\xff" * 16
_OPEN = 1
_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


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
    if data[:len(_MARKER)] != _MARKER[:len(data)] or (len(data) > 18 and data[18] != _OPEN):
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


@dataclass
class _Waiting:
    peer: Any  # exabgp.reactor.peer.Peer
    connection: Any  # exabgp.reactor.network.incoming.Incoming
    deadline: float


class Collisions:
    """The new connections of a reactor waiting for their OPEN, by file descriptor."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.waiting: dict[int, _Waiting] = {}

    def add(self, peer: Any, connection: Any) -> None:
        fd = connection.io.fileno()
        self.reactor._poller.register(fd, _POLL_EVENTS)
        self.waiting[fd] = _Waiting(peer, connection, time.monotonic() + OPEN_WAIT)

    def timeout_ms(self, sleeptime: int) -> int:
        if not self.waiting:
            return sleeptime
        left = min(w.deadline for w in self.waiting.values()) - time.monotonic()
        return max(0, min(sleeptime, int(left * 1000) + 1))

    def resolve(self) -> None:
        """Decide every waiting connection whose OPEN has arrived (or that closed, or waited too long)."""
        now = time.monotonic()
        for fd, waiting in list(self.waiting.items()):
            peeked = peek_open(waiting.connection.io)
            if peeked is None and now < waiting.deadline:
                continue
            del self.waiting[fd]
            self.reactor._poller.unregister(fd)
            _decide(waiting.peer, waiting.connection, peeked)


def _refuse(reactor: Any, connection: Any, why: str) -> None:
    """Close `connection` with a Cease "Connection Collision Resolution", written by the reactor's scheduler."""
    reactor.asynchronous.schedule(str(uuid.uuid1()), f"sending notification ({CEASE},{CEASE_COLLISION})",
                                  connection.notification(CEASE, CEASE_COLLISION, why))


def _decide(peer: Any, connection: Any, peeked: PeekedOpen | None) -> None:
    from exabgp.bgp.fsm import FSM  # type: ignore[import-untyped]


    if peeked is None or peeked.identifier is None:  # no OPEN: nothing to compare, the connection is not BGP's
        connection.close()
        return
    existing = peer.proto is not None and peer.fsm in (FSM.CONNECT, FSM.OPENSENT, FSM.OPENCONFIRM, FSM.ESTABLISHED)
    if not existing or peer.stopping():  # the other connection failed meanwhile: no collision any more
        _stock_handle_connection(peer, connection)
        return
    if peer.fsm == FSM.ESTABLISHED or not keep_new(peer.neighbor["router-id"].pack(), peeked.identifier,
                                                   int(peer.neighbor["local-as"]), int(peer.neighbor["peer-as"])):
        _refuse(peer.reactor, connection, "connection collision resolution: the existing connection survives")
        return
    send_cease(peer, CEASE_COLLISION, states=(FSM.CONNECT, FSM.OPENSENT, FSM.OPENCONFIRM))
    peer._close("connection collision resolution: the peer's connection survives")
    _stock_handle_connection(peer, connection)


def _stock_handle_connection(peer: Any, connection: Any) -> None:
    refusal = _HANDLE_CONNECTION(peer, connection)
    if refusal is not None:  # a Cease generator that stock ExaBGP never runs
        peer.reactor.asynchronous.schedule(str(uuid.uuid1()), "refusing a connection", refusal)


_HANDLE_CONNECTION: Any = None


def _collisions(reactor: Any) -> Collisions:
    found = getattr(reactor, "_mcrd_collisions", None)
    if found is None:
        found = reactor._mcrd_collisions = Collisions(reactor)
    return found


def replacements(find: Callable[[Any], Any]) -> list[tuple[Any, str, Any]]:
    """The three fixes, as (class, attribute, new value) for exabgp_launch.install() to make (and undo if need be)."""
    from exabgp.bgp.fsm import FSM


    listener = find(Hook("exabgp.reactor.listener", "Listener"))
    reactor = find(Hook("exabgp.reactor.loop", "Reactor"))
    peer = find(Hook("exabgp.reactor.peer", "Peer"))
    incoming = find(Hook("exabgp.reactor.network.incoming", "Incoming"))

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

    def handle_connection(self: Any, connection: Any) -> Any:
        if self.stopping() or self.fsm == FSM.ESTABLISHED or self.proto is None or self.fsm not in (
                FSM.CONNECT, FSM.OPENSENT, FSM.OPENCONFIRM):
            _stock_handle_connection(self, connection)
            return None  # the refusal, if any, is scheduled: the listener has nothing more to do
        _collisions(self.reactor).add(self, connection)
        return None

    wait_for_io = reactor._wait_for_io

    def _wait_for_io(self: Any, sleeptime: int) -> Any:
        collisions = _collisions(self)
        for fd in wait_for_io(self, collisions.timeout_ms(sleeptime)):
            if fd not in collisions.waiting:  # the reactor knows only its peers' and processes' descriptors
                yield fd
        collisions.resolve()

    listen_for_neighbors = reactor._listen_for_neighbors

    def _listen_for_neighbors(self: Any) -> bool:
        # A socket that cannot listen (its address is in use, or cannot be bound at all) was logged by ExaBGP; its
        # sessions still connect out. Stock ExaBGP exits at startup instead: one address would stop every session.
        listen_for_neighbors(self)
        return True

    return [(listener, "_new_socket", _new_socket), (incoming, "__init__", _incoming_init),
            (peer, "handle_connection", handle_connection),
            (reactor, "_wait_for_io", _wait_for_io), (reactor, "_listen_for_neighbors", _listen_for_neighbors)]
