"""Pack the route processor's announcements and withdrawals as BGP UPDATE messages for one session (RFC 4271).

The send fast path (docs/PERFORMANCE.md, issue 14): ExaBGP keeps terminating the sessions, and the UPDATEs that carry
mcrd's routes are packed here instead of by ExaBGP's announce path, which costs ~1 ms per route for ten sessions.
Pure: no I/O and no ExaBGP import, so the launcher can call it inside ExaBGP and the tests can compare it with
ExaBGP's own packer and parser (tests/bgp/test_wire.py).

What depends on the session is a `Profile` (4-byte AS numbers, message size, iBGP or eBGP) and its next hop. The
prefixes are packed once (`nlri`) for every session; the attributes once per session profile and next hop
(`path_attributes`). The bytes are those ExaBGP 5.0.15 writes for the same routes: attributes ordered by type code
with the AS4_PATH after the AS_PATH, standard communities sorted, LOCAL_PREF only inside an AS (100 when unset),
IPv6 in MP_REACH_NLRI / MP_UNREACH_NLRI after the other attributes, withdrawals in UPDATEs of their own, each UPDATE
filled up to the message size.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from mcrd.route.attributes import PathAttributes

MARKER = b"\xff" * 16
HEADER_LEN = 19  # marker, length, type
OPEN, UPDATE, NOTIFICATION = 1, 2, 3  # message types
INITIAL_SIZE, EXTENDED_SIZE = 4096, 65535  # RFC 4271 4.1; RFC 8654 extended messages
AS_TRANS = 23456  # RFC 6793: stands for a 4-byte AS number on a session without the 4-byte AS capability
SEGMENT_MAX = 255  # AS numbers in one AS_PATH segment
AS_SET, AS_SEQUENCE = 1, 2

# Attribute flags and type codes (RFC 4271 4.3, RFC 4760, RFC 6793, RFC 1997, RFC 4360, RFC 8092)
OPTIONAL, TRANSITIVE, EXTENDED_LENGTH = 0x80, 0x40, 0x10
ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES = 1, 2, 3, 4, 5, 8
MP_REACH, MP_UNREACH, EXTENDED_COMMUNITIES, AS4_PATH, LARGE_COMMUNITIES = 14, 15, 16, 17, 32
AFI_IPV4, AFI_IPV6, SAFI_UNICAST = 1, 2, 1

DEFAULT_LOCAL_PREF = 100  # what ExaBGP sends inside an AS when the route has none


@dataclass(frozen=True, slots=True)
class Profile:
    """What a session negotiated that changes the bytes of an UPDATE."""

    asn4: bool = True  # both sides sent the 4-byte AS capability (RFC 6793)
    max_size: int = INITIAL_SIZE  # EXTENDED_SIZE when both sent the extended message capability (RFC 8654)
    ibgp: bool = False  # same AS on both sides: LOCAL_PREF is sent

    def __post_init__(self) -> None:
        if self.max_size not in (INITIAL_SIZE, EXTENDED_SIZE):
            raise ValueError(f"message size {self.max_size}: a session has {INITIAL_SIZE} or {EXTENDED_SIZE}")


def nlri(prefix: str) -> tuple[int, bytes]:
    """A prefix (`10.0.0.0/24`, `2001:db8::/32`) as (family 4 or 6, its NLRI encoding: length, significant octets)."""
    address, slash, length_text = prefix.partition("/")
    family = 6 if ":" in address else 4
    try:
        packed = socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, address)
        length = int(length_text)
    except (OSError, ValueError):
        raise ValueError(f"not a prefix: {prefix!r}") from None
    if not slash or not 0 <= length <= len(packed) * 8:
        raise ValueError(f"not a prefix: {prefix!r}")
    return family, bytes([length]) + packed[: (length + 7) // 8]


# Prefix length as written -> (its NLRI length octet, the address octets that follow it), per family.
_HEADS = {family: {str(length): (bytes((length,)), (length + 7) // 8) for length in range(bits + 1)}
          for family, bits in ((4, 32), (6, 128))}


def nlris_by_family(prefixes: Iterable[str]) -> dict[int, list[bytes]]:
    """`nlri` of each prefix, by family (4, 6), in order: one loop with the lengths looked up, as it runs once per
    prefix of every command; ValueError for the first that is not a prefix."""
    out: dict[int, list[bytes]] = {}
    v4: list[bytes] = []
    v6: list[bytes] = []
    heads4, heads6, pton, inet, inet6 = _HEADS[4], _HEADS[6], socket.inet_pton, socket.AF_INET, socket.AF_INET6
    for prefix in prefixes:
        address, _, length = prefix.partition("/")
        ipv6 = ":" in address
        head = (heads6 if ipv6 else heads4).get(length)
        if head is not None:
            try:
                (v6 if ipv6 else v4).append(head[0] + pton(inet6 if ipv6 else inet, address)[: head[1]])
                continue
            except OSError:
                pass
        family, encoded = nlri(prefix)  # raises ValueError naming it; else an unusual spelling such as "/024"
        (v6 if family == 6 else v4).append(encoded)
    if v4:
        out[4] = v4
    if v6:
        out[6] = v6
    return out


def _attribute(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | EXTENDED_LENGTH, code, len(value)) + value
    return bytes((flags, code, len(value))) + value


def _segments(kind: int, asns: Sequence[int], width: str) -> bytes:
    out = b""
    for start in range(0, len(asns), SEGMENT_MAX):
        part = asns[start : start + SEGMENT_MAX]
        out += bytes((kind, len(part))) + struct.pack(f"!{len(part)}{width}", *part)
    return out


def _as_paths(attrs: PathAttributes, asn4: bool) -> bytes:
    """AS_PATH, and beside it an AS4_PATH with the real numbers when a 2-byte session needs AS_TRANS (RFC 6793)."""
    if asn4:
        return _attribute(TRANSITIVE, AS_PATH, _segments(AS_SEQUENCE, attrs.as_path, "I")
                          + _segments(AS_SET, attrs.as_set, "I"))
    sequence = [asn if asn <= 0xFFFF else AS_TRANS for asn in attrs.as_path]
    as_set = [asn if asn <= 0xFFFF else AS_TRANS for asn in attrs.as_set]
    out = _attribute(TRANSITIVE, AS_PATH, _segments(AS_SEQUENCE, sequence, "H") + _segments(AS_SET, as_set, "H"))
    if sequence != list(attrs.as_path) or as_set != list(attrs.as_set):
        out += _attribute(OPTIONAL | TRANSITIVE, AS4_PATH, _segments(AS_SEQUENCE, attrs.as_path, "I")
                          + _segments(AS_SET, attrs.as_set, "I"))
    return out


def _community(text: str) -> int:
    high, _, low = text.partition(":")
    return (int(high) << 16) | int(low)


def _large_community(text: str) -> bytes:
    return struct.pack("!III", *(int(part) for part in text.split(":")))


def path_attributes(attrs: PathAttributes, profile: Profile, next_hop: str | None) -> bytes:
    """The path attributes of an announcement except MP_REACH_NLRI; `next_hop` is the IPv4 NEXT_HOP, None for IPv6
    routes (their next hop goes in MP_REACH_NLRI). `attrs.next_hop` is not read: the session's own address is the
    next hop mcrd sends (next hop self, docs/MCR-SEMANTICS.md 2.3 step 4)."""
    out = _attribute(TRANSITIVE, ORIGIN, bytes((int(attrs.origin),))) + _as_paths(attrs, profile.asn4)
    if next_hop is not None:
        out += _attribute(TRANSITIVE, NEXT_HOP, socket.inet_pton(socket.AF_INET, next_hop))
    if attrs.med is not None:
        out += _attribute(OPTIONAL, MED, struct.pack("!I", attrs.med))
    if profile.ibgp:
        local_pref = DEFAULT_LOCAL_PREF if attrs.local_pref is None else attrs.local_pref
        out += _attribute(TRANSITIVE, LOCAL_PREF, struct.pack("!I", local_pref))
    if attrs.communities:
        values = sorted({_community(text) for text in attrs.communities})
        out += _attribute(OPTIONAL | TRANSITIVE, COMMUNITIES, struct.pack(f"!{len(values)}I", *values))
    if attrs.extended_communities:
        out += _attribute(OPTIONAL | TRANSITIVE, EXTENDED_COMMUNITIES,
                          b"".join(struct.pack("!Q", ext.value) for ext in attrs.extended_communities))
    if attrs.large_communities:
        out += _attribute(OPTIONAL | TRANSITIVE, LARGE_COMMUNITIES,
                          b"".join(_large_community(text) for text in attrs.large_communities))
    return out


def _message(withdrawn: bytes, attributes: bytes, reachable: bytes) -> bytes:
    length = HEADER_LEN + 4 + len(withdrawn) + len(attributes) + len(reachable)
    return (MARKER + struct.pack("!HBH", length, UPDATE, len(withdrawn)) + withdrawn
            + struct.pack("!H", len(attributes)) + attributes + reachable)


def _fill(items: Iterable[bytes], room: int) -> Iterator[bytes]:
    """`items` joined into blobs of at most `room` octets, in order."""
    blob: list[bytes] = []
    size = 0
    for item in items:
        if len(item) > room:
            raise ValueError(f"an NLRI of {len(item)} octets does not fit in {room}")
        if size + len(item) > room:
            yield b"".join(blob)
            blob, size = [], 0
        blob.append(item)
        size += len(item)
    if blob:
        yield b"".join(blob)


Fills = dict[tuple[int, int], list[bytes]]
"""Blobs of NLRI already joined, by (family, room): what the sessions of one command share (`announcements`)."""


def _filled(family: int, nlris: Sequence[bytes], room: int, fills: Fills | None) -> list[bytes]:
    """`_fill(nlris, room)`, taken from `fills` when a session of the same room joined them already: ten sessions
    that get the same prefixes mostly differ only in their next hop, not in how the prefixes split into messages."""
    if fills is None:
        return list(_fill(nlris, room))
    blobs = fills.get((family, room))
    if blobs is None:
        blobs = fills[(family, room)] = list(_fill(nlris, room))
    return blobs


def _mp_room(room: int, header: int) -> int:
    """NLRI octets that fit an MP attribute of `room` octets in all (flags, type, length and `header` included)."""
    return room - 4 - header if room - 3 - header > 255 else room - 3 - header


def ipv6_next_hop(address: str) -> bytes:
    """The Network Address of Next Hop field of MP_REACH_NLRI for our own IPv6 address (RFC 2545 3): a global address
    alone (16 octets), or a global one then a link-local one (32 octets). A session over link-local addresses has no
    global address of ours to send: the link-local address goes in both, as FRR 8.4 sends it from an interface
    without a global address. A link-local address alone in 16 octets (what ExaBGP's `next-hop self` packs) is for
    peers that negotiated the Link-Local Next Hop capability (draft-ietf-idr-linklocal-capability), which mcrd does
    not offer."""
    ours = ipaddress.IPv6Address(address)
    return ours.packed * 2 if ours.is_link_local else ours.packed


def announcements(attrs: PathAttributes, family: int, nlris: Sequence[bytes], profile: Profile,
                  next_hop: str, fills: Fills | None = None) -> Iterator[bytes]:
    """UPDATEs announcing `nlris` (encoded by `nlri`, all of `family`) with `attrs` and `next_hop` on a session of
    `profile`: IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI, as many prefixes per message as fit. `fills`: shared
    by the sessions of one command, for these same `nlris`."""
    if not nlris:
        return
    room = profile.max_size - HEADER_LEN - 4
    if family == 4:
        attributes = path_attributes(attrs, profile, next_hop)
        for blob in _filled(family, nlris, room - len(attributes), fills):
            yield _message(b"", attributes, blob)
        return
    attributes = path_attributes(attrs, profile, None)
    hop = ipv6_next_hop(next_hop)
    header = struct.pack("!HBB", AFI_IPV6, SAFI_UNICAST, len(hop)) + hop + b"\x00"
    for blob in _filled(family, nlris, _mp_room(room - len(attributes), len(header)), fills):
        yield _message(b"", attributes + _attribute(OPTIONAL, MP_REACH, header + blob), b"")


def withdrawals(family: int, nlris: Sequence[bytes], profile: Profile, fills: Fills | None = None) -> Iterator[bytes]:
    """UPDATEs withdrawing `nlris` (all of `family`): IPv4 in the Withdrawn Routes field, IPv6 in MP_UNREACH_NLRI,
    with no other attribute. `fills` as for `announcements`."""
    if not nlris:
        return
    room = profile.max_size - HEADER_LEN - 4
    if family == 4:
        for blob in _filled(family, nlris, room, fills):
            yield _message(blob, b"", b"")
        return
    header = struct.pack("!HB", AFI_IPV6, SAFI_UNICAST)
    for blob in _filled(family, nlris, _mp_room(room, len(header)), fills):
        yield _message(b"", _attribute(OPTIONAL, MP_UNREACH, header + blob), b"")


def end_of_rib(family: int) -> bytes:
    """The End-of-RIB marker for `family` (RFC 4724 2): an empty UPDATE for IPv4, an empty MP_UNREACH_NLRI for IPv6."""
    if family == 4:
        return _message(b"", b"", b"")
    return _message(b"", _attribute(OPTIONAL, MP_UNREACH, struct.pack("!HB", AFI_IPV6, SAFI_UNICAST)), b"")


ROUTE_REFRESH = 5
BORR, EORR = 1, 2  # RFC 7313 3: the message subtypes that start and end a refresh


def notification(code: int, subcode: int) -> bytes:
    """A NOTIFICATION with no data (RFC 4271 4.5)."""
    return MARKER + struct.pack("!HBBB", HEADER_LEN + 2, NOTIFICATION, code, subcode)


def route_refresh_marker(family: int, subtype: int) -> bytes:
    """A Beginning-of-RIB-Refresh (`BORR`) or End-of-RIB-Refresh (`EORR`) message for `family` (RFC 7313 3)."""
    afi = AFI_IPV4 if family == 4 else AFI_IPV6
    return MARKER + struct.pack("!HBHBB", HEADER_LEN + 4, ROUTE_REFRESH, afi, subtype, SAFI_UNICAST)
