"""Parse ExaBGP's API output (JSON format 5.0, one message per line) into route processor events.

Pure: no I/O. A line that cannot be understood becomes a `Malformed` result naming why; it never raises.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from mcrd.rib.attributes import Origin, PathAttributes
from mcrd.rib.events import EndOfRib, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn

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


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str


Parsed = PeerUp | PeerDown | RoutesAnnounced | RoutesWithdrawn | EndOfRib | Ack | Notification | Malformed | Ignored


@dataclass
class Decoder:
    """Keeps what one message needs from an earlier one: the router id from a peer's OPEN, kept for its `up`."""

    router_ids: dict[str, str] = field(default_factory=dict)

    def decode(self, line: str) -> list[Parsed]:
        text = line.strip()
        if text in ("done", "error"):
            return [Ack(text == "done")]
        if not text:
            return []
        try:
            message = json.loads(text)
            return self._message(message)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return [Malformed(text[:200], f"{type(exc).__name__}: {exc}")]

    def _message(self, message: dict[str, Any]) -> list[Parsed]:
        kind = message.get("type")
        if kind == "notification" and "neighbor" not in message:
            # ExaBGP's own `{"type": "notification", "notification": "shutdown"}` as it stops, not a peer's.
            return [Ignored(f"exabgp {message.get('notification')}")]
        neighbor = message["neighbor"] if kind in ("state", "open", "update", "notification") else None
        if neighbor is None:
            return [Ignored(str(kind))]
        peer = _address(neighbor["address"]["peer"])
        if kind == "state":
            return self._state(peer, neighbor)
        if kind == "open":
            if neighbor.get("direction") == "receive":
                self.router_ids[peer] = str(ipaddress.IPv4Address(neighbor["open"]["router_id"]))
            return []
        if kind == "notification":
            note = neighbor["notification"]
            return [Notification(peer, str(neighbor.get("direction", "")), int(note["code"]), int(note["subcode"]))]
        if neighbor.get("direction") != "receive":
            return [Ignored("sent update")]
        return _update(peer, neighbor["message"])

    def _state(self, peer: str, neighbor: dict[str, Any]) -> list[Parsed]:
        state = neighbor["state"]
        if state == "up":
            return [PeerUp(peer, self.router_ids.get(peer, "0.0.0.0"))]
        if state == "down":
            self.router_ids.pop(peer, None)
            return [PeerDown(peer, str(neighbor.get("reason", "")))]
        return [Ignored(f"state {state}")]


def _address(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _update(peer: str, message: dict[str, Any]) -> list[Parsed]:
    if "eor" in message:
        afi = message["eor"]["afi"]
        return [EndOfRib(peer, 6 if afi == "ipv6" else 4)]
    update = message["update"]
    out: list[Parsed] = []
    withdrawn: list[str] = []
    for family, entries in update.get("withdraw", {}).items():
        if family in ("ipv4 unicast", "ipv6 unicast"):
            withdrawn += [_prefix(entry) for entry in entries]
    if withdrawn:
        out.append(RoutesWithdrawn(peer, tuple(withdrawn)))
    announce = update.get("announce", {})
    if announce:
        attributes = update.get("attribute", {})
        for family, by_next_hop in announce.items():
            if family not in ("ipv4 unicast", "ipv6 unicast"):
                continue
            out += _announced(peer, attributes, by_next_hop)
    return out


def _announced(peer: str, attributes: dict[str, Any], by_next_hop: dict[str, Any]) -> list[Parsed]:
    """IPv6 routes may be listed under a global and a link-local next hop: the global one is used."""
    chosen: dict[str, str] = {}
    for next_hop in sorted(by_next_hop, key=lambda hop: ipaddress.ip_address(hop).is_link_local):
        for entry in by_next_hop[next_hop]:
            chosen.setdefault(_prefix(entry), str(ipaddress.ip_address(next_hop)))
    groups: dict[str, list[str]] = {}
    for prefix, hop_text in chosen.items():
        groups.setdefault(hop_text, []).append(prefix)
    out: list[Parsed] = []
    for hop_text, prefixes in groups.items():
        attrs = _attributes(attributes, hop_text)
        out.append(RoutesAnnounced(peer, attrs, tuple(prefixes)))
    return out


def _prefix(entry: Any) -> str:
    text = entry["nlri"] if isinstance(entry, dict) else entry
    return text if _canonical_prefix(text) else str(ipaddress.ip_network(text, strict=False))


def _canonical_prefix(text: object) -> bool:
    """True when `text` is a prefix already written the way ipaddress writes it (ExaBGP's always are): the fast path
    at 200,000 prefixes a table, 4x quicker than building an ip_network. Anything else goes through ipaddress."""
    if not isinstance(text, str):
        return False
    addr, _, plen = text.partition("/")
    if not plen.isascii() or not plen.isdigit() or (len(plen) > 1 and plen[0] == "0"):
        return False
    if ":" in addr and "." in addr:  # IPv4 inside IPv6: ipaddress and inet_ntop write those differently
        return False
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        raw = socket.inet_pton(family, addr)
    except OSError:
        return False
    bits, length = len(raw) * 8, int(plen)
    return (length <= bits and not int.from_bytes(raw, "big") & ((1 << (bits - length)) - 1)
            and socket.inet_ntop(family, raw) == addr)


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
    return PathAttributes(
        next_hop=next_hop,
        as_path=tuple(sequence),
        origin=_ORIGINS.get(str(attributes.get("origin", "igp")), Origin.INCOMPLETE),
        med=None if med is None else int(med),
        local_pref=None if local_pref is None else int(local_pref),
        communities=communities,
        as_set=tuple(as_set),
    )
