"""Parse ExaBGP's API output (JSON format 5.0, one message per line) into route processor inputs.

Pure: no I/O. A line that cannot be understood becomes a `Malformed` result naming why (and the peer, when it was an
UPDATE received from one: the speaker then resets that session); it never raises.

ExaBGP applies RFC 7606 to most malformed attributes itself (it reports a treat-as-withdraw as a withdrawal with
`"error": "treat-as-withdraw"` among the attributes) but passes some on: a missing NEXT_HOP as the next hop
`no-nexthop`, an undefined ORIGIN as `"origin": "invalid"`, a missing ORIGIN as no `origin` at all, a zero-length
AS_PATH segment as an empty one (captured in tests/bgp/fixtures/exabgp-5.0.15-malformed.jsonl). Those announcements
are treated as withdrawn here (RFC 7606 3.d, 7.1, 7.2), and the withdrawals of the same UPDATE are always kept.

With the receive fast path (exabgp_receive.py) a plain UPDATE comes as its bytes, `mcrd-update PEER ...`, decoded by
mcrd.bgp.wire_decode into the same inputs. The launcher sends only what `wire_decode.parse` takes, the same function
run here; a line it still does not take (a bug, or a line damaged on the way) is `Malformed` with the peer, so the
speaker resets that session as for any UPDATE it cannot read: its routes at the peer are unknown.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from mcrd.bgp import wire_decode
from mcrd.rib.inputs import EndOfRib, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

_ORIGINS = {"igp": Origin.IGP, "egp": Origin.EGP, "incomplete": Origin.INCOMPLETE}


@dataclass(frozen=True, slots=True)
class Ack:
    ok: bool  # `done` or `error`


@dataclass(frozen=True, slots=True)
class Notification:
    peer: str
    direction: str
    code: int
    subcode: int


@dataclass(frozen=True, slots=True)
class Malformed:
    line: str
    why: str
    peer: str | None = None  # set when the line was an UPDATE received from this peer


@dataclass(frozen=True, slots=True)
class UpdateError:
    """Part of an UPDATE was not used as sent (RFC 7606): `action` is treat-as-withdraw or attribute-discard."""

    peer: str
    action: str
    why: str
    prefixes: int


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str


@dataclass(frozen=True, slots=True)
class RefreshRequested:
    """The peer sent a ROUTE-REFRESH request (RFC 2918) for `family` (4 or 6, unicast): send it the Adj-RIB-Out."""

    peer: str
    family: int


Parsed = (PeerUp | PeerDown | RoutesAnnounced | RoutesWithdrawn | EndOfRib | Ack | Notification | Malformed | Ignored
          | RefreshRequested)
Decoded = Parsed | UpdateError  # what the decoder returns; the speaker logs UpdateErrors and passes the rest on


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What a session negotiated, read from the peer's OPEN and what mcrd's ExaBGP sends in its own."""

    families: frozenset[int]
    refresh: str  # "enhanced", "normal" or "absent"


def negotiate(peer: str, capabilities: dict[str, Any], *, route_refresh: bool, implied_ipv4: bool) -> Negotiated:
    """The families and route refresh of a session, as ExaBGP 5.0.15 negotiates them (`Negotiated._negotiate`):
    mcrd's ExaBGP offers the unicast family of the peer's address, and route refresh with enhanced route refresh
    when `route_refresh`. A peer that sends no Multiprotocol capability gets IPv4 unicast when `implied_ipv4`
    (exabgp_launch.py, fix 6), nothing otherwise. `capabilities`: the OPEN's, as ExaBGP's JSON has them."""
    own = 6 if ipaddress.ip_address(peer).version == 6 else 4
    by_name = {str(capability.get("name", "")) for capability in capabilities.values() if isinstance(capability, dict)}
    multiprotocol = capabilities.get("1")
    if isinstance(multiprotocol, dict):
        offered = {str(family) for family in multiprotocol.get("families", [])}
        families = frozenset({own}) if f"ipv{own}/unicast" in offered else frozenset()
    else:
        families = frozenset({4}) if implied_ipv4 and own == 4 else frozenset()
    refresh = "absent"
    if route_refresh and "enhanced-route-refresh" in by_name:
        refresh = "enhanced"
    elif route_refresh and "2" in capabilities:  # ExaBGP counts the RFC code only, not Cisco's 128
        refresh = "normal"
    return Negotiated(families, refresh)


@dataclass
class Decoder:
    """Keeps what one message needs from an earlier one: the router id and what was negotiated, from a peer's OPEN,
    kept for its `up`. `route_refresh`: ExaBGP offers route refresh; `implied_ipv4`: it runs with exabgp_launch's
    fix 6 (see `negotiate`)."""

    router_ids: dict[str, str] = field(default_factory=dict)
    route_refresh: bool = False
    implied_ipv4: bool = False
    negotiated: dict[str, Negotiated] = field(default_factory=dict)

    def decode(self, line: str) -> list[Decoded]:
        text = line.strip()
        if text in ("done", "error"):
            return [Ack(text == "done")]
        if not text:
            return []
        if text.startswith(wire_decode.LINE):
            return _fast_update(text)
        message: Any = None
        try:
            message = json.loads(text)
            return self._message(message)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return [Malformed(text[:200], f"{type(exc).__name__}: {exc}", _received_update_peer(message))]

    def _message(self, message: dict[str, Any]) -> list[Decoded]:
        kind = message.get("type")
        if kind == "notification" and "neighbor" not in message:
            # ExaBGP's own `{"type": "notification", "notification": "shutdown"}` as it stops, not a peer's.
            return [Ignored(f"exabgp {message.get('notification')}")]
        neighbor = message["neighbor"] if kind in ("state", "open", "update", "notification", "refresh") else None
        if neighbor is None:
            return [Ignored(str(kind))]
        peer = _address(neighbor["address"]["peer"])
        if kind == "state":
            instance = message.get("mcrd-instance")  # the send fast path's session instance
            return self._state(peer, neighbor, int(instance) if instance is not None else None)
        if kind == "open":
            if neighbor.get("direction") == "receive":
                received = neighbor["open"]
                self.router_ids[peer] = str(ipaddress.IPv4Address(received["router_id"]))
                self.negotiated[peer] = negotiate(peer, received.get("capabilities") or {},
                                                   route_refresh=self.route_refresh, implied_ipv4=self.implied_ipv4)
            return []
        if kind == "refresh":
            return _refresh(peer, neighbor)
        if kind == "notification":
            note = neighbor["notification"]
            return [Notification(peer, str(neighbor.get("direction", "")), int(note["code"]), int(note["subcode"]))]
        if neighbor.get("direction") != "receive":
            return [Ignored("sent update")]
        return _update(peer, neighbor["message"])

    def _state(self, peer: str, neighbor: dict[str, Any], instance: int | None = None) -> list[Decoded]:
        state = neighbor["state"]
        if state == "up":
            got = self.negotiated.get(peer)
            if got is None:
                return [PeerUp(peer, self.router_ids.get(peer, "0.0.0.0"), instance=instance)]
            return [PeerUp(peer, self.router_ids.get(peer, "0.0.0.0"), got.families, got.refresh, instance)]
        if state == "down":
            self.router_ids.pop(peer, None)
            self.negotiated.pop(peer, None)
            return [PeerDown(peer, str(neighbor.get("reason", "")))]
        return [Ignored(f"state {state}")]


def _fast_update(text: str) -> list[Decoded]:
    """A received UPDATE the receive fast path passed on as its bytes."""
    try:
        peer, session, body = wire_decode.read_line(text)
    except ValueError as exc:
        words = text.split(" ", 2)
        try:
            peer_of_line: str | None = _address(words[1]) if len(words) > 1 else None
        except ValueError:
            peer_of_line = None
        return [Malformed(text[:200], f"fast path UPDATE line: {exc}", peer_of_line)]
    try:
        plain = wire_decode.parse(body, session)
        if plain is not None:
            return list(wire_decode.routes(peer, plain))
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # a bug: never seen in the property tests
        return [Malformed(text[:200], f"fast path UPDATE: {type(exc).__name__}: {exc}", peer)]
    return [Malformed(text[:200], "fast path UPDATE the strict decoder does not take", peer)]


def _refresh(peer: str, neighbor: dict[str, Any]) -> list[Decoded]:
    """A ROUTE-REFRESH received: a request (subtype `query`) for a unicast family asks for the Adj-RIB-Out; a BoRR or
    an EoRR (the peer answering a refresh, which mcrd never asks for) and other families are not for mcrd."""
    if neighbor.get("direction") != "receive":
        return [Ignored("sent route-refresh")]
    request = neighbor["route-refresh"]
    afi, safi, subtype = str(request["afi"]), str(request["safi"]), str(request["subtype"])
    if subtype != "query" or safi != "unicast" or afi not in ("ipv4", "ipv6"):
        return [Ignored(f"route-refresh {subtype} {afi} {safi}")]
    return [RefreshRequested(peer, 6 if afi == "ipv6" else 4)]


def _address(text: str) -> str:
    return str(ipaddress.ip_address(text))


_HEAD = re.compile(r'"type": "update".*?"peer": "([0-9a-fA-F.:]+)".*?"direction": "receive"', re.DOTALL)


def received_update_peer(head: str) -> str | None:
    """The peer of a received UPDATE from the first bytes of its line (ExaBGP writes type, peer and direction
    first), for a line too long to be decoded whole."""
    match = _HEAD.search(head)
    if match is None:
        return None
    try:
        return _address(match.group(1))
    except ValueError:
        return None


def _received_update_peer(message: Any) -> str | None:
    """The peer of a received UPDATE that could not be decoded (its routes at the peer are then unknown)."""
    try:
        neighbor = message["neighbor"]
        if message.get("type") == "update" and neighbor.get("direction") == "receive":
            return _address(neighbor["address"]["peer"])
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


_FAMILIES = ("ipv4 unicast", "ipv6 unicast")


def _update(peer: str, message: dict[str, Any]) -> list[Decoded]:
    if "eor" in message:
        afi = message["eor"]["afi"]
        return [EndOfRib(peer, 6 if afi == "ipv6" else 4)]
    update = message["update"]
    withdrawn: list[str] = []
    for family, entries in update.get("withdraw", {}).items():
        if family in _FAMILIES:
            withdrawn += [_prefix(entry) for entry in entries]
    out: list[Decoded] = []
    attributes = update.get("attribute", {})
    exabgp_error = attributes.get("error")
    if exabgp_error is not None:  # ExaBGP applied RFC 7606 itself: say so
        action = "attribute-discard" if exabgp_error == "discard" else str(exabgp_error)
        out.append(UpdateError(peer, action, "malformed attribute (ExaBGP)", len(withdrawn)))
    announced: list[RoutesAnnounced] = []
    for family, by_next_hop in update.get("announce", {}).items():
        if family in _FAMILIES:
            announced += _announced(peer, attributes, by_next_hop, withdrawn, out)
    if withdrawn:
        out.append(RoutesWithdrawn(peer, tuple(withdrawn)))
    out += announced
    return out


def _announced(peer: str, attributes: dict[str, Any], by_next_hop: dict[str, Any], withdrawn: list[str],
               errors: list[Decoded]) -> list[RoutesAnnounced]:
    """IPv6 routes may be listed under a global and a link-local next hop (RFC 2545 3): see `_hop_rank` for the one
    used. Routes that cannot be used as sent are added to `withdrawn` (treat-as-withdraw), with an `UpdateError`
    in `errors`."""
    chosen: dict[str, str] = {}
    missing_hop: list[str] = []
    hops = {hop: _next_hop(hop) for hop in by_next_hop}
    link_local_session = ":" in peer and ipaddress.IPv6Address(peer).is_link_local
    for hop in sorted(by_next_hop, key=lambda h: _hop_rank(hops[h], link_local_session)):
        address = hops[hop]
        prefixes = [_prefix(entry) for entry in by_next_hop[hop]]
        if address is None:
            missing_hop += prefixes
        elif not chosen:  # the usual UPDATE: one next hop, written once for all its prefixes (not per prefix)
            chosen = dict.fromkeys(prefixes, str(address))
        else:
            text = str(address)
            for prefix in prefixes:
                chosen.setdefault(prefix, text)
    missing_hop = [prefix for prefix in missing_hop if prefix not in chosen]
    if missing_hop:
        withdrawn += missing_hop
        errors.append(UpdateError(peer, "treat-as-withdraw", "no NEXT_HOP (RFC 7606 3.d)", len(missing_hop)))
    if not chosen:
        return []
    problem = _attributes_problem(attributes)
    if problem is not None:
        withdrawn += chosen
        errors.append(UpdateError(peer, "treat-as-withdraw", problem, len(chosen)))
        return []
    texts = set(chosen.values())
    if len(texts) == 1:  # one next hop (the usual UPDATE): no grouping prefix by prefix
        return [RoutesAnnounced(peer, _attributes(attributes, texts.pop()), tuple(chosen))]
    groups: dict[str, list[str]] = {}
    for prefix, hop_text in chosen.items():
        groups.setdefault(hop_text, []).append(prefix)
    return [RoutesAnnounced(peer, _attributes(attributes, hop_text), tuple(prefixes))
            for hop_text, prefixes in groups.items()]


def _hop_rank(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, link_local_session: bool) -> int:
    """Which next hop of a route is used, lowest first. Decision (docs/MCR-SEMANTICS.md 2.7): the global one,
    except on a session over link-local addresses: there the link-local one is on the VXC's link (the session runs
    over it), while the global one may be in a subnet the MCR has no address in, where the kernel refuses a route
    through it (FRR sends its interface's global address so). `::` is a speaker with no global address to give
    (BIRD sends `::` and its link-local one): never used before a link-local one."""
    if address is None:
        return 3
    if address.is_unspecified:
        return 2
    return int(address.is_link_local != link_local_session)


def _next_hop(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """None for ExaBGP's `no-nexthop` (the UPDATE had no NEXT_HOP) or anything else that is not an address."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_SEGMENTS = ("as-sequence", "as-set", "confed-sequence", "confed-set")


def _attributes_problem(attributes: dict[str, Any]) -> str | None:
    """Why the routes of an UPDATE with these attributes must be treated as withdrawn, or None."""
    origin = attributes.get("origin")
    if origin is None:
        return "no ORIGIN (RFC 7606 3.d)"
    if origin not in _ORIGINS:
        return f"ORIGIN {origin!r} is undefined (RFC 7606 7.1)"
    path = attributes.get("as-path", {})
    segments = path.values() if isinstance(path, dict) else [{"element": "as-sequence", "value": path}]
    for segment in segments:
        if segment.get("element") not in _SEGMENTS:
            return f"AS_PATH segment type {segment.get('element')!r} is undefined (RFC 7606 7.2)"
        if not segment.get("value"):
            return "AS_PATH has a segment of length zero (RFC 7606 7.2)"
    try:
        for name in ("med", "local-preference"):
            if name in attributes and not 0 <= int(attributes[name]) < 2**32:
                return f"{name} {attributes[name]} is out of range"
    except (TypeError, ValueError):
        return "MED or LOCAL_PREF is not a number"
    return None


def _prefix(entry: Any) -> str:
    text = entry["nlri"] if isinstance(entry, dict) else entry
    return text if _canonical_prefix(text) else str(ipaddress.ip_network(text, strict=False))


# Prefix length text -> (host bits mask of an IPv4 address, of an IPv6 address; -1 where the length is too long):
# a length written as ipaddress writes it ("24", not "024", "+24" or " 24", nor in other digits) is exactly a key here.
_HOST_MASKS = {str(length): ((1 << (32 - length)) - 1 if length <= 32 else -1, (1 << (128 - length)) - 1)
               for length in range(129)}


def _canonical_prefix(text: object) -> bool:
    """True when `text` is a prefix already written the way ipaddress writes it (ExaBGP's always are): the fast path
    at 200,000 prefixes a table, 4x quicker than building an ip_network. Anything else goes through ipaddress."""
    if not isinstance(text, str):
        return False
    addr, _, plen = text.partition("/")
    masks = _HOST_MASKS.get(plen)
    if masks is None:
        return False
    if ":" in addr:
        if "." in addr:  # IPv4 inside IPv6: ipaddress and inet_ntop write those differently
            return False
        family, mask = socket.AF_INET6, masks[1]
    else:
        family, mask = socket.AF_INET, masks[0]
    try:
        raw = socket.inet_pton(family, addr)
    except OSError:
        return False
    return mask >= 0 and not int.from_bytes(raw, "big") & mask and socket.inet_ntop(family, raw) == addr


def _attributes(attributes: dict[str, Any], next_hop: str) -> PathAttributes:
    sequence: list[int] = []
    as_set: list[int] = []
    path = attributes.get("as-path", {})
    segments = path.values() if isinstance(path, dict) else [{"element": "as-sequence", "value": path}]
    for segment in segments:
        values = [int(asn) for asn in segment["value"]]
        if segment["element"] in ("as-set", "confed-set"):
            as_set += values
        else:
            sequence += values
    med = attributes.get("med")
    local_pref = attributes.get("local-preference")
    communities = tuple(f"{a}:{b}" for a, b in attributes.get("community", []))
    extended = tuple(ExtendedCommunity(int(ext["value"]), str(ext["string"]))
                     for ext in attributes.get("extended-community", []))
    large = tuple(f"{a}:{b}:{c}" for a, b, c in attributes.get("large-community", []))
    return PathAttributes(
        next_hop=next_hop,
        as_path=tuple(sequence),
        origin=_ORIGINS[attributes["origin"]],
        med=None if med is None else int(med),
        local_pref=None if local_pref is None else int(local_pref),
        communities=communities,
        as_set=tuple(as_set),
        extended_communities=extended,
        large_communities=large,
    )
