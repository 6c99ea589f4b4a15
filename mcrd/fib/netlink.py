"""Route messages for the kernel FIB, encoded with `struct` (pyroute2's `route()` costs 112-420 us a message).

The encoders and decoders are pure; `RouteSocket` sends thousands of messages per `sendto` on a plain
NETLINK_ROUTE socket. Each failure is reported with its errno and the kernel's extended-ack text (the kernel
reports every failure, NLM_F_ACK or not). With `ack_every`, every message carries NLM_F_ACK: each one gets its own
ack, and a message whose ack was lost (ENOBUFS) is known and sent again (route replace and delete are idempotent).
Without it only the last message of a batch asks for an ack, which tells that the kernel has handled the whole
batch: the kernel then makes no ack for each route that went in, about 3 us of kernel time per route, 2.6x less
CPU in all for 10,000 routes (docs/PERFORMANCE.md "Processor profile"); a batch whose failure reports were lost
(ENOBUFS) is sent again with every ack.
"""

from __future__ import annotations

import bisect
import errno
import functools
import itertools
import os
import socket
import struct
from collections import deque
from collections.abc import Iterator, Sequence

MCRD_RTPROT = 252  # rtm_protocol of every route mcrd makes; mcrd never touches routes of another protocol
MCRD_METRIC = 20  # RTA_PRIORITY: routes of other daemons or `ip route add` (metric 0, IPv6 1024) stay apart
RT_TABLE_MAIN = 254
RTM_NEWLINK, RTM_GETLINK, RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 16, 18, 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_CREATE = 1, 2, 4, 0x300, 0x100, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # ack flags
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
IFLA_IFNAME = 3
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 270, 10, 11, 12
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # above the net.core.*mem_max limits, with CAP_NET_ADMIN
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RTN_UNICAST = 0, 253, 255, 1

HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTA = struct.Struct("=HH")
RTA_U32 = struct.Struct("=HHI")
U32 = struct.Struct("=I")
NEW_FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
DEL_FLAGS = NLM_F_REQUEST | NLM_F_ACK


_LENGTHS = {str(n): n for n in range(129)}  # the usual spelling of a prefix length: one lookup, no int()


def parse_prefix(prefix: str) -> tuple[int, bytes, int]:
    """'10.0.0.0/8' -> (AF_INET, address bytes, 8); ValueError when it is not a prefix."""
    addr, _, plen = prefix.partition("/")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        raw = socket.inet_pton(family, addr)
    except OSError:
        raise ValueError(f"{prefix!r} is not a prefix") from None
    length = _LENGTHS.get(plen)
    if length is None:  # "08": still a length
        if not plen.isascii() or not plen.isdigit():
            raise ValueError(f"{prefix!r} is not a prefix")
        length = int(plen)
    if length > len(raw) * 8:
        raise ValueError(f"{prefix!r} is not a prefix")
    return family, raw, length


def attr(kind: int, payload: bytes) -> bytes:
    return RTA.pack(4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def nexthop_attrs(gateway: str, oif: int, metric: int = MCRD_METRIC) -> bytes:
    """The tail shared by every route through one next hop (cached by the caller)."""
    out = b""
    if gateway:  # OSError when it is not an address
        out = attr(RTA_GATEWAY, socket.inet_pton(socket.AF_INET6 if ":" in gateway else socket.AF_INET, gateway))
    if oif:
        out += RTA_U32.pack(8, RTA_OIF, oif)
    return out + RTA_U32.pack(8, RTA_PRIORITY, metric)


def route_body(prefix: str, tail: bytes, *, delete: bool = False, scope: int = RT_SCOPE_UNIVERSE,
               protocol: int = MCRD_RTPROT) -> bytes:
    """The rtmsg and attributes of one route in table main (`tail`: `nexthop_attrs`, or the metric to delete)."""
    family, raw, plen = parse_prefix(prefix)
    return _route_head(family, plen, delete, scope, protocol) + raw + tail if plen else \
        _route_head(family, 0, delete, scope, protocol) + tail


def route_bodies(prefixes: Sequence[str], tail: bytes, *, delete: bool = False,
                 scope: int = RT_SCOPE_UNIVERSE) -> list[bytes | None]:
    """`route_body` of each prefix (protocol 252), None for one that is not a prefix (`route_body` says why). It
    runs once per route of every kernel change: one loop with the heads at hand by length (C loops over the
    whole list, `map` and `zip`, measured slower)."""
    heads: tuple[dict[str, bytes], dict[str, bytes]] = ({}, {})  # IPv4, IPv6: length as written -> head
    pton, v4, v6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
    out: list[bytes | None] = []
    append = out.append
    for prefix in prefixes:
        addr, _, plen = prefix.partition("/")
        ipv6 = ":" in addr
        head = heads[ipv6].get(plen)
        if head is not None:
            try:
                append(head + pton(v6 if ipv6 else v4, addr) + tail)
            except OSError:
                append(None)
            continue
        try:  # the first of its length (or an unusual one): the plain way, which checks the length too
            append(route_body(prefix, tail, delete=delete, scope=scope))
        except ValueError:
            append(None)
            continue
        length = _LENGTHS.get(plen)
        if length:  # a length in its usual spelling, not 0 (a default route has no RTA_DST)
            heads[ipv6][plen] = _route_head(v6 if ipv6 else v4, length, delete, scope, MCRD_RTPROT)
    return out


@functools.lru_cache(maxsize=1024)
def _route_head(family: int, plen: int, delete: bool, scope: int, protocol: int) -> bytes:
    """What comes before the destination's address bytes in a route's body: the rtmsg and the RTA_DST header (no
    RTA_DST for a default route). An address is 4 or 16 bytes: no padding after it."""
    rtm = RTMSG.pack(family, plen, 0, 0, RT_TABLE_MAIN, protocol, RT_SCOPE_NOWHERE if delete else scope,
                     0 if delete else RTN_UNICAST, 0)
    size = 4 if family == socket.AF_INET else 16
    return rtm + RTA.pack(4 + size, RTA_DST) if plen else rtm


def frame(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return HDR.pack(HDR.size + len(body), kind, flags, seq, 0) + body


def encode_dump(kind: int, family: int, seq: int) -> bytes:
    """A route dump of table main, protocol 252 (filtered in the kernel under strict checking), or a link dump."""
    if kind == RTM_GETLINK:
        body = struct.pack("=BxHiII", family, 0, 0, 0, 0)  # ifinfomsg
    else:
        body = RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, MCRD_RTPROT, 0, 0, 0)
    return frame(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def messages(data: bytes) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, payload) of each netlink message in one datagram."""
    view, offset = memoryview(data), 0
    while offset + HDR.size <= len(data):
        length, kind, flags, seq, _ = HDR.unpack_from(data, offset)
        if length < HDR.size:
            break
        yield kind, flags, seq, view[offset + HDR.size : offset + length]
        offset += (length + 3) & ~3


def attrs(payload: memoryview, offset: int) -> dict[int, memoryview]:
    out = {}
    while offset + 4 <= len(payload):
        length, kind = RTA.unpack_from(payload, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


def decode_route(payload: memoryview) -> tuple[str, str, int, int, int] | None:
    """(prefix, gateway, oif, metric, protocol) of a unicast route of table main, else None.

    Reads only the attributes it needs, in one pass: a scan decodes every route of ours, 100,000 or more."""
    family, plen, _, _, table, protocol, _, kind, _ = RTMSG.unpack_from(payload)
    if kind != RTN_UNICAST or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    dst = gateway = b""
    oif = metric = 0
    offset, end = RTMSG.size, len(payload)
    while offset + 4 <= end:
        length, at = RTA.unpack_from(payload, offset)
        if length < 4:
            break
        at &= 0x3FFF
        if at == RTA_DST:
            dst = bytes(payload[offset + 4 : offset + length])
        elif at == RTA_GATEWAY:
            gateway = bytes(payload[offset + 4 : offset + length])
        elif at == RTA_OIF:
            oif = U32.unpack_from(payload, offset + 4)[0]
        elif at == RTA_PRIORITY:
            metric = U32.unpack_from(payload, offset + 4)[0]
        elif at == RTA_TABLE:
            table = U32.unpack_from(payload, offset + 4)[0]
        offset += (length + 3) & ~3
    if table != RT_TABLE_MAIN:
        return None
    address = socket.inet_ntop(family, dst or bytes(4 if family == socket.AF_INET else 16))
    return f"{address}/{plen}", socket.inet_ntop(family, gateway) if gateway else "", oif, metric, protocol


def decode_ack(flags: int, payload: memoryview) -> tuple[int, str]:
    """(errno, extended-ack text) of an NLMSG_ERROR; errno 0 is a positive ack."""
    code = -struct.unpack_from("=i", payload)[0]
    if not flags & NLM_F_ACK_TLVS or len(payload) < 4 + HDR.size:
        return code, ""
    offset = 4 + (HDR.size if flags & NLM_F_CAPPED else HDR.unpack_from(payload, 4)[0])
    text = attrs(payload, offset).get(1, b"")  # NLMSGERR_ATTR_MSG
    return code, bytes(text).rstrip(b"\0").decode(errors="replace")


class RouteSocket:
    """A NETLINK_ROUTE socket for batches of requests. Not thread-safe: one per thread."""

    def __init__(self, rcvbuf: int = 32 << 20, sndbuf: int = 8 << 20, max_batch: int = 4000,
                 timeout: float = 30.0, *, ack_every: bool = True) -> None:
        self.ack_every = ack_every
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            self.sock.setsockopt(SOL_NETLINK, opt, 1)
        for force, plain, size in ((SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf),
                                   (SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, size)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, plain, size)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.max_bytes = max(self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 - 4096, 4096)
        self.max_batch, self.seq = max_batch, 0
        self.overruns = 0  # batches whose acks overflowed the receive buffer (and were sent again)

    def close(self) -> None:
        self.sock.close()

    def request(self, requests: Sequence[tuple[int, int, bytes]]) -> dict[int, tuple[int, str]]:
        """Send (type, flags, body) requests in order (flags with NLM_F_ACK); {index: (errno, text)} of failures."""
        failed: dict[int, tuple[int, str]] = {}
        pending = deque(range(len(requests)))
        if not self.ack_every:
            pending = deque(self._errors_only(requests, failed))
        while pending:
            batch = self._batch(requests, pending)
            by_seq = {self.seq + n + 1: i for n, i in enumerate(batch)}
            self.seq += len(batch)
            self.sock.send(b"".join(frame(*requests[i][:2], s, requests[i][2]) for s, i in by_seq.items()))
            pending.extend(self._collect(by_seq, failed))
        return failed

    def _batch(self, requests: Sequence[tuple[int, int, bytes]], pending: deque[int]) -> list[int]:
        """The next indexes of `pending` that go in one `send`."""
        batch: list[int] = []
        size = 0
        while pending and (not batch or (len(batch) < self.max_batch and size < self.max_bytes)):
            batch.append(pending.popleft())
            size += HDR.size + len(requests[batch[-1]][2])
        return batch

    def _errors_only(self, requests: Sequence[tuple[int, int, bytes]], failed: dict[int, tuple[int, str]]) -> list[int]:
        """Send every request with NLM_F_ACK on the last of each batch only; the indexes of the batches whose
        failure reports were lost (ENOBUFS), to send again with every ack."""
        again: list[int] = []
        start, end = 0, len(requests)
        pack, size = HDR.pack, HDR.size
        while start < end:
            kinds, flags, bodies = zip(*requests[start : start + self.max_batch], strict=True)
            lengths = list(map(size.__add__, map(len, bodies)))
            count = max(1, bisect.bisect_right(list(itertools.accumulate(lengths)), self.max_bytes))
            first, stop = self.seq + 1, start + count
            self.seq += count
            # One header per request in C loops (this runs once per route), NLM_F_ACK on the last one only.
            heads = list(map(pack, lengths[:count], kinds, map((~NLM_F_ACK).__and__, flags[:count]),
                             range(first, self.seq + 1), itertools.repeat(0)))
            heads[-1] = pack(lengths[count - 1], kinds[count - 1], flags[count - 1] | NLM_F_ACK, self.seq, 0)
            self.sock.send(b"".join(itertools.chain.from_iterable(zip(heads, bodies[:count], strict=True))))
            batch = list(range(start, stop))
            found: dict[int, tuple[int, str]] = {}
            if self._collect_failures(first, self.seq, batch, found):
                failed.update(found)
            else:
                again += batch
            start = stop
        return again

    def _collect_failures(self, first: int, last: int, batch: list[int], found: dict[int, tuple[int, str]]) -> bool:
        """Read the failure reports of one batch (sequence numbers `first` to `last`) until the last one's ack;
        False when some were lost to a full receive buffer (ENOBUFS), what was queued then read and dropped."""
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 16)
                except (BlockingIOError, TimeoutError):
                    if not self.sock.gettimeout():  # drained after an overrun
                        return False
                    found.update((i, (errno.ETIMEDOUT, "no acknowledgement from the kernel"))
                                 for i in batch if i not in found)
                    return True
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    self.overruns += 1
                    self.sock.setblocking(False)  # the kernel handled the whole batch within send(): drain
                    continue
                for kind, flags, seq, payload in messages(data):
                    if kind == NLMSG_ERROR and first <= seq <= last:
                        code, text = decode_ack(flags, payload)
                        if code:
                            found[batch[seq - first]] = (code, text)
                        if seq == last and self.sock.gettimeout():
                            return True
        finally:
            self.sock.settimeout(self.timeout)

    def _collect(self, by_seq: dict[int, int], failed: dict[int, tuple[int, str]]) -> list[int]:
        """Read the acks of one batch; returns the indexes whose ack was dropped (ENOBUFS), to send again."""
        overrun = False
        try:
            while by_seq:
                try:
                    data = self.sock.recv(1 << 16)
                except (BlockingIOError, TimeoutError):
                    if overrun:  # every ack the kernel kept has been read
                        break
                    failed.update((i, (errno.ETIMEDOUT, "no acknowledgement from the kernel")) for i in by_seq.values())
                    return []
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    overrun = True  # the kernel handled the whole batch within send(): read what is queued
                    self.overruns += 1
                    self.sock.setblocking(False)
                    continue
                for kind, flags, seq, payload in messages(data):
                    if kind == NLMSG_ERROR and seq in by_seq:
                        code, text = decode_ack(flags, payload)
                        index = by_seq.pop(seq)
                        if code:
                            failed[index] = (code, text)
        finally:
            self.sock.settimeout(self.timeout)
        return list(by_seq.values())

    def dump(self, kind: int, family: int) -> Iterator[tuple[int, memoryview]]:
        """(type, payload) of every message of a dump."""
        self.seq += 1
        self.sock.send(encode_dump(kind, family, self.seq))
        while True:
            for mtype, flags, seq, payload in messages(self.sock.recv(1 << 16)):
                if seq != self.seq:
                    continue
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    code, text = decode_ack(flags, payload)
                    raise OSError(code, f"{os.strerror(code)} {text}".strip())
                yield mtype, payload

    def links(self) -> dict[int, str]:
        """{ifindex: name} of every interface."""
        out = {}
        for _, payload in self.dump(RTM_GETLINK, socket.AF_UNSPEC):
            name = attrs(payload, 16).get(IFLA_IFNAME)
            if name is not None:
                out[struct.unpack_from("=i", payload, 4)[0]] = bytes(name).rstrip(b"\0").decode()
        return out
