"""The malformed-UPDATE case table: what a peer may send and what mcrd (ExaBGP parsing, mcrd deciding) must do.

Each case builds one UPDATE (bytes) for a prefix and says what the RFC requires:
- `withdraw`: treat-as-withdraw (RFC 7606 2): the prefix is gone from the hub and every honest peer, session up;
- `discard`: attribute discard: the route is used without the attribute, session up;
- `reject`: mcrd's import rules (RFC 4271 6.3 next hops, martians, own addresses): the route is not used and shows in
  the looking glass's `received?filtered=true` with the rejection code `code`;
- `reset`: the session is reset with a NOTIFICATION `code`/`subcode` (RFC 7606 only where the NLRI cannot be found).
`deviation` records where ExaBGP 5.0.15 does otherwise and mcrd cannot fix it from outside, with the reason;
the lab test (tests/lab/test_malformed.py) then asserts what really happens, so a change in ExaBGP shows up.

Builders take the hub's address on the link (`hub`), another VXC's hub address (`other_hub`), the peer's AS and the
prefix, and use AS path [asn, 65000 + n] so that an honest peer shows which UPDATE its route came from.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from tests.bgp import rawbgp as r


@dataclass(frozen=True)
class Ctx:
    hub: str  # the hub's address on the raw peer's link
    peer: str  # the raw peer's address (the honest next hop)
    other_hub: str  # the hub's address on another VXC
    asn: int
    prefix: str
    mark: int  # 65000 + n: the last AS of the path, telling this UPDATE from the valid one before it

    def attrs(self, *extra: bytes, hop: str | None = None) -> bytes:
        return r.origin(0) + r.as_path(self.asn, self.mark) + r.next_hop(hop or self.peer) + b"".join(extra)

    def nlri(self) -> bytes:
        return r.prefixes([self.prefix])

    def send(self, attributes: bytes) -> bytes:
        return r.update(attributes=attributes, nlri=self.nlri())


@dataclass(frozen=True)
class Case:
    kind: str
    rfc: str
    build: Callable[[Ctx], bytes]
    expect: str  # withdraw | discard | reject | reset
    code: str | tuple[int, int] | None = None  # rejection code (reject) or NOTIFICATION (code, subcode) (reset)
    prefix: str | None = None  # the prefix sent when the case is about the prefix itself; `{hub}` is replaced
    deviation: str | None = None  # why what happens differs from the RFC (ExaBGP 5.0.15, not fixable from outside)
    actual: str | None = None  # what happens instead (withdraw | discard | reject | reset | used), with a deviation

    @property
    def outcome(self) -> str:
        return self.actual or self.expect


def _hop(address: Callable[[Ctx], str]) -> Callable[[Ctx], bytes]:
    return lambda c: c.send(c.attrs(hop=address(c)))


def _attribute_overrun(c: Ctx) -> bytes:
    # The last attribute (MED) says 4 bytes, 2 are left before the NLRI (RFC 7606 4: treat-as-withdraw).
    attributes = c.attrs() + struct.pack("!BBB", r.OPTIONAL, r.MED, 4) + b"\0\0"
    return c.send(attributes)


def _total_length_overrun(c: Ctx) -> bytes:
    attributes = c.attrs()
    body = struct.pack("!H", 0) + struct.pack("!H", len(attributes) + 40) + attributes + c.nlri()
    return r.update_raw(body)


def _withdrawn_length_overrun(c: Ctx) -> bytes:
    return r.update_raw(struct.pack("!H", 200) + r.prefixes([c.prefix]))


CASES: tuple[Case, ...] = (
    # --- ORIGIN (RFC 7606 7.1) ---
    Case("origin-undefined-value", "7606 7.1", lambda c: c.send(r.origin(5) + c.attrs()[4:]), "withdraw"),
    Case("origin-bad-length", "7606 7.1", lambda c: c.send(r.attr(r.ORIGIN, b"\0\0") + c.attrs()[4:]), "withdraw",
         deviation="ExaBGP 5.0.15 reads an ORIGIN of any length by its first byte and reports it as valid (`igp`): "
                   "mcrd never sees the error; the route is used", actual="used"),
    Case("origin-missing", "7606 3.d", lambda c: c.send(c.attrs()[4:]), "withdraw"),
    # --- AS_PATH (7.2) ---
    Case("as-path-segment-overrun", "7606 7.2",
         lambda c: c.send(r.origin(0) + r.attr(r.AS_PATH, bytes([2, 5]) + struct.pack("!I", c.asn))
                          + r.next_hop(c.peer)), "withdraw"),
    Case("as-path-unknown-segment-type", "7606 7.2",
         lambda c: c.send(r.origin(0) + r.as_path(c.asn, c.mark, segment=7) + r.next_hop(c.peer)), "withdraw"),
    Case("as-path-zero-length-segment", "7606 7.2",
         lambda c: c.send(r.origin(0) + r.attr(r.AS_PATH, bytes([2, 0])) + r.next_hop(c.peer)), "withdraw"),
    # ExaBGP reports a missing and an empty AS_PATH alike (no `as-path`); an empty path is valid on iBGP only, so the
    # processor refuses it from an eBGP peer (RFC 4271 6.3) with the code `as-path`: not used, shown as filtered.
    Case("as-path-missing", "7606 3.d", lambda c: c.send(r.origin(0) + r.next_hop(c.peer)), "reject", "as-path"),
    # --- NEXT_HOP (7.3, RFC 4271 6.3) ---
    Case("next-hop-bad-length", "7606 7.3",
         lambda c: c.send(r.origin(0) + r.as_path(c.asn, c.mark) + r.attr(r.NEXT_HOP, b"\x0a\0\0")), "withdraw"),
    Case("next-hop-missing", "7606 3.d", lambda c: c.send(r.origin(0) + r.as_path(c.asn, c.mark)), "withdraw"),
    Case("next-hop-zero", "4271 6.3", _hop(lambda c: "0.0.0.0"), "reject", "next-hop"),
    Case("next-hop-multicast", "4271 6.3", _hop(lambda c: "224.0.0.5"), "reject", "next-hop"),
    Case("next-hop-loopback", "4271 6.3", _hop(lambda c: "127.0.0.1"), "reject", "next-hop"),
    Case("next-hop-class-e", "4271 6.3", _hop(lambda c: "240.0.0.1"), "reject", "next-hop"),
    Case("next-hop-hub-itself", "4271 6.3", _hop(lambda c: c.hub), "reject", "next-hop"),
    Case("next-hop-hub-other-vxc", "4271 6.3", _hop(lambda c: c.other_hub), "reject", "next-hop"),
    # --- MED (7.4), LOCAL_PREF (7.5) ---
    Case("med-bad-length", "7606 7.4", lambda c: c.send(c.attrs(r.attr(r.MED, b"\0\0\1"))), "withdraw"),
    Case("local-pref-on-ebgp", "7606 7.5", lambda c: c.send(c.attrs(r.local_pref(500))), "discard"),
    Case("local-pref-bad-length-on-ebgp", "7606 7.5",
         lambda c: c.send(c.attrs(r.attr(r.LOCAL_PREF, b"\0\1"))), "discard",
         deviation="ExaBGP 5.0.15 treats a malformed LOCAL_PREF as withdraw whatever the session type; RFC 7606 7.5 "
                   "discards LOCAL_PREF from an external peer: the route is withdrawn instead of used",
         actual="withdraw"),
    # --- ATOMIC_AGGREGATE (7.6), AGGREGATOR (7.7) ---
    Case("atomic-aggregate-bad-length", "7606 7.6",
         lambda c: c.send(c.attrs(r.attr(r.ATOMIC_AGGREGATE, b"\1"))), "discard"),
    Case("aggregator-bad-length", "7606 7.7",
         lambda c: c.send(c.attrs(r.attr(r.AGGREGATOR, b"\0\0\xfd\xe8\x0a"))), "discard"),
    # --- COMMUNITY (7.8) ---
    Case("community-bad-length", "7606 7.8",
         lambda c: c.send(c.attrs(r.attr(r.COMMUNITY, b"\xfd\xe8\0\1\0"))), "withdraw"),
    # --- ORIGINATOR_ID (7.9), CLUSTER_LIST (7.10): from an external peer, attribute discard ---
    Case("originator-id-on-ebgp", "7606 7.9", lambda c: c.send(c.attrs(r.originator_id("10.9.9.9"))), "discard"),
    Case("cluster-list-on-ebgp", "7606 7.10", lambda c: c.send(c.attrs(r.cluster_list("10.9.9.9"))), "discard"),
    # --- attribute flags (3.c), duplicates (3.g), lengths (4) ---
    Case("flags-origin-marked-optional", "7606 3.c",
         lambda c: c.send(r.attr(r.ORIGIN, b"\0", flags=r.OPTIONAL | r.TRANSITIVE) + c.attrs()[4:]), "withdraw"),
    Case("flags-med-marked-well-known", "7606 3.c",
         lambda c: c.send(c.attrs(r.attr(r.MED, b"\0\0\0\1", flags=r.TRANSITIVE))), "withdraw"),
    Case("duplicate-med", "7606 3.g", lambda c: c.send(c.attrs(r.med(10), r.med(20))), "discard"),
    Case("attribute-length-overrun", "7606 4", _attribute_overrun, "withdraw"),
    # --- where the NLRI cannot be found, or MP_REACH/MP_UNREACH are broken: session reset ---
    Case("total-attribute-length-overrun", "7606 4", _total_length_overrun, "reset", (3, 1)),
    Case("withdrawn-length-overrun", "7606 4", _withdrawn_length_overrun, "reset", (3, 1)),
    Case("nlri-prefix-length-33", "7606 5.3",
         lambda c: r.update(attributes=c.attrs(), nlri=bytes([33, 10, 0, 0, 0, 0])), "reset", (3, 10)),
    Case("mp-reach-bad-next-hop-length", "7606 7.11",
         lambda c: r.update(attributes=r.origin(0) + r.as_path(c.asn, c.mark)
                            + r.mp_reach(c.peer, c.nlri(), hop_length=5)), "reset", (3, 9)),
    Case("mp-unreach-prefix-length-33", "7606 7.12",
         lambda c: r.update(attributes=r.mp_unreach(1, bytes([33, 10, 0, 0, 0, 0]))), "reset", (3, 10)),
    Case("mp-reach-duplicate", "7606 3.g",
         lambda c: r.update(attributes=r.origin(0) + r.as_path(c.asn, c.mark) + r.mp_reach(c.peer, c.nlri())
                            + r.mp_reach(c.peer, c.nlri())), "reset", (3, 1)),
    # --- martians and the hub's own addresses (docs/MCR-SEMANTICS.md 2.7): refused at import ---
    Case("martian-this-network", "1122 3.2.1.3", lambda c: c.send(c.attrs()), "reject", "martian",
         prefix="0.10.0.0/16"),
    Case("martian-loopback", "1122 3.2.1.3", lambda c: c.send(c.attrs()), "reject", "martian", prefix="127.1.0.0/16"),
    Case("martian-multicast", "1112 4", lambda c: c.send(c.attrs()), "reject", "martian", prefix="239.1.0.0/16"),
    Case("martian-class-e", "1112 4", lambda c: c.send(c.attrs()), "reject", "martian", prefix="240.1.0.0/16"),
    Case("own-address", "docs/MCR-SEMANTICS.md 2.7", lambda c: c.send(c.attrs()), "reject", "own-address",
         prefix="{hub}/32"),
)
