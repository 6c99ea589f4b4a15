"""A raw BGP speaker for tests: plain sockets, hand-built messages (RFC 4271, 4760, 6793, 8654), so that a test can
send what no well-behaved router would (malformed attributes, huge UPDATEs) and read the NOTIFICATION it gets back.

Builders are pure functions returning bytes; `RawPeer` holds one session: it opens it (OPEN with multiprotocol,
4-byte AS and extended message capabilities), answers KEEPALIVEs from a thread, records what it receives (UPDATEs,
the NOTIFICATION) and sends whatever bytes a test gives it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4
AS_TRANS = 23456

# Path attribute flags (RFC 4271 4.3).
OPTIONAL, TRANSITIVE, PARTIAL, EXTENDED = 0x80, 0x40, 0x20, 0x10
WELL_KNOWN = TRANSITIVE  # well-known attributes: optional 0, transitive 1
# Attribute type codes.
ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR = 1, 2, 3, 4, 5, 6, 7
COMMUNITY, ORIGINATOR_ID, CLUSTER_LIST, MP_REACH, MP_UNREACH = 8, 9, 10, 14, 15
AS_SET, AS_SEQUENCE = 1, 2


# --- messages --------------------------------------------------------------------------------------------------------


def message(kind: int, body: bytes = b"", *, length: int | None = None) -> bytes:
    """A BGP message; `length` overrides the header's length field (to lie about it)."""
    return MARKER + struct.pack("!HB", 19 + len(body) if length is None else length, kind) + body


def keepalive() -> bytes:
    return message(KEEPALIVE)


def open_message(asn: int, router_id: str, hold: int = 90, *, families: Sequence[tuple[int, int]] = ((1, 1), (2, 1)),
                 extended: bool = True) -> bytes:
    caps = b"".join(_cap(1, struct.pack("!HBB", afi, 0, safi)) for afi, safi in families)
    caps += _cap(2, b"")  # route refresh
    caps += _cap(65, struct.pack("!I", asn))  # 4-byte AS (RFC 6793)
    if extended:
        caps += _cap(6, b"")  # extended message (RFC 8654)
    params = bytes([2, len(caps)]) + caps
    body = struct.pack("!BHH4sB", 4, asn if asn < 65536 else AS_TRANS, hold, socket.inet_aton(router_id), len(params))
    return message(OPEN, body + params)


def _cap(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def update(*, withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attributes)) + attributes + nlri
    return message(UPDATE, body)


def update_raw(body: bytes) -> bytes:
    """An UPDATE with a body built by hand (to get its internal lengths wrong)."""
    return message(UPDATE, body)


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return message(NOTIFICATION, bytes([code, subcode]) + data)


# --- NLRI and attributes ---------------------------------------------------------------------------------------------


def prefixes(items: Iterable[str]) -> bytes:
    out = bytearray()
    for text in items:
        net = ipaddress.ip_network(text)
        out.append(net.prefixlen)
        out += net.network_address.packed[: (net.prefixlen + 7) // 8]
    return bytes(out)


def attr(type_code: int, value: bytes, flags: int | None = None) -> bytes:
    """One path attribute; flags default to what RFC 4271 says for the type; extended length when needed."""
    if flags is None:
        flags = _DEFAULT_FLAGS.get(type_code, OPTIONAL | TRANSITIVE)
    if len(value) > 255:
        flags |= EXTENDED
    if flags & EXTENDED:
        return struct.pack("!BBH", flags, type_code, len(value)) + value
    return struct.pack("!BBB", flags, type_code, len(value)) + value


_DEFAULT_FLAGS = {
    ORIGIN: WELL_KNOWN, AS_PATH: WELL_KNOWN, NEXT_HOP: WELL_KNOWN, MED: OPTIONAL, LOCAL_PREF: WELL_KNOWN,
    ATOMIC_AGGREGATE: WELL_KNOWN, AGGREGATOR: OPTIONAL | TRANSITIVE, COMMUNITY: OPTIONAL | TRANSITIVE,
    ORIGINATOR_ID: OPTIONAL, CLUSTER_LIST: OPTIONAL, MP_REACH: OPTIONAL, MP_UNREACH: OPTIONAL,
}


def origin(value: int = 0) -> bytes:
    return attr(ORIGIN, bytes([value]))


def as_path(*asns: int, segment: int = AS_SEQUENCE) -> bytes:
    """One segment of 4-byte ASNs (both ends negotiated 4-byte AS)."""
    return attr(AS_PATH, bytes([segment, len(asns)]) + b"".join(struct.pack("!I", a) for a in asns) if asns else b"")


def next_hop(address: str) -> bytes:
    return attr(NEXT_HOP, socket.inet_aton(address))


def med(value: int) -> bytes:
    return attr(MED, struct.pack("!I", value))


def local_pref(value: int) -> bytes:
    return attr(LOCAL_PREF, struct.pack("!I", value))


def atomic_aggregate() -> bytes:
    return attr(ATOMIC_AGGREGATE, b"")


def aggregator(asn: int, address: str) -> bytes:
    return attr(AGGREGATOR, struct.pack("!I", asn) + socket.inet_aton(address))


def community(*values: tuple[int, int]) -> bytes:
    return attr(COMMUNITY, b"".join(struct.pack("!HH", a, b) for a, b in values))


def originator_id(address: str) -> bytes:
    return attr(ORIGINATOR_ID, socket.inet_aton(address))


def cluster_list(*addresses: str) -> bytes:
    return attr(CLUSTER_LIST, b"".join(socket.inet_aton(a) for a in addresses))


def mp_reach(hop: str, nlri: bytes, *, hop_length: int | None = None) -> bytes:
    """MP_REACH_NLRI for unicast of the next hop's family; `nlri` from `prefixes()` (or hand-built)."""
    packed = ipaddress.ip_address(hop).packed
    afi = 1 if len(packed) == 4 else 2
    length = len(packed) if hop_length is None else hop_length
    return attr(MP_REACH, struct.pack("!HBB", afi, 1, length) + packed[:length].ljust(length, b"\0") + b"\0" + nlri)


def mp_unreach(afi: int, nlri: bytes) -> bytes:
    return attr(MP_UNREACH, struct.pack("!HB", afi, 1) + nlri)


def basic(asn: int, hop: str, *extra: bytes) -> bytes:
    """ORIGIN IGP, AS_PATH [asn], NEXT_HOP hop, then `extra`."""
    return origin(0) + as_path(asn) + next_hop(hop) + b"".join(extra)


# --- one session -----------------------------------------------------------------------------------------------------


@dataclass
class Received:
    updates: list[bytes] = field(default_factory=list)
    notification: tuple[int, int, bytes] | None = None
    closed: bool = False


class RawPeer:
    """One BGP session over a plain TCP socket. `connect()` opens it and returns once it is established."""

    def __init__(self, asn: int, router_id: str, *, hold: int = 90, extended: bool = True) -> None:
        self.asn, self.router_id, self.hold, self.extended = asn, router_id, hold, extended
        self.sock: socket.socket | None = None
        self.received = Received()
        self.peer_open: bytes = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def connect(self, address: str, port: int = 179, *, source: str | None = None, timeout: float = 30.0) -> None:
        """Open the session from this side."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
            if source:
                sock.bind((source, 0))
            sock.settimeout(5.0)
            try:
                sock.connect((address, port))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # retry until the far end listens (polling, bounded by the deadline)
        self._open(sock)

    def accept(self, listener: socket.socket, timeout: float = 30.0) -> None:
        """Take the next connection on `listener` (the far end connects, as ExaBGP does) and open the session."""
        listener.settimeout(timeout)
        sock, _ = listener.accept()
        sock.settimeout(5.0)
        self._open(sock)

    def _open(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.sendall(open_message(self.asn, self.router_id, self.hold, extended=self.extended))
        kind, body = self._read()
        if kind != OPEN:
            raise ConnectionError(f"expected OPEN, got type {kind}: {body!r}")
        self.peer_open = body
        sock.sendall(keepalive())
        while True:
            kind, body = self._read()
            if kind == KEEPALIVE:
                break
            if kind == NOTIFICATION:
                raise ConnectionError(f"NOTIFICATION {body[0]}/{body[1]} while opening")
        sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()
        threading.Thread(target=self._keepalives, daemon=True).start()

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        with self._lock:
            self.sock.sendall(data)

    def close(self) -> None:
        self._stop.set()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    @property
    def up(self) -> bool:
        return not self.received.closed and self.received.notification is None

    def _read(self) -> tuple[int, bytes]:
        header = self._exact(19)
        length, kind = struct.unpack("!HB", header[16:])
        return kind, self._exact(length - 19)

    def _exact(self, size: int) -> bytes:
        assert self.sock is not None
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed by the peer")
            data += chunk
        return bytes(data)

    def _reader(self) -> None:
        try:
            while not self._stop.is_set():
                kind, body = self._read()
                if kind == UPDATE:
                    self.received.updates.append(body)
                elif kind == NOTIFICATION:
                    self.received.notification = (body[0], body[1], body[2:])
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            self.received.closed = True

    def _keepalives(self) -> None:
        while not self._stop.wait(max(1.0, self.hold / 3)):
            if self.received.closed:
                return
            with contextlib.suppress(OSError):
                self.send(keepalive())


def listener(address: str, port: int = 179) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(4)
    return sock
