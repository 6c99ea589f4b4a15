"""Prefix filter lists: parsing prefixes to integers and a fast first-match matcher.

A list *matches* a route when, scanning entries in order, the first entry that contains the route (route inside
the entry's prefix, ge <= route length <= le) has action permit. A deny entry, or no containing entry, is no match
(docs/MCR-SEMANTICS.md 2.2).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mcrd.config.model import PrefixFilterList
from mcrd.policy.rejection import Rejection

ParsedPrefix = tuple[int, int, int]
"""(IP version, network as an integer, prefix length)."""


def parse_prefix(prefix: str) -> ParsedPrefix:
    """Parse a canonical prefix string such as `10.1.0.0/16` (hot path: IPv4 without `ipaddress`)."""
    addr, _, length = prefix.partition("/")
    if ":" in addr:
        return 6, int(ipaddress.IPv6Address(addr)), int(length)
    a, b, c, d = addr.split(".")
    return 4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d), int(length)


def prefix_version(prefix: str) -> int:
    return 6 if ":" in prefix else 4


@dataclass(frozen=True, slots=True)
class EntryHit:
    """The first entry of a list that contains a route: its position (1-based, as a portal shows it)."""

    position: int
    permit: bool
    text: str


class CompiledPrefixList:
    """A prefix filter list compiled for lookup: entries are bucketed by prefix length, so a route costs one
    dictionary probe per distinct entry length instead of a scan of up to 200 entries."""

    __slots__ = ("_buckets", "_rejections", "description", "id", "source", "version")

    def __init__(self, plist: PrefixFilterList) -> None:
        self.source = plist  # the config object: equal lists compare equal, so a reload can tell a change
        self.id = plist.id
        self._rejections: dict[tuple[str, bool, int], Rejection] = {}
        self.description = plist.description
        self.version = 4 if plist.address_family == "IPv4" else 6
        longest = 32 if self.version == 4 else 128
        by_length: dict[int, dict[int, list[tuple[int, int, int, EntryHit]]]] = {}
        for position, entry in enumerate(plist.entries, start=1):
            length = entry.prefix.prefixlen
            key = int(entry.prefix.network_address) >> (longest - length)
            hit = EntryHit(position, entry.action == "permit", _entry_text(entry.action, str(entry.prefix),
                                                                          entry.ge, entry.le))
            by_length.setdefault(length, {}).setdefault(key, []).append(
                (position, entry.effective_ge, entry.effective_le, hit)
            )
        self._buckets = tuple(
            (length, longest - length, table) for length, table in sorted(by_length.items())
        )

    def first_hit(self, parsed: ParsedPrefix) -> EntryHit | None:
        """The first entry (in list order) that contains the route, or None."""
        version, net, length = parsed
        if version != self.version:
            return None
        best: tuple[int, int, int, EntryHit] | None = None
        for entry_length, shift, table in self._buckets:
            if entry_length > length:
                break
            candidates = table.get(net >> shift)
            if candidates is None:
                continue
            for candidate in candidates:  # in list order within a bucket
                if candidate[1] <= length <= candidate[2]:
                    if best is None or candidate[0] < best[0]:
                        best = candidate
                    break
        return None if best is None else best[3]

    def matches(self, parsed: ParsedPrefix) -> bool:
        hit = self.first_hit(parsed)
        return hit is not None and hit.permit

    @property
    def name(self) -> str:
        return f"{self.description!r} (id {self.id})"

    def verdict(self, parsed: ParsedPrefix, *, permit_list: bool, role: str) -> Rejection | None:
        """Used as a permit list the route must match; as a deny list it must not. A rejection names the
        deciding entry; there are few distinct ones, so they are made once and shared."""
        hit = self.first_hit(parsed)
        if (hit is not None and hit.permit) == permit_list:
            return None
        key = (role, permit_list, 0 if hit is None else hit.position)
        found = self._rejections.get(key)
        if found is None:
            kind = "permit" if permit_list else "deny"
            if hit is None:
                why = "no entry contains the route"
            else:
                why = f"entry {hit.position} ({hit.text}) {'permits' if hit.permit else 'denies'} it"
            found = Rejection(f"{role}-{kind}-list", f"{role} {kind} list {self.name}: {why}")
            self._rejections[key] = found
        return found


def _entry_text(action: str, prefix: str, ge: int | None, le: int | None) -> str:
    bounds = "".join(f" {k} {v}" for k, v in (("ge", ge), ("le", le)) if v is not None)
    return f"{action} {prefix}{bounds}"
