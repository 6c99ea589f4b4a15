"""The BFD engine's I/O edge: sockets, timers and the session table around the pure state machine (session.py).

Sockets (RFC 5881): one receiving socket per address family on UDP 3784 (IP_RECVTTL / IPV6_RECVHOPLIMIT and the
packet-info options through recvmsg, so a packet whose TTL/hop limit is not 255 or that came in on another device is
discarded); one sending socket per session, bound to the connection's local address and a source port in
49152-65535, TTL/hop limit 255, DSCP CS6, SO_BINDTODEVICE to the VXC's device when known, IP_FREEBIND so a session
can be set up before its address is (the first packets then fail to send and are retried on every tick).
Plain non-blocking sockets with loop.add_reader (asyncio datagram endpoints, and uvloop's, give no ancillary data),
on an event loop in a thread of the manager's own (see BfdManager).  One loop timer per session, set to the earlier of
its next transmission and its Detection Time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from mcrd.bfd import session as sm
from mcrd.bfd.packet import BfdDiag, BfdState, DiscardError, decode, encode

CONTROL_PORT = 3784
SOURCE_PORTS = (49152, 65535)
TTL = 255
DSCP_CS6 = 0xC0
RX_RETRY = 5.0  # seconds between attempts to open a receiving socket that failed
CLOSE_WAIT = 5.0  # seconds close() waits for the BFD thread

# Linux values the socket module does not export.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
_ANC_SIZE = 256


@dataclass(frozen=True, slots=True)
class BfdPeerConfig:
    peer: IPv4Address | IPv6Address  # the BGP connection's peerIpAddress
    local: IPv4Address | IPv6Address  # its localIpAddress
    interface: str | None  # Linux device of the VXC (SO_BINDTODEVICE), None = any
    tx_interval_ms: int = 300  # Desired Min TX Interval (the interface's bfd.txInterval)
    rx_interval_ms: int = 300  # Required Min RX Interval (bfd.rxInterval)
    multiplier: int = 3  # Detect Mult (bfd.multiplier)

    def __post_init__(self) -> None:
        if self.peer.version != self.local.version:
            raise ValueError(f"BFD peer {self.peer}: local address {self.local} is of another family")
        self.timers()  # range checks

    def timers(self) -> sm.Timers:
        return sm.Timers(self.tx_interval_ms * 1000, self.rx_interval_ms * 1000, self.multiplier)


@dataclass(frozen=True, slots=True)
class BfdStatus:
    """A snapshot for the looking glass and metrics."""

    peer: str
    local: str
    interface: str | None
    state: BfdState
    remote_state: BfdState
    local_diag: BfdDiag
    remote_diag: BfdDiag
    local_discriminator: int
    remote_discriminator: int
    tx_interval_ms: float  # negotiated: max(local desired tx, remote required rx)
    rx_interval_ms: float  # max(local required rx, remote desired tx)
    detection_time_ms: float  # remote multiplier x agreed interval (RFC 5880 6.8.4)
    remote_multiplier: int
    transitions: int
    last_change: float | None  # monotonic seconds
    # Additions beyond the agreed interface.
    tx_packets: int = 0
    rx_packets: int = 0
    discarded: int = 0  # packets that reached this session's address but failed a check


@dataclass(frozen=True, slots=True)
class BfdTransition:
    peer: str
    old: BfdState
    new: BfdState
    diag: BfdDiag
    at: float  # monotonic seconds
    # Addition: the peer's state as last heard.  Down with diag 3 and remote_state AdminDown means the peer was
    # taken down on purpose, not a forwarding failure (RFC 5882 3.2).
    remote_state: BfdState = BfdState.DOWN


@dataclass(slots=True)
class _Peer:
    cfg: BfdPeerConfig
    session: sm.Session
    sock: socket.socket | None = None
    timer: asyncio.TimerHandle | None = None
    tx_packets: int = 0
    rx_packets: int = 0
    discarded: int = 0
    last_error: str | None = field(default=None)


def _ip(text: str) -> IPv4Address | IPv6Address:
    return ipaddress.ip_address(text.split("%", 1)[0])


class BfdManager:
    """The BFD sessions of one mcrd.

    The sessions run in a thread of their own with its own event loop, so that a busy daemon loop (a large route
    burst, a slow reload) neither delays our packets nor lets the peer's packets wait unread past the Detection Time:
    either would take BFD, and with it BGP, down for nothing.  Transitions are handed to `on_transition` on the loop
    that runs `run()`, in order.  `configure`, `status` and `close` are called from that loop too.
    """

    def __init__(
        self,
        on_transition: Callable[[BfdTransition], None],
        log: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_transition = on_transition
        self._log = log
        self._clock = clock
        self._rng = random.Random()
        # Everything below is touched by the BFD thread under _lock (status() and configure() take it too).
        self._lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}
        self._by_discr: dict[int, _Peer] = {}
        self._rx: dict[int, socket.socket] = {}  # family -> receiving socket
        self._rx_error: dict[int, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the BFD thread's loop, while it runs
        self._main: asyncio.AbstractEventLoop | None = None  # where transitions are delivered
        self._closed = False
        self._wake: asyncio.Event | None = None

    # ---- public interface ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every configured session (in the BFD thread) until close(); cancellation stops the thread and closes
        the sockets without telling the peers (they see the sessions time out, as after a crash)."""
        if self._closed:
            return
        main = self._main = asyncio.get_running_loop()
        done: asyncio.Future[None] = main.create_future()

        def finished(exc: BaseException | None) -> None:
            if not done.done():
                if exc is None:
                    done.set_result(None)
                else:
                    done.set_exception(exc)

        def body() -> None:
            loop = asyncio.new_event_loop()
            error: BaseException | None = None
            try:
                loop.run_until_complete(self._serve())
                loop.run_until_complete(asyncio.sleep(0))  # callbacks posted while it stopped (a close())
            except BaseException as exc:
                error = exc
            finally:
                loop.close()
                with contextlib.suppress(RuntimeError):  # the daemon's loop is gone already
                    main.call_soon_threadsafe(finished, error)

        thread = threading.Thread(target=body, name="mcrd-bfd", daemon=True)
        thread.start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self._in_thread(lambda: self._shutdown(admin_down=False))
            raise

    def configure(self, peers: Iterable[BfdPeerConfig]) -> None:
        """The whole desired set: adds new sessions, removes missing ones (AdminDown sent first), retimes those whose
        timers changed (a Poll Sequence), recreates those whose local address or device changed, leaves the rest."""
        if self._closed:
            self._log.warning("bfd_configure_after_close")
            return
        wanted: dict[str, BfdPeerConfig] = {}
        for cfg in peers:
            key = str(cfg.peer)
            if key in wanted and wanted[key] != cfg:
                raise ValueError(f"BFD peer {key} configured twice with different settings")
            wanted[key] = cfg
        self._in_thread(lambda: self._configure(wanted))

    def status(self) -> dict[str, BfdStatus]:
        with self._lock:
            return {key: self._status(key, p) for key, p in self._peers.items()}

    async def close(self) -> None:
        """AdminDown (diag 7) to every peer, then every socket closed; run() returns."""
        if self._closed:
            return
        here = asyncio.get_running_loop()
        done: asyncio.Future[None] = here.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def shut() -> None:
            if not self._closed:
                self._shutdown(admin_down=True)
            here.call_soon_threadsafe(resolve)

        self._in_thread(shut)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), CLOSE_WAIT)
        with self._lock:  # in case the BFD thread ended without running it
            if not self._closed:
                self._shutdown(admin_down=False)

    # ---- the BFD thread --------------------------------------------------------------------------------------------

    def _in_thread(self, fn: Callable[[], None]) -> None:
        """Run `fn` under the lock in the BFD thread, or here at once when that thread does not run (yet)."""
        with self._lock:
            loop = self._loop
            if loop is None:
                fn()
                return

        def locked() -> None:
            with self._lock:
                fn()

        try:
            loop.call_soon_threadsafe(locked)
        except RuntimeError:  # the BFD loop closed in between
            with self._lock:
                fn()

    async def _serve(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            for peer in self._peers.values():
                self._schedule(peer)
        try:
            while not self._closed:
                with self._lock:
                    missing = self._open_rx()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RX_RETRY if missing else None)
                self._wake.clear()
        finally:
            with self._lock:
                if not self._closed:
                    self._shutdown(admin_down=False)
                self._loop = None

    def _configure(self, wanted: dict[str, BfdPeerConfig]) -> None:
        if self._closed:
            return
        for key in [k for k in self._peers if k not in wanted]:
            self._remove(key)
        for key, cfg in wanted.items():
            have = self._peers.get(key)
            if have is not None and have.cfg == cfg:
                continue
            if have is not None and (have.cfg.local, have.cfg.interface) == (cfg.local, cfg.interface):
                have.cfg = cfg
                self._log.info("bfd_retime", peer=key, tx_ms=cfg.tx_interval_ms, rx_ms=cfg.rx_interval_ms,
                               multiplier=cfg.multiplier)
                self._apply(have, sm.retime(have.session, cfg.timers(), self._clock(), self._rng.random()))
                continue
            if have is not None:
                self._remove(key)
            self._add(key, cfg)
        if self._wake is not None:
            self._wake.set()  # a family may need its receiving socket

    # ---- sessions (BFD thread, lock held) --------------------------------------------------------------------------

    def _new_discriminator(self) -> int:
        while True:
            d = self._rng.randrange(1, 1 << 32)
            if d not in self._by_discr:
                return d

    def _add(self, key: str, cfg: BfdPeerConfig) -> None:
        peer = _Peer(cfg, sm.new_session(self._new_discriminator(), cfg.timers(), self._clock()))
        self._peers[key] = peer
        self._by_discr[peer.session.local_discr] = peer
        self._log.info("bfd_session_added", peer=key, local=str(cfg.local), interface=cfg.interface,
                       tx_ms=cfg.tx_interval_ms, rx_ms=cfg.rx_interval_ms, multiplier=cfg.multiplier)
        if self._running:
            self._schedule(peer)

    def _remove(self, key: str) -> None:
        peer = self._peers.pop(key)
        self._by_discr.pop(peer.session.local_discr, None)
        self._apply(peer, sm.admin_down(peer.session, self._clock(), self._rng.random()), schedule=False)
        self._drop(peer)
        self._log.info("bfd_session_removed", peer=key)

    def _drop(self, peer: _Peer) -> None:
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None
        if peer.sock is not None:
            peer.sock.close()
            peer.sock = None

    @property
    def _running(self) -> bool:
        return self._loop is not None and not self._closed

    def _apply(self, peer: _Peer, step: sm.Step, *, schedule: bool = True) -> None:
        """Carry out what the state machine returned: send, report the transition, re-arm the timer."""
        peer.session = step.session
        if step.send is not None and self._running:
            self._send(peer, encode(step.send))
        if step.transition is not None:
            t = step.transition
            event = BfdTransition(str(peer.cfg.peer), t.old, t.new, t.diag, t.at, peer.session.remote_state)
            self._log.info("bfd_state", peer=event.peer, old=str(t.old), new=str(t.new), diag=t.diag.name.lower(),
                           remote_state=str(event.remote_state), remote_diag=peer.session.remote_diag.name.lower())
            if self._main is not None:
                with contextlib.suppress(RuntimeError):  # the daemon's loop is closed: nobody to tell
                    self._main.call_soon_threadsafe(self._deliver, event)
        if schedule and self._running:
            self._schedule(peer)

    def _deliver(self, event: BfdTransition) -> None:
        """On the daemon's loop."""
        try:
            self._on_transition(event)
        except Exception as exc:  # a consumer's bug must not stop the sessions
            self._log.error("bfd_transition_handler_failed", peer=event.peer, error=repr(exc))

    def _schedule(self, peer: _Peer) -> None:
        assert self._loop is not None
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None
        at = sm.wakeup(peer.session)
        if at is not None:
            # A delay, not loop.call_at: the loop's clock need not be the one the sessions run on.
            peer.timer = self._loop.call_later(max(0.0, at - self._clock()), self._tick, peer)

    def _tick(self, peer: _Peer) -> None:
        with self._lock:
            peer.timer = None
            if self._peers.get(str(peer.cfg.peer)) is not peer:
                return
            deadline = peer.session.detect_deadline
            if deadline is not None and self._clock() >= deadline:
                # Read what has arrived before declaring the peer silent: packets that waited in the socket because
                # this thread was not scheduled in time are not a failure of the path.
                for sock in list(self._rx.values()):
                    self._drain(sock)
            self._apply(peer, sm.expire(peer.session, self._clock(), self._rng.random()))

    def _status(self, key: str, p: _Peer) -> BfdStatus:
        s = p.session
        return BfdStatus(
            peer=key,
            local=str(p.cfg.local),
            interface=p.cfg.interface,
            state=s.state,
            remote_state=s.remote_state,
            local_diag=s.local_diag,
            remote_diag=s.remote_diag,
            local_discriminator=s.local_discr,
            remote_discriminator=s.remote_discr,
            tx_interval_ms=s.tx_interval_us / 1000,
            rx_interval_ms=s.rx_interval_us / 1000,
            detection_time_ms=s.detection_time_us / 1000,
            remote_multiplier=s.remote_detect_mult,
            transitions=s.transitions,
            last_change=s.last_change,
            tx_packets=p.tx_packets,
            rx_packets=p.rx_packets,
            discarded=p.discarded,
        )

    def _shutdown(self, *, admin_down: bool) -> None:
        for peer in self._peers.values():
            if admin_down and self._loop is not None:
                self._apply(peer, sm.admin_down(peer.session, self._clock(), self._rng.random()), schedule=False)
            self._drop(peer)
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        for family, sock in list(self._rx.items()):
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
            del self._rx[family]

    # ---- sending ---------------------------------------------------------------------------------------------------

    def _open_tx(self, cfg: BfdPeerConfig) -> socket.socket:
        family = socket.AF_INET6 if cfg.peer.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)  # honoured for IPv6 sockets too
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_CS6)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, DSCP_CS6)
            if cfg.interface:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, cfg.interface.encode())
            scope = self._scope(cfg)
            for port in self._rng.sample(range(SOURCE_PORTS[0], SOURCE_PORTS[1] + 1), 64):
                try:
                    if family == socket.AF_INET:
                        sock.bind((str(cfg.local), port))
                    else:
                        sock.bind((str(cfg.local), port, 0, scope))
                    return sock
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            raise OSError(errno.EADDRINUSE, "no free source port in 49152-65535")
        except BaseException:
            sock.close()
            raise

    @staticmethod
    def _scope(cfg: BfdPeerConfig) -> int:
        if cfg.peer.version == 6 and cfg.peer.is_link_local and cfg.interface:
            return socket.if_nametoindex(cfg.interface)
        return 0

    def _send(self, peer: _Peer, data: bytes) -> None:
        cfg = peer.cfg
        try:
            if peer.sock is None:
                peer.sock = self._open_tx(cfg)
            if cfg.peer.version == 4:
                peer.sock.sendto(data, (str(cfg.peer), CONTROL_PORT))
            else:
                peer.sock.sendto(data, (str(cfg.peer), CONTROL_PORT, 0, self._scope(cfg)))
        except OSError as exc:
            # Logged once per distinct error: a missing address or device repeats at every packet.
            error = exc.strerror or repr(exc)
            if error != peer.last_error:
                self._log.warning("bfd_send_failed", peer=str(cfg.peer), local=str(cfg.local),
                                  interface=cfg.interface, error=error)
                peer.last_error = error
            if peer.sock is not None and not isinstance(exc, BlockingIOError) and exc.errno != errno.ENOBUFS:
                # Reopened at the next packet: a device deleted and created again has a new index, an address that
                # came back may need a new bind.
                peer.sock.close()
                peer.sock = None
            return
        peer.tx_packets += 1
        if peer.last_error is not None:
            self._log.info("bfd_send_recovered", peer=str(cfg.peer))
            peer.last_error = None

    # ---- receiving -------------------------------------------------------------------------------------------------

    def _open_rx(self) -> bool:
        """Open the receiving socket of every family in use; True when one could not be opened (retried later)."""
        if not self._running:
            return False
        assert self._loop is not None
        families = {socket.AF_INET6 if p.cfg.peer.version == 6 else socket.AF_INET for p in self._peers.values()}
        missing = False
        for family in families - set(self._rx):
            try:
                sock = self._rx_socket(family)
            except OSError as exc:
                missing = True
                error = exc.strerror or repr(exc)
                if self._rx_error.get(family) != error:
                    self._log.error("bfd_listen_failed", family=socket.AddressFamily(family).name,
                                    port=CONTROL_PORT, error=error)
                    self._rx_error[family] = error
                continue
            self._rx_error.pop(family, None)
            self._rx[family] = sock
            self._loop.add_reader(sock.fileno(), self._readable, sock)
        return missing

    @staticmethod
    def _rx_socket(family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.bind(("0.0.0.0", CONTROL_PORT))
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                sock.bind(("::", CONTROL_PORT))
        except BaseException:
            sock.close()
            raise
        return sock

    def _readable(self, sock: socket.socket) -> None:
        with self._lock:
            self._drain(sock)

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(64):  # bounded, so one busy socket cannot starve the loop
            try:
                data, anc, _flags, addr = sock.recvmsg(512, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._log.warning("bfd_receive_failed", error=exc.strerror or repr(exc))
                return
            ttl, ifindex = _ancillary(anc)
            self._received(data, _ip(addr[0]), ttl, ifindex)

    def _received(self, data: bytes, source: IPv4Address | IPv6Address, ttl: int | None, ifindex: int | None) -> None:
        peer = self._peers.get(str(source))
        try:
            p = decode(data)
            if p.your_discriminator:
                by_discr = self._by_discr.get(p.your_discriminator)
                if by_discr is None:
                    raise DiscardError(f"your discriminator {p.your_discriminator} matches no session")
                if by_discr is not peer:
                    raise DiscardError(f"your discriminator {p.your_discriminator} belongs to another peer")
            if peer is None:
                raise DiscardError("no session for this source address")
            if ttl != TTL:
                raise DiscardError(f"TTL/hop limit {ttl}, not {TTL} (RFC 5881 5)")
            if peer.cfg.interface and ifindex is not None and ifindex != _ifindex(peer.cfg.interface):
                raise DiscardError(f"arrived on interface index {ifindex}, not on {peer.cfg.interface}")
        except DiscardError as exc:
            if peer is not None:
                peer.discarded += 1
            self._log.debug("bfd_discard", source=str(source), reason=str(exc))
            return
        peer.rx_packets += 1
        self._apply(peer, sm.receive(peer.session, p, self._clock(), self._rng.random()))


def _ifindex(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _ancillary(anc: list[tuple[int, int, bytes]]) -> tuple[int | None, int | None]:
    """(TTL or hop limit, arrival interface index) from recvmsg's ancillary data."""
    ttl = ifindex = None
    for level, kind, data in anc:
        if level == socket.IPPROTO_IP and kind == socket.IP_TTL and len(data) >= 4:
            ttl = struct.unpack("i", data[:4])[0]
        elif level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 4:
            ifindex = struct.unpack("i", data[:4])[0]
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            ttl = struct.unpack("i", data[:4])[0]
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
            ifindex = struct.unpack("16si", data[:20])[1]
    return ttl, ifindex
