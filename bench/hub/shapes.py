"""Benchmark shapes: spokes, their prefixes, peer types and import permit lists, and what every party must hold.

Everything here is pure (no I/O): the mcrd config, the BIRD/FRR hub configs and the expected sets all derive from
`Topology`, so the three hubs are given the same job and judged against the same answer.

Spoke i (0-based):
- AS 65001+i, link 169.254.i.0/30 (hub .1, spoke .2), interface `sNN` on the hub and `hub` in the spoke;
- originates n /24s from its own aligned block 20.0.0.0 + i * block (block = n rounded up to a power of two /24s);
- peer type: with 2 spokes NON_CLOUD and PRIV_CLOUD (both directions carry routes); with 3 or more, spoke 0 is
  NON_CLOUD, spoke 1 PUB_CLOUD, the rest PRIV_CLOUD, so private/public isolation decides part of every set;
- import permit list: deny 4 of its prefixes (exact), then permit its block `ge 24 le 24`; so 4 routes per spoke
  are rejected by policy and set equality checks the filter, not only the counts.

Expected sets (docs/MCR-SEMANTICS.md 2.1-2.3): spoke T receives every accepted prefix of every other spoke S whose peer
type may go to T's (NON -> all; PRIV -> NON, PRIV; PUB -> NON); the hub's kernel holds every accepted prefix, via
the spoke that announced it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

HUB_ASN = 133937
ROUTER_ID = "10.255.255.1"
BASE = int(ipaddress.IPv4Address("20.0.0.0"))
REJECTED_PER_SPOKE = 4

# learned-from type -> the peer types it may be advertised to (docs/MCR-SEMANTICS.md 2.1)
ALLOWED = {
    "NON_CLOUD": {"NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"},
    "PRIV_CLOUD": {"NON_CLOUD", "PRIV_CLOUD"},
    "PUB_CLOUD": {"NON_CLOUD"},
}


@dataclass(frozen=True)
class Shape:
    name: str
    spokes: int
    prefixes: int  # per spoke
    note: str


SHAPES = {
    "S1": Shape("S1", 2, 1000, "2 spokes x 1k (smoke)"),
    "S2": Shape("S2", 10, 1000, "10 x 1k: the MCR's 10,000-route cap"),
    "S3": Shape("S3", 30, 100, "30 x 100: AWS-style (AWS drops a session above 100 prefixes)"),
    "S4": Shape("S4", 2, 100_000, "2 x 100k: stress (mcr.maxRoutes raised)"),
}


@dataclass(frozen=True)
class Spoke:
    index: int
    asn: int
    peer_type: str
    hub_ip: str
    spoke_ip: str
    block: ipaddress.IPv4Network  # aligned block holding the spoke's /24s
    prefixes: tuple[str, ...]  # what the spoke originates, in order
    rejected: tuple[str, ...]  # what the hub's import permit list denies

    @property
    def name(self) -> str:
        return f"s{self.index:02d}"

    @cached_property
    def accepted(self) -> frozenset[str]:
        return frozenset(self.prefixes) - frozenset(self.rejected)


def _peer_type(index: int, count: int) -> str:
    if count <= 2:
        return ("NON_CLOUD", "PRIV_CLOUD")[index]
    return {0: "NON_CLOUD", 1: "PUB_CLOUD"}.get(index, "PRIV_CLOUD")


def _block_size(prefixes: int) -> int:
    size = 1
    while size < prefixes:
        size *= 2
    return size


@dataclass(frozen=True)
class Topology:
    shape: Shape
    spokes: tuple[Spoke, ...]

    @classmethod
    def build(cls, shape: Shape | str, *, spokes: int | None = None, prefixes: int | None = None) -> Topology:
        if isinstance(shape, str):
            shape = SHAPES[shape]
        count = spokes or shape.spokes
        per = prefixes or shape.prefixes
        if count > 250 or per < 2 * REJECTED_PER_SPOKE:
            raise ValueError("1-250 spokes and at least 8 prefixes per spoke")
        size = _block_size(per)
        plen = 24 - (size.bit_length() - 1)
        out = []
        for i in range(count):
            start = BASE + i * size * 256
            block = ipaddress.IPv4Network((start, plen))
            prefixes_ = tuple(f"{ipaddress.IPv4Address(start + k * 256)}/24" for k in range(per))
            picks = sorted({1, per // 3, per // 2, per - 2})
            rejected = tuple(prefixes_[k] for k in picks)
            out.append(Spoke(i, 65001 + i, _peer_type(i, count), f"169.254.{i}.1", f"169.254.{i}.2", block,
                             prefixes_, rejected))
        return cls(Shape(shape.name, count, per, shape.note), tuple(out))

    def expected_observer(self, spoke: Spoke) -> frozenset[str]:
        """What the hub must advertise to `spoke`: the accepted routes of every other spoke its type may see."""
        out: set[str] = set()
        for other in self.spokes:
            if other is not spoke and spoke.peer_type in ALLOWED[other.peer_type]:
                out |= other.accepted
        return frozenset(out)

    def expected_kernel(self) -> dict[str, str]:
        """The hub's kernel table: every accepted prefix via the spoke that announced it."""
        return {prefix: spoke.spoke_ip for spoke in self.spokes for prefix in spoke.accepted}

    @property
    def total_accepted(self) -> int:
        return sum(len(s.accepted) for s in self.spokes)

    @property
    def advertisements(self) -> int:
        """Routes the hub must send in all (sum of every observer's expected set)."""
        return sum(len(self.expected_observer(s)) for s in self.spokes)
