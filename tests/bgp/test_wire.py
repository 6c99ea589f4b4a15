"""The UPDATE packer of the send fast path (mcrd/bgp/wire.py) against ExaBGP 5.0.15's own packer and parser.

For random attribute sets and prefixes, on sessions with and without 4-byte AS numbers and extended messages, eBGP
and iBGP, IPv4 and IPv6, negotiated by ExaBGP's own classes from OPENs both sides build from their configuration:
ExaBGP's parser reads back exactly the intended routes (prefixes, next hop self, AS path after merging the AS4_PATH),
the attributes are byte for byte those ExaBGP's own announce path packs for the command mcrd sends today, and no
message is longer than the session allows.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import pytest
from exabgp.bgp.message import Action  # type: ignore[import-untyped]
from exabgp.bgp.message.direction import Direction  # type: ignore[import-untyped]
from exabgp.bgp.message.open import ASN, HoldTime, Open, RouterID, Version  # type: ignore[import-untyped]
from exabgp.bgp.message.open.capability import Capabilities  # type: ignore[import-untyped]
from exabgp.bgp.message.open.capability.negotiated import Negotiated  # type: ignore[import-untyped]
from exabgp.bgp.message.update import Update  # type: ignore[import-untyped]
from exabgp.bgp.message.update.attribute import Attribute  # type: ignore[import-untyped]
from exabgp.bgp.neighbor import Neighbor  # type: ignore[import-untyped]
from exabgp.configuration.configuration import Configuration  # type: ignore[import-untyped]
from exabgp.environment import getenv  # type: ignore[import-untyped]
from exabgp.logger.option import option  # type: ignore[import-untyped]
from exabgp.reactor.api import API  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.bgp import wire
from mcrd.bgp.commands import attributes_text
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

ADDRESSES = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}  # peer, local (next hop self)
PEER_AS = 64512


@dataclasses.dataclass(frozen=True)
class Session:
    profile: wire.Profile
    family: int
    neighbor: Any  # ExaBGP's, for the peer
    negotiated: Any
    api: Any
    name: str

    @property
    def next_hop(self) -> str:
        return ADDRESSES[self.family][1]


@functools.cache
def session(asn4: bool, extended: bool, ibgp: bool, family: int) -> Session:
    """ExaBGP's view of an established session, negotiated from both sides' OPENs as the reactor does."""
    option.setup(getenv())
    peer, local = ADDRESSES[family]
    local_as = 133937 if asn4 else 65001  # ExaBGP refuses a 4-byte local AS without the capability
    peer_as = local_as if ibgp else PEER_AS
    capability = (f"capability {{ asn4 {'enable' if asn4 else 'disable'};"
                  f" extended-message {'enable' if extended else 'disable'}; }}")
    afi = "ipv6" if family == 6 else "ipv4"

    def neighbor(address: str, source: str, mine: int, theirs: int, router_id: str) -> str:
        return (f"neighbor {address} {{ router-id {router_id}; local-address {source}; local-as {mine};"
                f" peer-as {theirs}; adj-rib-out false; family {{ {afi} unicast; }} {capability} }}\n")

    path = os.path.join(tempfile.mkdtemp(), "exabgp.conf")
    with open(path, "w") as handle:
        handle.write(neighbor(peer, local, local_as, peer_as, "192.0.2.254")
                     + neighbor(local, peer, peer_as, local_as, "192.0.2.1"))
    conf = Configuration([path])
    assert conf.reload(), "ExaBGP did not read the test configuration"
    [(name, mine)] = [(n, v) for n, v in conf.neighbors.items() if n.startswith(f"neighbor {peer} ")]
    [theirs] = [v for n, v in conf.neighbors.items() if n.startswith(f"neighbor {local} ")]

    def open_message(asn: int, router_id: str, neighbor: Any) -> Any:
        return Open(Version(4), ASN(asn if asn <= 0xFFFF else wire.AS_TRANS), HoldTime(90), RouterID(router_id),
                    Capabilities().new(neighbor, False))

    negotiated = Negotiated(mine)
    negotiated.sent(open_message(local_as, "192.0.2.254", mine))
    negotiated.received(open_message(peer_as, "192.0.2.1", theirs))
    assert negotiated.validate(mine) is None
    profile = wire.Profile(asn4=asn4, max_size=wire.EXTENDED_SIZE if extended else wire.INITIAL_SIZE, ibgp=ibgp)
    assert (negotiated.asn4, negotiated.msg_size) == (profile.asn4, profile.max_size), "the OPENs negotiated otherwise"
    return Session(profile, family, mine, negotiated, API(conf), name)


SESSIONS = [(asn4, extended, ibgp, family) for asn4 in (True, False) for extended in (False, True)
            for ibgp in (False, True) for family in (4, 6)]

asns = st.one_of(st.integers(1, 0xFFFF), st.integers(0x10000, 0xFFFFFFFF))
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
attributes = st.builds(
    PathAttributes,
    next_hop=st.just("self"),
    as_path=st.one_of(st.lists(asns, max_size=8), st.lists(asns, min_size=250, max_size=300)).map(tuple),
    origin=st.sampled_from(Origin),
    med=st.none() | u32,
    local_pref=st.none() | u32,
    communities=st.sets(st.tuples(u16, u16), max_size=70).map(
        lambda values: tuple(sorted(f"{high}:{low}" for high, low in values))),
    as_set=st.lists(asns, max_size=3, unique=True).map(tuple),
    extended_communities=st.sets(st.integers(0, 2**64 - 1), max_size=40).map(
        lambda values: tuple(ExtendedCommunity(value, "") for value in sorted(values))),
    large_communities=st.sets(st.tuples(u32, u32, u32), max_size=25).map(
        lambda values: tuple(":".join(map(str, value)) for value in sorted(values))),
)


@st.composite
def prefixes(draw: st.DrawFn, family: int) -> list[str]:
    """Random prefixes, and sometimes enough of them for several messages of 4,096 octets (65,535: below)."""
    bits = 32 if family == 4 else 128
    length = st.integers(0, bits)
    network = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
    chosen = {str(network((draw(st.integers(0, 2**bits - 1)), n), strict=False))
              for n in draw(st.lists(length, min_size=1, max_size=40))}
    bulk = draw(st.sampled_from((0, 0, 0, 1500)))
    base = ipaddress.ip_network("10.0.0.0/8" if family == 4 else "2001:db8::/32")
    chosen.update(str(net) for _, net in zip(range(bulk), base.subnets(new_prefix=base.prefixlen + 16), strict=False))
    return sorted(chosen)


def parsed(session: Session, messages: Sequence[bytes]) -> list[Any]:
    updates = []
    for message in messages:
        assert message[:16] == wire.MARKER
        assert message[18] == wire.UPDATE
        assert int.from_bytes(message[16:18], "big") == len(message) <= session.profile.max_size
        updates.append(Update.unpack_message(message[wire.HEADER_LEN:], Direction.IN, session.negotiated))
    return updates


def canonical(nlri: Any) -> str:
    """A prefix ExaBGP read, in Python's text form (ExaBGP writes `::1:0/112` as `::0.1.0.0/112`)."""
    return str(ipaddress.ip_network(str(nlri.cidr)))


def stock_attributes(session: Session, attrs: PathAttributes, prefix: str) -> bytes:
    """What ExaBGP's own announce path packs for the command mcrd sends today (`next-hop self` resolved)."""
    command = f"announce attributes {attributes_text(attrs)} nlri {prefix}"
    [change] = session.api.api_attributes(command, [session.name])
    change.nlri.action = Action.ANNOUNCE
    change = Neighbor.remove_self(session.neighbor, change)
    [message] = Update([change.nlri], change.attributes).messages(session.negotiated)
    [update] = parsed(session, [message])
    assert [canonical(nlri) for nlri in update.nlris] == [prefix]
    packed: bytes = change.attributes.pack(session.negotiated)
    return packed


def as_path(update: Any) -> tuple[list[int], list[int]]:
    """The AS_SEQUENCE and AS_SET numbers ExaBGP read (after merging an AS4_PATH, RFC 6793 4.2.3)."""
    sequence: list[int] = []
    as_set: list[int] = []
    path = update.attributes.get(Attribute.CODE.AS_PATH)  # ExaBGP leaves out an empty one
    for segment in [] if path is None else path.aspath:
        kind = type(segment).__name__
        assert kind in ("SEQUENCE", "SET"), kind
        (sequence if kind == "SEQUENCE" else as_set).extend(int(asn) for asn in segment)
    return sequence, as_set


@pytest.mark.parametrize(("asn4", "extended", "ibgp", "family"), SESSIONS)
@settings(max_examples=12)
@given(data=st.data())
def test_exabgp_reads_back_the_intended_announcements(asn4: bool, extended: bool, ibgp: bool, family: int,
                                                      data: st.DataObject) -> None:
    s = session(asn4, extended, ibgp, family)
    attrs = data.draw(attributes)
    routes = data.draw(prefixes(family))
    nlris = [wire.nlri(prefix)[1] for prefix in routes]
    messages = list(wire.announcements(attrs, family, nlris, s.profile, s.next_hop))
    updates = parsed(s, messages)
    got = [(canonical(nlri), str(nlri.nexthop), nlri.action) for update in updates for nlri in update.nlris]
    assert sorted(got) == sorted((prefix, s.next_hop, Action.ANNOUNCE) for prefix in routes)
    for update in updates:
        assert as_path(update) == (list(attrs.as_path), list(attrs.as_set))
        med = update.attributes.get(Attribute.CODE.MED)
        assert (None if med is None else med.med) == attrs.med
        local_pref = update.attributes.get(Attribute.CODE.LOCAL_PREF)
        expected_pref = (100 if attrs.local_pref is None else attrs.local_pref) if ibgp else None
        assert (None if local_pref is None else local_pref.localpref) == expected_pref
    next_hop = s.next_hop if family == 4 else None
    # ExaBGP 5.0.15 takes its own AS from the OPEN, AS_TRANS when it is a 4-byte one, so it packs an iBGP session
    # with a 4-byte AS like an eBGP one: without LOCAL_PREF, which RFC 4271 5.1.5 requires (checked above).
    stock_profile = dataclasses.replace(s.profile, ibgp=False) if ibgp and asn4 else s.profile
    assert wire.path_attributes(attrs, stock_profile, next_hop) == stock_attributes(s, attrs, routes[0])
    if len(messages) > 1:  # split only where the next prefix would not fit
        first = messages[0]
        assert len(first) + len(nlris[len(parsed(s, [first])[0].nlris)]) > s.profile.max_size


@pytest.mark.parametrize(("asn4", "extended", "ibgp", "family"), SESSIONS)
@settings(max_examples=6)
@given(data=st.data())
def test_exabgp_reads_back_the_intended_withdrawals(asn4: bool, extended: bool, ibgp: bool, family: int,
                                                    data: st.DataObject) -> None:
    s = session(asn4, extended, ibgp, family)
    routes = data.draw(prefixes(family))
    messages = list(wire.withdrawals(family, [wire.nlri(prefix)[1] for prefix in routes], s.profile))
    got = [(canonical(nlri), nlri.action) for update in parsed(s, messages) for nlri in update.nlris]
    assert sorted(got) == sorted((prefix, Action.WITHDRAW) for prefix in routes)
    assert all(len(message) > s.profile.max_size - 17 for message in messages[:-1]), "a message was not filled"


@pytest.mark.parametrize("family", [4, 6])
def test_end_of_rib_is_what_exabgp_reads_as_end_of_rib(family: int) -> None:
    s = session(True, False, False, family)
    [update] = parsed(s, [wire.end_of_rib(family)])
    assert type(update).__name__ == "EOR"
    assert update.nlris[0].afi == (1 if family == 4 else 2)


@pytest.mark.parametrize("text", ["10.0.0.0", "10.0.0.0/33", "2001:db8::/129", "nonsense/8", "10.0.0/8", "/8"])
def test_a_bad_prefix_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a prefix"):
        wire.nlri(text)


def test_prefix_encodings() -> None:
    assert wire.nlri("10.1.0.0/16") == (4, b"\x10\x0a\x01")
    assert wire.nlri("0.0.0.0/0") == (4, b"\x00")
    assert wire.nlri("2001:db8::/33") == (6, b"\x21\x20\x01\x0d\xb8\x00")


def test_a_session_has_one_of_two_message_sizes() -> None:
    with pytest.raises(ValueError, match="message size 8192"):
        wire.Profile(max_size=8192)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("extended", [False, True])
def test_a_large_table_fills_each_message_to_the_negotiated_size(family: int, extended: bool) -> None:
    s = session(True, extended, False, family)
    base = ipaddress.ip_network("10.0.0.0/8" if family == 4 else "2001:db8::/32")
    routes = [str(net) for _, net in zip(range(20000), base.subnets(new_prefix=base.prefixlen + 16), strict=False)]
    attrs = PathAttributes("self", (133937, 4200000001), communities=("65000:1",))
    nlris = [wire.nlri(prefix)[1] for prefix in routes]
    messages = list(wire.announcements(attrs, family, nlris, s.profile, s.next_hop))
    withdrawn = list(wire.withdrawals(family, nlris, s.profile))
    for sent in (messages, withdrawn):
        updates = parsed(s, sent)
        assert sorted(canonical(nlri) for update in updates for nlri in update.nlris) == sorted(routes)
        assert len(sent) > 1
        assert all(len(message) > s.profile.max_size - 7 for message in sent[:-1]), "a message was not filled"


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("subtype", [wire.BORR, wire.EORR])
def test_route_refresh_markers_are_what_exabgp_reads(family: int, subtype: int) -> None:
    from exabgp.bgp.message.refresh import RouteRefresh  # type: ignore[import-untyped]

    message = wire.route_refresh_marker(family, subtype)
    assert message[:16] == wire.MARKER
    assert int.from_bytes(message[16:18], "big") == len(message) == 23
    negotiated = session(True, False, False, family).negotiated
    refresh = RouteRefresh.unpack_message(message[wire.HEADER_LEN:], Direction.IN, negotiated)
    assert (int(refresh.afi), int(refresh.reserved), int(refresh.safi)) == (1 if family == 4 else 2, subtype, 1)
    assert refresh.reserved == (RouteRefresh.start if subtype == wire.BORR else RouteRefresh.end)


@pytest.mark.parametrize("family", [4, 6])
def test_sessions_of_one_command_sharing_their_fills_get_the_bytes_each_would_get_alone(family: int) -> None:
    """`fills` shares how the prefixes split into messages between the sessions of one command: sessions of other
    message sizes, AS number widths and next hops each still get exactly their own bytes."""
    base = ipaddress.ip_network("10.0.0.0/8" if family == 4 else "2001:db8::/32")
    routes = [str(net) for _, net in zip(range(3000), base.subnets(new_prefix=base.prefixlen + 16), strict=False)]
    nlris = [wire.nlri(prefix)[1] for prefix in routes]
    attrs = PathAttributes("self", (133937, 4200000001), communities=("65000:1",))
    hops = ["192.0.2.1", "198.51.100.1"] if family == 4 else ["2001:db8::1", "2001:db8:ffff::1"]
    sessions = [(wire.Profile(asn4, size), hop) for asn4 in (True, False)
                for size in (wire.INITIAL_SIZE, wire.EXTENDED_SIZE) for hop in hops]
    announce_fills: wire.Fills = {}
    withdraw_fills: wire.Fills = {}
    for profile, hop in sessions:
        assert (list(wire.announcements(attrs, family, nlris, profile, hop, announce_fills))
                == list(wire.announcements(attrs, family, nlris, profile, hop)))
        assert (list(wire.withdrawals(family, nlris, profile, withdraw_fills))
                == list(wire.withdrawals(family, nlris, profile)))
    assert len(withdraw_fills) == 2  # one split per message size, shared by the other six sessions


@given(st.lists(st.one_of(st.ip_addresses(v=4).flatmap(lambda a: st.integers(0, 32).map(lambda n: (a, n))),
                          st.ip_addresses(v=6).flatmap(lambda a: st.integers(0, 128).map(lambda n: (a, n)))),
                max_size=30))
def test_prefixes_packed_in_one_loop_are_what_nlri_packs_one_by_one(given_prefixes: list[tuple[Any, int]]) -> None:
    prefixes = [f"{address}/{length}" for address, length in given_prefixes]
    one_by_one: dict[int, list[bytes]] = {}
    for prefix in prefixes:
        family, encoded = wire.nlri(prefix)
        one_by_one.setdefault(family, []).append(encoded)
    assert wire.nlris_by_family(prefixes) == one_by_one


@pytest.mark.parametrize("text", ["10.0.0.0", "10.0.0.0/33", "1.2.3/8", "x/8", "2001:db8::/129", "10.0.0.0/-1"])
def test_a_bad_prefix_among_many_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a prefix"):
        wire.nlris_by_family(["10.0.0.0/8", text])


@pytest.mark.parametrize(("ours", "field"), [
    ("2001:db8::2", "2001:db8::2"),  # a global address alone: 16 octets
    ("fe80::2", "fe80::2,fe80::2"),  # link-local: in both addresses of 32 octets (RFC 2545 3), as FRR sends it
    ("febf::1", "febf::1,febf::1"),  # the last of fe80::/10
    ("fec0::1", "fec0::1"),  # not link-local (site-local, deprecated): alone
])
def test_an_ipv6_next_hop_is_sent_in_rfc_2545_form(ours: str, field: str) -> None:
    s = session(True, False, False, 6)
    attrs = PathAttributes("self", (133937,))
    nlris = [wire.nlri("2001:db8:10::/48")[1], wire.nlri("2001:db8:20::/48")[1]]
    [message] = wire.announcements(attrs, 6, nlris, s.profile, ours)
    hop = wire.ipv6_next_hop(ours)
    assert ",".join(ipaddress.ip_address(hop[i:i + 16]).compressed for i in range(0, len(hop), 16)) == field
    mp_reach = bytes([0, 2, 1, len(hop)]) + hop + b"\x00"  # AFI 2 (IPv6), SAFI 1, next hop length, hop, reserved
    assert mp_reach in message
    # ExaBGP's parser (what mcrd's receive side is checked against) reads both prefixes back from either form, once
    # per address of the field (mcrd's receive side takes the link-local one: docs/MCR-SEMANTICS.md 2.7).
    [update] = parsed(s, [message])
    read = {(canonical(nlri), str(nlri.nexthop)) for nlri in update.nlris}  # a set: both addresses may be the same
    assert read == {(prefix, hop) for prefix in ("2001:db8:10::/48", "2001:db8:20::/48") for hop in field.split(",")}
