"""Render the route processor's announcements and withdrawals as ExaBGP API commands.

Many prefixes that share attributes go in one `announce attributes ... nlri P1 P2 ...` command, and the same change
for several sessions goes in one command naming them all (`neighbor A, neighbor B announce attributes next-hop self
...`): ExaBGP parses it once. Measured with ExaBGP 5.0.15 here, sending to 10 sessions: 3,700 routes/s one session
per command, 12,000/s naming all ten (docs/PERFORMANCE.md, "ExaBGP's announce path").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence

from mcrd.bgp import exabgp_fastpath
from mcrd.rib.effects import Announce, Effects
from mcrd.route.attributes import Origin, PathAttributes

PREFIXES_PER_COMMAND = 500
# A fast path command costs ExaBGP a JSON parse, a `done` answer and a write per session, and each command starts
# UPDATEs of its own: as many prefixes as a processor round holds, so that a round of withdrawals leaves as whole
# UPDATEs (about 1,000 IPv4 /24s in 4,096 octets) and not halves (docs/PERFORMANCE.md, issue 14).
FAST_PREFIXES_PER_COMMAND = 2000

_ORIGIN_NAMES = {Origin.IGP: "igp", Origin.EGP: "egp", Origin.INCOMPLETE: "incomplete"}


def attributes_text(attrs: PathAttributes) -> str:
    parts = [f"next-hop {attrs.next_hop}", f"origin {_ORIGIN_NAMES[attrs.origin]}"]
    # ExaBGP's syntax: one bracket per segment, `[ ... ]` a sequence and `( ... )` a set, side by side. A set inside
    # the brackets is refused, and an empty `[ ]` before a set would be sent as an empty segment.
    segments = [f"[ {' '.join(map(str, attrs.as_path))} ]"] if attrs.as_path or not attrs.as_set else []
    if attrs.as_set:
        segments.append(f"( {' '.join(map(str, attrs.as_set))} )")
    parts.append("as-path " + " ".join(segments))
    if attrs.med is not None:
        parts.append(f"med {attrs.med}")
    if attrs.local_pref is not None:
        parts.append(f"local-preference {attrs.local_pref}")
    if attrs.communities:
        parts.append("community [ " + " ".join(attrs.communities) + " ]")
    if attrs.extended_communities:
        # As the raw value in hex, which ExaBGP parses back exactly whatever the type (its text form may not).
        parts.append("extended-community [ " + " ".join(f"0x{ext.value:016x}" for ext in attrs.extended_communities)
                     + " ]")
    if attrs.large_communities:
        parts.append("large-community [ " + " ".join(attrs.large_communities) + " ]")
    return " ".join(parts)


def _chunks(prefixes: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(prefixes), size):
        yield prefixes[start : start + size]


def effects_commands(effects: Effects, size: int = PREFIXES_PER_COMMAND,
                     process_of: Callable[[str], int] | None = None) -> Iterator[str]:
    """The commands for one processing round: withdrawals, then announcements (the processor never withdraws and
    announces one prefix to one peer in the same round). Sessions that get the same prefixes with the same
    attributes share a command; `next-hop self` stands for each session's own address, which is the next hop the
    processor sets (docs/MCR-SEMANTICS.md 2.3 step 4). With several ExaBGP processes, `process_of(peer)` names the one
    that holds a session, and a command names sessions of one process only."""
    process = process_of or _one_process
    withdrawn: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for withdraw in effects.withdraw:
        withdrawn.setdefault((withdraw.prefixes, process(withdraw.peer)), []).append(withdraw.peer)
    for (prefixes, _), peers in withdrawn.items():
        head = f"{_neighbors(peers)} withdraw attributes nlri "
        for chunk in _chunks(prefixes, size):
            yield head + " ".join(chunk)
    announced: dict[tuple[PathAttributes, tuple[str, ...], int], list[str]] = {}
    for announce in effects.announce:
        key = (dataclasses.replace(announce.attrs, next_hop="self"), announce.prefixes, process(announce.peer))
        announced.setdefault(key, []).append(announce.peer)
    for (attrs, prefixes, _), peers in announced.items():
        head = f"{_neighbors(peers)} announce attributes {attributes_text(attrs)} nlri "
        for chunk in _chunks(prefixes, size):
            yield head + " ".join(chunk)


def fast_effects_commands(effects: Effects, instances: Mapping[str, int], size: int = PREFIXES_PER_COMMAND,
                          process_of: Callable[[str], int] | None = None,
                          fast_size: int = FAST_PREFIXES_PER_COMMAND) -> Iterator[str]:
    """`effects_commands` with the send fast path: the sessions in `instances` (peer -> its session instance) get
    `mcrd ...` commands (exabgp_fastpath.py) of up to `fast_size` prefixes, the same grouping, one command for all
    the sessions that get the same change; the others ExaBGP's own commands, of up to `size`."""
    stock = Effects(announce=tuple(a for a in effects.announce if a.peer not in instances),
                    withdraw=tuple(w for w in effects.withdraw if w.peer not in instances))
    yield from effects_commands(stock, size, process_of)
    process = process_of or _one_process
    withdrawn: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for withdraw in effects.withdraw:
        instance = instances.get(withdraw.peer)
        if instance is not None:
            session = exabgp_fastpath.session_name(withdraw.peer, instance)
            withdrawn.setdefault((withdraw.prefixes, process(withdraw.peer)), []).append(session)
    for (prefixes, _), sessions in withdrawn.items():
        for chunk in _chunks(prefixes, fast_size):
            yield exabgp_fastpath.withdraw_command(sessions, chunk)
    announced: dict[tuple[PathAttributes, tuple[str, ...], int], list[str]] = {}
    selfed: dict[int, PathAttributes] = {}  # id(attrs) -> the same with next hop self: one per attributes object
    for announce in effects.announce:
        instance = instances.get(announce.peer)
        if instance is not None:
            attrs = selfed.get(id(announce.attrs))
            if attrs is None:
                attrs = selfed[id(announce.attrs)] = dataclasses.replace(announce.attrs, next_hop="self")
            group = (attrs, announce.prefixes, process(announce.peer))
            announced.setdefault(group, []).append(exabgp_fastpath.session_name(announce.peer, instance))
    for (attrs, prefixes, _), sessions in announced.items():
        for chunk in _chunks(prefixes, fast_size):
            yield exabgp_fastpath.announce_command(sessions, attrs, chunk)


def refresh_commands(peer: str, family: int, advertised: Mapping[str, PathAttributes], *, enhanced: bool,
                     size: int | None = None, instance: int | None = None) -> Iterator[str]:
    """The answer to a ROUTE-REFRESH request from `peer` (RFC 2918): its whole Adj-RIB-Out `advertised` announced
    again, grouped by attributes as in `effects_commands`. With enhanced route refresh (RFC 7313) it goes between a
    BoRR and an EoRR (exabgp_launch.py, fix 7), after which the peer drops what it held from us and was not sent
    again."""
    afi = "ipv6" if family == 6 else "ipv4"
    sessions = [] if instance is None else [exabgp_fastpath.session_name(peer, instance)]
    if enhanced:
        yield (f"neighbor {peer} announce borr {afi} unicast" if instance is None
               else exabgp_fastpath.eor_command(sessions, family, "borr"))
    groups: dict[int, tuple[PathAttributes, list[str]]] = {}
    for prefix, attrs in advertised.items():
        groups.setdefault(id(attrs), (attrs, []))[1].append(prefix)
    announce = tuple(Announce(peer, attrs, tuple(prefixes)) for attrs, prefixes in groups.values())
    if instance is None:
        yield from effects_commands(Effects(announce=announce), size or PREFIXES_PER_COMMAND)
    else:
        yield from fast_effects_commands(Effects(announce=announce), {peer: instance},
                                         fast_size=size or FAST_PREFIXES_PER_COMMAND)
    if enhanced:
        yield (f"neighbor {peer} announce eorr {afi} unicast" if instance is None
               else exabgp_fastpath.eor_command(sessions, family, "eorr"))


def _neighbors(peers: Sequence[str]) -> str:
    return ", ".join(f"neighbor {peer}" for peer in peers)


def _one_process(peer: str) -> int:
    return 0


def first_neighbor(command: str) -> str:
    """The first session a command names (`neighbor A, neighbor B announce ...` -> `A`; a fast path command's
    first session `A#3` -> `A`)."""
    if command.startswith(exabgp_fastpath.COMMAND):
        return command.split('"sessions":["', 1)[1].split("#", 1)[0]
    return command.removeprefix("neighbor ").split(" ", 1)[0].removesuffix(",")
