"""Read the plain UPDATEs a peer sends, strictly, for the receive fast path (issue 14); defer everything else.

ExaBGP keeps terminating the sessions. With the fast path on, the launcher (exabgp_receive.py) hands an UPDATE's bytes
to mcrd instead of ExaBGP's parse (~5 us per prefix) and JSON (~1.8 us) when `parse` takes it, and mcrd decodes it
here (`routes`) into the same processor inputs mcrd.bgp.messages gets from ExaBGP's JSON for it. Both processes call
the same `parse`, so what the launcher lets through is what the daemon accepts.

Taken, nothing else: IPv4 unicast in the UPDATE's own fields, IPv6 unicast in MP_REACH_NLRI / MP_UNREACH_NLRI (one
family per message, a negotiated one), ORIGIN, AS_PATH (AS_SEQUENCE and AS_SET segments, 2- or 4-byte numbers as
negotiated), NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITY and route-target EXTENDED_COMMUNITIES, each
once, with the flags RFC 4271 gives it (the Extended Length bit either way), lengths that add up exactly, every
mandatory attribute of an announcement present. Anything else is `None` (deferred to ExaBGP's parser, which applies
RFC 7606 as it does for every session): unknown or other known attributes, AS4_PATH, confederation segments, a
segment of length zero, a Partial bit, an undefined ORIGIN, an unspecified or IPv6 link-local-only next hop, a
prefix longer than its family, End-of-RIB and empty UPDATEs. Add-path sessions never come here (the hook checks).

Pure: no I/O, no ExaBGP import. tests/bgp/test_wire_decode.py compares it with ExaBGP's parser + mcrd.bgp.messages
on valid, odd and fuzzed UPDATEs: the same inputs, or deferred.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from mcrd.rib.inputs import RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

# Attribute type codes and the flags each must carry (Extended Length aside): RFC 4271 4.3, 4760, 1997, 4360, 8092.
ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES = 1, 2, 3, 4, 5, 8
MP_REACH, MP_UNREACH, EXTENDED_COMMUNITIES, LARGE_COMMUNITIES = 14, 15, 16, 32
WELL_KNOWN, OPTIONAL, OPTIONAL_TRANSITIVE, EXTENDED_LENGTH = 0x40, 0x80, 0xC0, 0x10
FLAGS = {ORIGIN: WELL_KNOWN, AS_PATH: WELL_KNOWN, NEXT_HOP: WELL_KNOWN, MED: OPTIONAL, LOCAL_PREF: WELL_KNOWN,
         COMMUNITIES: OPTIONAL_TRANSITIVE, MP_REACH: OPTIONAL, MP_UNREACH: OPTIONAL,
         EXTENDED_COMMUNITIES: OPTIONAL_TRANSITIVE, LARGE_COMMUNITIES: OPTIONAL_TRANSITIVE}
AS_SET, AS_SEQUENCE = 1, 2
AFI_IPV6, SAFI_UNICAST = 2, 1
ROUTE_TARGETS = {0x00: "as2", 0x01: "ipv4", 0x02: "as4"}  # transitive extended community types, subtype 0x02
_ORIGINS = (Origin.IGP, Origin.EGP, Origin.INCOMPLETE)
_T = TypeVar("_T", int, tuple[int, int, int])


@dataclass(frozen=True, slots=True)
class Session:
    """What the receiving session negotiated that changes how an UPDATE reads."""

    asn4: bool  # AS numbers are 4 bytes (RFC 6793)
    families: frozenset[int]  # 4 and/or 6: IPv4 / IPv6 unicast


@dataclass(frozen=True, slots=True)
class Plain:
    """An UPDATE `parse` took: its NLRI fields (framing checked) and attributes, not turned into text yet."""

    family: int
    withdrawn: bytes  # NLRI encodings, one after the other
    announced: bytes
    origin: int = 0
    as_path: tuple[int, ...] = ()
    as_set: tuple[int, ...] = ()
    next_hop: bytes = b""  # 4 bytes (IPv4), 16 or 32 (IPv6 global, then link-local)
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[int, ...] = ()  # sorted, once each, as ExaBGP reports them
    extended: tuple[int, ...] = ()
    large: tuple[tuple[int, int, int], ...] = ()


def _nlri_ok(blob: bytes, bits: int) -> bool:
    """`blob` is whole prefixes of at most `bits` bits, at least one."""
    if not blob:
        return False
    i, end = 0, len(blob)
    if blob[0] <= bits:  # prefixes of one length (a burst): checked in C loops
        stride = ((blob[0] + 7) >> 3) + 1
        count, rest = divmod(end, stride)
        if not rest and blob[::stride] == blob[:1] * count:
            return True
    while i < end:
        length = blob[i]
        if length > bits:
            return False
        i += 1 + ((length + 7) >> 3)
    return i == end


def _segments(value: bytes, width: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """AS_PATH's numbers as (sequence, set), as mcrd.bgp.messages reads ExaBGP's segments; None if not plain."""
    sequence: list[int] = []
    as_set: list[int] = []
    code = "I" if width == 4 else "H"
    i, end = 0, len(value)
    while i < end:
        if end - i < 2:
            return None
        kind, count = value[i], value[i + 1]
        size = count * width
        if kind not in (AS_SET, AS_SEQUENCE) or count == 0 or i + 2 + size > end:
            return None
        numbers = struct.unpack_from(f"!{count}{code}", value, i + 2)
        (sequence if kind == AS_SEQUENCE else as_set).extend(numbers)
        i += 2 + size
    return tuple(sequence), tuple(as_set)


def _route_targets(value: bytes) -> tuple[int, ...] | None:
    if not value or len(value) % 8:
        return None
    found = struct.unpack(f"!{len(value) // 8}Q", value)
    for ext in found:
        if ext >> 56 not in ROUTE_TARGETS or (ext >> 48) & 0xFF != 0x02:
            return None
    return _sorted_once(found)


def _sorted_once(values: Iterable[_T]) -> tuple[_T, ...] | None:
    """`values` sorted, as ExaBGP 5.0.15 keeps a community list (sorted on `add`, duplicates kept); None (defer) for a
    list with a duplicate, which mcrd's decoders would not agree on with ExaBGP's."""
    ordered = tuple(sorted(values))
    return None if len(set(ordered)) != len(ordered) else ordered


def parse(body: bytes, session: Session) -> Plain | None:
    """An UPDATE's body (after the 19-byte header) read strictly, or None: ExaBGP's parser must read it."""
    end = len(body)
    if end < 4:
        return None
    withdrawn_len = int.from_bytes(body[0:2], "big")
    attrs_at = 2 + withdrawn_len
    if attrs_at + 2 > end:
        return None
    attrs_len = int.from_bytes(body[attrs_at : attrs_at + 2], "big")
    nlri_at = attrs_at + 2 + attrs_len
    if nlri_at > end:
        return None
    withdrawn, announced = body[2:attrs_at], body[nlri_at:]
    seen: dict[int, bytes] = {}
    i = attrs_at + 2
    while i < nlri_at:
        if nlri_at - i < 3:
            return None
        flags, code = body[i], body[i + 1]
        if flags & EXTENDED_LENGTH:
            if nlri_at - i < 4:
                return None
            length, i = int.from_bytes(body[i + 2 : i + 4], "big"), i + 4
        else:
            length, i = body[i + 2], i + 3
        if flags & ~EXTENDED_LENGTH != FLAGS.get(code) or code in seen or i + length > nlri_at:
            return None
        seen[code] = body[i : i + length]
        i += length
    return _plain(withdrawn, announced, seen, session)


def _plain(withdrawn: bytes, announced: bytes, seen: dict[int, bytes], session: Session) -> Plain | None:
    reach, unreach = seen.pop(MP_REACH, None), seen.pop(MP_UNREACH, None)
    if reach is not None or unreach is not None:
        if withdrawn or announced or 6 not in session.families:
            return None
        family = 6
        announced = withdrawn = b""
        hop = b""
        if unreach is not None and (unreach[:3] != b"\x00\x02\x01" or not _nlri_ok(withdrawn := unreach[3:], 128)):
            return None
        if reach is not None:
            if reach[:3] != b"\x00\x02\x01" or len(reach) < 4:
                return None
            hop_len = reach[3]
            if hop_len not in (16, 32) or len(reach) < 5 + hop_len or reach[4 + hop_len] != 0:
                return None
            hop, announced = reach[4 : 4 + hop_len], reach[5 + hop_len :]
            if not _nlri_ok(announced, 128) or not _ipv6_hops_ok(hop):
                return None
    else:
        family = 4
        if 4 not in session.families or not (withdrawn or announced):
            return None
        if (withdrawn and not _nlri_ok(withdrawn, 32)) or (announced and not _nlri_ok(announced, 32)):
            return None
        hop = seen.get(NEXT_HOP, b"")
        if announced and len(hop) != 4:
            return None
    if not announced:
        return Plain(family, withdrawn, b"") if not seen else None  # a withdrawal with attributes is not plain
    if NEXT_HOP in seen and len(seen[NEXT_HOP]) != 4:
        return None
    origin, path = seen.get(ORIGIN), seen.get(AS_PATH)
    if origin is None or path is None or len(origin) != 1 or origin[0] > 2:
        return None
    segments = _segments(path, 4 if session.asn4 else 2)
    if segments is None:
        return None
    med, local_pref = seen.get(MED), seen.get(LOCAL_PREF)
    if (med is not None and len(med) != 4) or (local_pref is not None and len(local_pref) != 4):
        return None
    communities = seen.get(COMMUNITIES)
    if communities is not None and (not communities or len(communities) % 4):
        return None
    large = seen.get(LARGE_COMMUNITIES)
    if large is not None and (not large or len(large) % 12):
        return None
    extended = seen.get(EXTENDED_COMMUNITIES)
    targets = () if extended is None else _route_targets(extended)
    standard = () if communities is None else _sorted_once(struct.unpack(f"!{len(communities) // 4}I", communities))
    larges = () if large is None else _sorted_once(tuple(struct.iter_unpack("!III", large)))
    if targets is None or standard is None or larges is None:
        return None
    return Plain(
        family, withdrawn, announced, origin[0], segments[0], segments[1], hop,
        None if med is None else int.from_bytes(med, "big"),
        None if local_pref is None else int.from_bytes(local_pref, "big"),
        standard, targets, larges)


def _ipv6_hops_ok(hop: bytes) -> bool:
    """A global next hop, then maybe a link-local one (RFC 2545 3): the two mcrd.bgp.messages chooses between."""
    first = ipaddress.IPv6Address(hop[:16])
    if first.is_unspecified or first.is_link_local:
        return False
    return len(hop) == 16 or ipaddress.IPv6Address(hop[16:]).is_link_local


# --- into processor inputs (the daemon) ------------------------------------------------------------------------------

_MASKS = tuple((0xFF00 >> bits) & 0xFF for bits in range(8))  # the octet mask for a prefix ending `bits` into it


_PAD = tuple(bytes(n) for n in range(17))  # zero octets that make a prefix's significant ones a whole address


_MASK_TABLES = tuple(bytes(b & mask for b in range(256)) for mask in _MASKS)  # bytes.translate: one mask, C loop


def _same_length_ipv4(blob: bytes) -> list[str] | None:
    """`prefixes` of an IPv4 NLRI field whose prefixes all have one length (a burst of /24s), by octet columns in C
    loops; None otherwise. A third of the general loop's time, which every received prefix goes through."""
    length = blob[0]
    stride = ((length + 7) >> 3) + 1
    count, rest = divmod(len(blob), stride)
    if stride == 1 or rest or blob[::stride] != bytes((length,)) * count:
        return None
    columns = [blob[k::stride] for k in range(1, stride)]
    if length & 7:
        columns[-1] = columns[-1].translate(_MASK_TABLES[length & 7])
    template = ".".join(["%d"] * (stride - 1) + ["0"] * (5 - stride)) + f"/{length}"
    return list(map(template.__mod__, zip(*columns, strict=True)))


def prefixes(blob: bytes, family: int) -> list[str]:
    """The prefixes of an NLRI field `parse` checked, as mcrd.bgp.messages writes them (host bits cleared)."""
    if family == 4 and len(blob) > 8 and (same := _same_length_ipv4(blob)) is not None:
        return same
    out: list[str] = []
    append, ntoa, masks, pad = out.append, socket.inet_ntoa, _MASKS, _PAD
    i, end = 0, len(blob)
    width = 4 if family == 4 else 16
    while i < end:  # a hot loop (0.5 us per IPv4 prefix): locals, one slice, one join
        length = blob[i]
        size = (length + 7) >> 3
        j = i + 1 + size
        raw = blob[i + 1 : j]
        i = j
        if length & 7:
            raw = raw[:-1] + bytes((raw[-1] & masks[length & 7],))
        if family == 4:
            append(f"{ntoa(raw + pad[4 - size])}/{length}")
            continue
        address = raw + pad[width - size]
        text = socket.inet_ntop(socket.AF_INET6, address)
        if "." in text:  # inet_ntop writes some as IPv4-in-IPv6; ipaddress (and so messages.py) does not
            text = str(ipaddress.IPv6Address(address))
        append(f"{text}/{length}")
    return out


def _target_text(ext: int) -> str:
    """ExaBGP 5.0.15's text for a route target (tests/bgp/test_wire_decode.py checks it against ExaBGP's)."""
    kind = ROUTE_TARGETS[ext >> 56]
    if kind == "as2":
        return f"target:{(ext >> 32) & 0xFFFF}:{ext & 0xFFFFFFFF}"
    if kind == "ipv4":
        return f"target:{socket.inet_ntoa(((ext >> 16) & 0xFFFFFFFF).to_bytes(4, 'big'))}:{ext & 0xFFFF}"
    return f"target:{(ext >> 16) & 0xFFFFFFFF}:{ext & 0xFFFF}"


def routes(peer: str, plain: Plain) -> list[RoutesWithdrawn | RoutesAnnounced]:
    """What mcrd.bgp.messages gives for the same UPDATE from ExaBGP's JSON: the withdrawals, then the announcement."""
    out: list[RoutesWithdrawn | RoutesAnnounced] = []
    if plain.withdrawn:
        out.append(RoutesWithdrawn(peer, tuple(prefixes(plain.withdrawn, plain.family))))
    if not plain.announced:
        return out
    if plain.family == 4:
        hop = socket.inet_ntoa(plain.next_hop)
    elif len(plain.next_hop) == 32 and ":" in peer and ipaddress.IPv6Address(peer).is_link_local:
        hop = str(ipaddress.IPv6Address(plain.next_hop[16:]))  # messages._hop_rank: the one on the session's link
    else:
        hop = str(ipaddress.IPv6Address(plain.next_hop[:16]))
    attrs = PathAttributes(
        next_hop=hop, as_path=plain.as_path, origin=_ORIGINS[plain.origin], med=plain.med,
        local_pref=plain.local_pref, communities=tuple(f"{c >> 16}:{c & 0xFFFF}" for c in plain.communities),
        as_set=plain.as_set, extended_communities=tuple(ExtendedCommunity(e, _target_text(e)) for e in plain.extended),
        large_communities=tuple(f"{a}:{b}:{c}" for a, b, c in plain.large))
    out.append(RoutesAnnounced(peer, attrs, tuple(dict.fromkeys(prefixes(plain.announced, plain.family)))))
    return out


# --- the line the launcher writes to the daemon ----------------------------------------------------------------------

LINE = "mcrd-update "  # then the peer, 2 or 4 (AS number width), the families (4, 6, 46), the body in hex


def update_line(peer: str, session: Session, body: bytes) -> str:
    """What the launcher writes on the API pipe for an UPDATE `parse` took, instead of ExaBGP's JSON for it."""
    families = "".join(str(family) for family in sorted(session.families))
    return f"{LINE}{peer} {4 if session.asn4 else 2} {families} {body.hex()}"


def read_line(text: str) -> tuple[str, Session, bytes]:
    """(peer, session, body) of an `update_line`; ValueError naming what is wrong."""
    parts = text.split(" ")
    if len(parts) != 5 or parts[0] != LINE.strip():
        raise ValueError(f"expected {LINE.strip()!r} PEER WIDTH FAMILIES HEX")
    _, peer, width, families, body = parts
    if width not in ("2", "4") or not families or set(families) - {"4", "6"}:
        raise ValueError(f"AS number width {width!r} or families {families!r} unknown")
    try:
        address = str(ipaddress.ip_address(peer))
        data = bytes.fromhex(body)
    except ValueError as exc:
        raise ValueError(f"peer or body unreadable: {exc}") from None
    return address, Session(width == "4", frozenset(int(f) for f in families)), data
