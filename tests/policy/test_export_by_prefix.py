"""`mcr.export_by_prefix` says when `export_to` cannot answer differently for two prefixes of one route: the route
processor then exports a route once for all its prefixes (RouteProcessor._export_changes)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.config.load import parse_config
from mcrd.policy import mcr
from mcrd.policy.peer import PeerPolicy, PeerType, compile_peers
from mcrd.route.attributes import Origin, PathAttributes

THREE_PEERS = """
prefixFilterLists:
  - {id: 1, description: only-10, addressFamily: IPv4, entries: [{action: permit, prefix: 10.0.0.0/8, le: 32}]}
vxcs:
  - productName: dc1
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [169.254.1.1/30]
          bgpConnections: [{peerAsn: 65001, localIpAddress: 169.254.1.1, peerIpAddress: 169.254.1.2}]
  - productName: dc2
    interface: eth2
    vrouter:
      interfaces:
        - ipAddresses: [169.254.2.1/30]
          bgpConnections: [{peerAsn: 65002, localIpAddress: 169.254.2.1, peerIpAddress: 169.254.2.2}]
  - productName: dc3
    interface: eth3
    vrouter:
      interfaces:
        - ipAddresses: [169.254.3.1/30]
          bgpConnections: [{peerAsn: 65003, localIpAddress: 169.254.3.1, peerIpAddress: 169.254.3.2,
                            exportWhitelist: 1}]
"""
SOURCE, TARGET, LISTED = compile_peers(parse_config(THREE_PEERS, "three-peers"))
PEER_TYPES: st.SearchStrategy[PeerType] = st.sampled_from(["NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"])
ASNS = st.sampled_from([64999, 65001, 65002, 65003, 133937])
PREFIXES = st.builds(lambda a, b: f"{a}.{b}.0.0/16", st.sampled_from([10, 20, 172, 192]), st.integers(0, 255)) \
    | st.sampled_from(["10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"])


@st.composite
def peer(draw: st.DrawFn, base: PeerPolicy) -> PeerPolicy:
    return dataclasses.replace(
        base, peer_type=draw(PEER_TYPES), local_asn=draw(ASNS), peer_asn=draw(ASNS),
        export_policy=draw(st.sampled_from(["permit", "deny"])), as_override=draw(st.booleans()),
        prepend=draw(st.integers(0, 2)), med_out=draw(st.none() | st.integers(0, 100)),
        deny_export_to=draw(st.sampled_from([frozenset(), frozenset({TARGET.key})])))


ATTRIBUTES = st.builds(
    lambda path, med, communities: PathAttributes(next_hop="169.254.1.2", as_path=path, origin=Origin.IGP, med=med,
                                                  communities=communities),
    st.lists(ASNS, max_size=3).map(tuple), st.none() | st.integers(0, 100),
    st.lists(st.sampled_from([mcr.NO_EXPORT, mcr.NO_ADVERTISE, "65001:1"]), max_size=2, unique=True).map(
        lambda c: tuple(sorted(c))))


@settings(max_examples=500)
@given(source=peer(SOURCE), target=peer(TARGET) | peer(LISTED), attrs=ATTRIBUTES, one=PREFIXES, other=PREFIXES)
def test_a_route_exports_the_same_for_every_prefix_unless_export_by_prefix(
    source: PeerPolicy, target: PeerPolicy, attrs: PathAttributes, one: str, other: str
) -> None:
    for origin in (source, None):
        first = mcr.export_to(origin, target, one, attrs, mcr.ExportMemo())
        second = mcr.export_to(origin, target, other, attrs, mcr.ExportMemo())
        if not mcr.export_by_prefix(origin, target):
            assert first == second
    # The property is not empty: a target with an export list, or a route the MCR originates, is per prefix.
    assert mcr.export_by_prefix(source, LISTED)
    assert mcr.export_by_prefix(None, target)
