"""`mcr.import_rejections` (the route processor's import path, one call per UPDATE) answers as `import_verdict`
does prefix by prefix."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.config.load import parse_config
from mcrd.policy import mcr
from mcrd.policy.peer import PeerPolicy, compile_peers
from mcrd.policy.rejection import Rejection
from mcrd.route.attributes import Origin, PathAttributes

CONFIG = parse_config("""
prefixFilterLists:
  - {id: 1, description: in, addressFamily: IPv4, entries: [{action: deny, prefix: 10.9.0.0/16, le: 32},
                                                            {action: permit, prefix: 10.0.0.0/8, le: 24}]}
  - {id: 2, description: out, addressFamily: IPv4, entries: [{action: permit, prefix: 10.5.0.0/16, le: 32}]}
vxcs:
  - productName: dc1
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [169.254.1.1/30]
          bgpConnections: [{peerAsn: 65001, localIpAddress: 169.254.1.1, peerIpAddress: 169.254.1.2,
                            importWhitelist: 1, importBlacklist: 2}]
        - ipAddresses: [169.254.2.1/30]
          bgpConnections: [{peerAsn: 65002, localIpAddress: 169.254.2.1, peerIpAddress: 169.254.2.2}]
""", "import")
PEERS = compile_peers(CONFIG)
OWN = mcr.own_of(CONFIG)
OCTETS = st.sampled_from([0, 5, 9, 200])
PREFIXES = st.lists(
    st.builds(lambda b, c: f"10.{b}.{c}.0/24", OCTETS, st.integers(0, 255))
    | st.builds(lambda b: f"10.{b}.0.0/16", OCTETS)
    | st.sampled_from(["127.0.0.0/8", "224.1.0.0/16", "169.254.1.1/32", "2001:db8::/32", "0.0.0.0/0", "10.0.0.0/8",
                       "10.1.2.128/25"]),
    max_size=40)
ATTRIBUTES = st.builds(lambda hop, path: PathAttributes(next_hop=hop, as_path=path, origin=Origin.IGP),
                       st.sampled_from(["169.254.1.2", "127.0.0.1", "169.254.2.1"]),
                       st.lists(st.sampled_from([65001, 65002, 133937]), max_size=2).map(tuple))


@settings(max_examples=300)
@given(peer=st.sampled_from(PEERS), prefixes=PREFIXES, attrs=ATTRIBUTES)
def test_import_rejections_answer_as_import_verdict_per_prefix(peer: PeerPolicy, prefixes: list[str],
                                                                attrs: PathAttributes) -> None:
    update = mcr.update_verdict(peer, attrs, OWN)
    verdicts = [mcr.import_verdict(peer, prefix, attrs, OWN) for prefix in prefixes]
    want = [v if isinstance(v, Rejection) else None for v in verdicts]
    assert mcr.import_rejections(peer, prefixes, OWN, update) == want
    for verdict in verdicts:  # an accepted route is stored with the UPDATE's attributes after import policy
        assert isinstance(verdict, Rejection) or verdict == update
