"""Parsers of the lab harness against real FRR 8.4 / BIRD 2.0.12 / GoBGP 3.10 / OpenBGPD 7.7 output (captured from a
lab run; no root)."""

from __future__ import annotations

import json

import pytest

from tests.lab.harness import (
    BirdStatic,
    GoBgpNeighbor,
    OpenBgpdNeighbor,
    OpenBgpdNetwork,
    Route,
    _frr_path,
    _parse_static_block,
    assert_stays,
    bird_static_block,
    ext_community,
    gobgp_config,
    openbgpd_config,
    parse_bird_protocol_state,
    parse_bird_routes,
    parse_frr_routes,
    parse_gobgp_routes,
    parse_openbgpd_rib,
    poll,
)

# birdc show route all table master4 (203.0.113.0/24 has two routes: the static one is best).
BIRD4 = (
    'BIRD 2.0.12 ready.\n'
    'Table master4:\n'
    '198.51.100.0/24      unicast [frr4 20:01:14.380] * (100) [AS64512i]\n'
    '\tvia 192.0.2.1 on to-frr-abc123\n'
    '\tType: BGP univ\n'
    '\tBGP.origin: IGP\n'
    '\tBGP.as_path: 64512\n'
    '\tBGP.next_hop: 192.0.2.1\n'
    '\tBGP.med: 0\n'
    '\tBGP.local_pref: 100\n'
    '198.19.1.0/24        blackhole [mcl_static4 20:01:12.348] * (200)\n'
    '\tType: static univ\n'
    '\tBGP.as_path: 65000\n'
    '\tBGP.med: 50\n'
    '\tBGP.community: (12076,100)\n'
    '198.18.5.0/24        unicast [frr4 20:01:14.380] * (100) [AS64512i]\n'
    '\tvia 192.0.2.1 on to-frr-abc123\n'
    '\tType: BGP univ\n'
    '\tBGP.origin: IGP\n'
    '\tBGP.as_path: 64512 64512\n'
    '\tBGP.next_hop: 192.0.2.1\n'
    '\tBGP.med: 7\n'
    '\tBGP.local_pref: 100\n'
    '\tBGP.community: (64512,1)\n'
    '198.18.6.0/24        unicast [frr4 20:01:14.380] * (100) [AS64512i]\n'
    '\tvia 192.0.2.1 on to-frr-abc123\n'
    '\tType: BGP univ\n'
    '\tBGP.origin: IGP\n'
    '\tBGP.as_path: 64512\n'
    '\tBGP.next_hop: 192.0.2.1\n'
    '\tBGP.med: 0\n'
    '\tBGP.local_pref: 100\n'
    '\tBGP.large_community: (64512, 1, 2)\n'
    '203.0.113.0/24       blackhole [mcl_static4 20:01:12.348] * (200)\n'
    '\tType: static univ\n'
    '                     unicast [frr4 20:01:14.380] (100) [AS64512i]\n'
    '\tvia 192.0.2.1 on to-frr-abc123\n'
    '\tType: BGP univ\n'
    '\tBGP.origin: IGP\n'
    '\tBGP.as_path: 64512\n'
    '\tBGP.next_hop: 192.0.2.1\n'
    '\tBGP.med: 0\n'
    '\tBGP.local_pref: 100\n'
)

BIRD6 = (
    'BIRD 2.0.12 ready.\n'
    'Table master6:\n'
    '2001:db8:b::/64      blackhole [mcl_static6 20:01:12.348] * (200)\n'
    '\tType: static univ\n'
    '2001:db8:a::/64      unicast [frr6 20:01:15.264] * (100) [AS64512i]\n'
    '\tvia 2001:db8:12::1 on to-frr-abc123\n'
    '\tType: BGP univ\n'
    '\tBGP.origin: IGP\n'
    '\tBGP.as_path: 64512\n'
    '\tBGP.next_hop: 2001:db8:12::1 fe80::400f:85ff:fe8e:583d\n'
    '\tBGP.med: 0\n'
    '\tBGP.local_pref: 100\n'
)

# vtysh -c 'show bgp ipv4 unicast json' (203.0.113.0/24: BIRD's path is not best, FRR's own network wins on weight).
FRR4 = (
    '{"vrfId":0,"vrfName":"default","tableVersion":5,"routerId":"10.0.0.1","defaultLocPrf":100,"localAS":'
    '64512,"routes":{"198.18.5.0/24":[{"valid":true,"bestpath":true,"selectionReason":"First path receive'
    'd","pathFrom":"external","prefix":"198.18.5.0","prefixLen":24,"network":"198.18.5.0/24","version":3,'
    '"metric":7,"weight":32768,"peerId":"(unspec)","path":"64512","origin":"IGP","nexthops":[{"ip":"0.0.0'
    '.0","hostname":"lab-frr","afi":"ipv4","used":true}]}],"198.18.6.0/24":[{"valid":true,"bestpath":true'
    ',"selectionReason":"First path received","pathFrom":"external","prefix":"198.18.6.0","prefixLen":24,'
    '"network":"198.18.6.0/24","version":4,"metric":0,"weight":32768,"peerId":"(unspec)","path":"","origi'
    'n":"IGP","nexthops":[{"ip":"0.0.0.0","hostname":"lab-frr","afi":"ipv4","used":true}]}],"198.19.1.0/2'
    '4":[{"valid":true,"bestpath":true,"selectionReason":"First path received","pathFrom":"external","pre'
    'fix":"198.19.1.0","prefixLen":24,"network":"198.19.1.0/24","version":5,"metric":50,"weight":0,"peerI'
    'd":"192.0.2.2","path":"12076 65000","origin":"IGP","nexthops":[{"ip":"192.0.2.2","afi":"ipv4","used"'
    ':true}]}],"198.51.100.0/24":[{"valid":true,"bestpath":true,"selectionReason":"First path received","'
    'pathFrom":"external","prefix":"198.51.100.0","prefixLen":24,"network":"198.51.100.0/24","version":1,'
    '"metric":0,"weight":32768,"peerId":"(unspec)","path":"","origin":"IGP","nexthops":[{"ip":"0.0.0.0","'
    'hostname":"lab-frr","afi":"ipv4","used":true}]}],"203.0.113.0/24":[{"valid":true,"pathFrom":"externa'
    'l","prefix":"203.0.113.0","prefixLen":24,"network":"203.0.113.0/24","version":2,"weight":0,"peerId":'
    '"192.0.2.2","path":"12076","origin":"IGP","nexthops":[{"ip":"192.0.2.2","afi":"ipv4","used":true}]},'
    '{"valid":true,"bestpath":true,"selectionReason":"Weight","pathFrom":"external","prefix":"203.0.113.0'
    '","prefixLen":24,"network":"203.0.113.0/24","version":2,"metric":0,"weight":32768,"peerId":"(unspec)'
    '","path":"","origin":"IGP","nexthops":[{"ip":"0.0.0.0","hostname":"lab-frr","afi":"ipv4","used":true}]}]}}'
)

# vtysh -c 'show bgp ipv4 unicast 198.19.1.0/24 json'
FRR_DETAIL = (
    '{"prefix":"198.19.1.0/24","version":5,"advertisedTo":{"192.0.2.2":{}},"paths":[{"aspath":{"string":"'
    '12076 65000","segments":[{"type":"as-sequence","list":[12076,65000]}],"length":2},"origin":"IGP","me'
    'tric":50,"valid":true,"version":5,"bestpath":{"overall":true,"selectionReason":"First path received"'
    '},"community":{"string":"12076:100","list":["12076:100"]},"lastUpdate":{"epoch":1795896074,"string":'
    '"Sat Nov 28 20:01:14 2026\\n"},"nexthops":[{"ip":"192.0.2.2","afi":"ipv4","metric":0,"accessible":tru'
    'e,"used":true}],"peer":{"peerId":"192.0.2.2","routerId":"10.0.0.2","type":"external"}}]}'
)

BIRD_PROTOCOL = (
    "BIRD 2.0.12 ready.\n"
    "Name       Proto      Table      State  Since         Info\n"
    "frr4       BGP        ---        start  20:01:13.230  Active        Socket: Connection refused\n"
    "  BGP state:          Active\n"
    "    Neighbor address: 192.0.2.1\n"
)


def test_bird_routes_best_and_alternatives() -> None:
    routes = parse_bird_routes(BIRD4)
    assert set(routes) == {"198.51.100.0/24", "198.19.1.0/24", "198.18.5.0/24", "198.18.6.0/24", "203.0.113.0/24"}
    best, route = routes["198.51.100.0/24"][0]
    assert best
    assert route == Route("198.51.100.0/24", (64512,), 0, "192.0.2.1", "igp", 100, (), (), "frr4")
    assert routes["198.18.5.0/24"][0][1].communities == ("64512:1",)
    assert routes["198.18.5.0/24"][0][1].as_path == (64512, 64512)
    assert routes["198.18.6.0/24"][0][1].large_communities == ("64512:1:2",)
    static, bgp = routes["203.0.113.0/24"]
    assert static == (True, Route("203.0.113.0/24", (), None, "", "", source="mcl_static4"))
    assert bgp[0] is False
    assert (bgp[1].source, bgp[1].next_hop, bgp[1].as_path) == ("frr4", "192.0.2.1", (64512,))


def test_bird_ipv6_next_hop_is_the_global_one() -> None:
    route = parse_bird_routes(BIRD6)["2001:db8:a::/64"][0][1]
    assert route.next_hop == "2001:db8:12::1"
    assert route.source == "frr6"


def test_frr_routes_best_path_per_prefix() -> None:
    routes = parse_frr_routes(json.loads(FRR4))
    learnt = routes["198.19.1.0/24"]
    assert learnt == Route("198.19.1.0/24", (12076, 65000), 50, "192.0.2.2", "igp", None, (), (), "192.0.2.2")
    own = routes["203.0.113.0/24"]  # FRR's own network beats BIRD's path on weight
    assert (own.as_path, own.next_hop, own.source, own.med) == ((), "0.0.0.0", "", 0)
    assert routes["198.18.5.0/24"].as_path == (64512,)  # a prepend on an own network shows in FRR's own RIB


def test_frr_routes_without_best_path() -> None:
    data = json.loads(FRR4)
    data["routes"] = {"203.0.113.0/24": data["routes"]["203.0.113.0/24"][:1]}  # BIRD's path only, not best
    assert parse_frr_routes(data) == {}
    assert parse_frr_routes(data, best_only=False)["203.0.113.0/24"].source == "192.0.2.2"


def test_frr_route_detail_has_communities() -> None:
    route = _frr_path("198.19.1.0/24", json.loads(FRR_DETAIL)["paths"][0])
    assert route == Route("198.19.1.0/24", (12076, 65000), 50, "192.0.2.2", "igp", None, ("12076:100",), (),
                          "192.0.2.2")


def test_bird_protocol_state() -> None:
    assert parse_bird_protocol_state(BIRD_PROTOCOL) == "Active"
    assert parse_bird_protocol_state("BIRD 2.0.12 ready.\nfrr4       BGP        ---        down   20:01:13.230\n") \
        == "down"
    assert parse_bird_protocol_state("syntax error") == ""


def test_bird_static_block_round_trip() -> None:
    statics = [BirdStatic("198.19.1.0/24", med=50, as_path_prepend=(65000, 65001), communities=("12076:100",)),
               BirdStatic("2001:db8:b::/64"), BirdStatic("203.0.113.0/24")]
    text = "router id 10.0.0.2;\n" + bird_static_block(statics)
    parsed = _parse_static_block(text)
    assert parsed is not None
    rest, back = parsed
    assert rest == "router id 10.0.0.2;\n"
    assert sorted(back, key=lambda s: s.prefix) == sorted(statics, key=lambda s: s.prefix)
    assert "bgp_path.prepend(65001); bgp_path.prepend(65000);" in text  # 65000 ends up first in the AS path


def test_poll_returns_value_and_reports_last_observation() -> None:
    values = iter([0, 0, 3])
    assert poll(lambda: next(values), 5, "never") == 3
    with pytest.raises(AssertionError, match=r"not up \(timed out after 0.2s; last observed: 'Active'\)"):
        poll(lambda: "Active", 0.2, "not up", until=lambda s: s == "Established")


def test_assert_stays() -> None:
    assert_stays(lambda: True, 0.2, "flipped")
    with pytest.raises(AssertionError, match="flipped"):
        assert_stays(lambda: False, 0.2, "flipped")


# gobgp -j global rib -a ipv4: a route from the hub (all three community kinds) and GoBGP's own.
GOBGP_RIB = (
    '{"10.1.0.0/16":[{"nlri":{"prefix":"10.1.0.0/16"},"age":1796514040,"best":true,"attrs":[{"type":1,"value":0},'
    '{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[133937,64512]}]},{"type":3,"nexthop":"169.254.3.1"},'
    '{"type":8,"communities":[4261806081]},{"type":16,"value":[{"type":0,"subtype":2,"value":"65030:1"}]},'
    '{"type":32,"value":[{"ASN":4200000001,"LocalData1":30,"LocalData2":1}]}],"stale":false,'
    '"source-id":"10.255.0.1","neighbor-ip":"169.254.3.1"}],'
    '"10.3.0.0/16":[{"nlri":{"prefix":"10.3.0.0/16"},"age":1796514040,"best":true,"attrs":[{"type":1,"value":0},'
    '{"type":4,"metric":7},{"type":3,"nexthop":"0.0.0.0"}],"stale":false}]}'
)

# gobgp -j global rib -a ipv6 (GoBGP 3.10): a route from the hub over an IPv6 session and GoBGP's own; the next hop
# is in MP_REACH_NLRI (type 14).
GOBGP_RIB6 = (
    '{"2001:db8:1::/48":[{"nlri":{"prefix":"2001:db8:1::/48"},"age":1796565356,"best":true,"attrs":[{"type":1,'
    '"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[133937,64512]}]},{"type":14,'
    '"nexthop":"2001:db8:ffff:3::1","afi":2,"safi":1,"value":[{"prefix":"2001:db8:1::/48"}]}],"stale":false,'
    '"source-id":"10.255.0.1","neighbor-ip":"2001:db8:ffff:3::1"}],'
    '"2001:db8:3::/48":[{"nlri":{"prefix":"2001:db8:3::/48"},"age":1796565356,"best":true,"attrs":[{"type":1,'
    '"value":0},{"type":14,"nexthop":"::","afi":2,"safi":1,"value":[{"prefix":"2001:db8:3::/48"}]}],"stale":false}]}'
)

# bgpctl -j show rib detail inet (abridged to the fields the parser reads and a few more).
OPENBGPD_RIB = """{"rib": [
 {"prefix": "10.1.0.0/16", "aspath": "133937 64512", "exit_nexthop": "169.254.4.1", "true_nexthop": "169.254.4.2",
  "neighbor": {"remote_addr": "169.254.4.1", "bgp_id": "10.255.0.1"}, "valid": true, "best": true,
  "source": "external", "origin": "IGP", "metric": 0, "localpref": 100, "communities": ["65030:1"],
  "extended_communities": ["rt 65030:1"], "large_communities": ["4200000001:30:1"]},
 {"prefix": "10.4.0.0/16", "aspath": "", "exit_nexthop": "0.0.0.0", "true_nexthop": "0.0.0.0",
  "neighbor": {"description": "LOCAL", "remote_addr": "???", "bgp_id": "10.0.0.4"}, "valid": true, "best": true,
  "source": "internal", "announced": true, "origin": "IGP", "metric": 0, "localpref": 100}
]}"""

BIRD_EXT = (
    'BIRD 2.0.12 ready.\n'
    'Table master4:\n'
    '10.5.0.0/16          unicast [mcr 23:52:39.695] * (100) [AS4200000001i]\n'
    '\tvia 169.254.6.1 on hub-76dbea\n'
    '\tType: BGP univ\n'
    '\tBGP.origin: IGP\n'
    '\tBGP.as_path: 65100 4200000001\n'
    '\tBGP.next_hop: 169.254.6.1\n'
    '\tBGP.local_pref: 100\n'
    '\tBGP.community: (65030,5)\n'
    '\tBGP.ext_community: (rt, 65030, 5) (ro, 65030, 9)\n'
    '\tBGP.large_community: (4200000001, 30, 5)\n'
)


def test_gobgp_rib_with_communities_of_three_kinds() -> None:
    routes = parse_gobgp_routes(json.loads(GOBGP_RIB))
    assert routes["10.1.0.0/16"] == Route(
        "10.1.0.0/16", (133937, 64512), None, "169.254.3.1", "igp", None, ("65030:1",), ("4200000001:30:1",),
        "169.254.3.1", ("rt 65030:1",))
    own = routes["10.3.0.0/16"]
    assert (own.as_path, own.next_hop, own.source, own.med) == ((), "", "", 7)
    assert parse_gobgp_routes(None) == {}


def test_gobgp_ipv6_rib_reads_the_next_hop_of_mp_reach() -> None:
    routes = parse_gobgp_routes(json.loads(GOBGP_RIB6))
    hub = routes["2001:db8:1::/48"]
    assert (hub.as_path, hub.next_hop, hub.source) == ((133937, 64512), "2001:db8:ffff:3::1", "2001:db8:ffff:3::1")
    own = routes["2001:db8:3::/48"]
    assert (own.as_path, own.next_hop, own.source) == ((), "", "")


def test_openbgpd_rib_reads_the_next_hop_attribute() -> None:
    routes = parse_openbgpd_rib(json.loads(OPENBGPD_RIB))
    assert routes["10.1.0.0/16"] == Route(
        "10.1.0.0/16", (133937, 64512), 0, "169.254.4.1", "igp", 100, ("65030:1",), ("4200000001:30:1",),
        "169.254.4.1", ("rt 65030:1",))
    own = routes["10.4.0.0/16"]
    assert (own.as_path, own.next_hop, own.source) == ((), "", "")


def test_bird_extended_communities() -> None:
    route = parse_bird_routes(BIRD_EXT)["10.5.0.0/16"][0][1]
    assert route.ext_communities == ("rt 65030:5", "soo 65030:9")
    assert (route.communities, route.large_communities) == (("65030:5",), ("4200000001:30:5",))


def test_frr_extended_community_spelling() -> None:
    path = json.loads(FRR_DETAIL)["paths"][0] | {"extendedCommunity": {"string": "RT:65030:1 SoO:65030:2"}}
    assert _frr_path("198.19.1.0/24", path).ext_communities == ("rt 65030:1", "soo 65030:2")
    assert ext_community("RT", "65030:1") == ext_community("rt", "65030:1") == "rt 65030:1"


def test_bird_static_block_round_trip_with_extended_and_large_communities() -> None:
    static = BirdStatic("10.2.0.0/16", communities=("65030:2",), ext_communities=("rt 65030:2",),
                        large_communities=("4200000001:30:2",))
    text = bird_static_block([static])
    assert "bgp_ext_community.add((rt,65030,2)); bgp_large_community.add((4200000001,30,2));" in text
    parsed = _parse_static_block(text)
    assert parsed is not None
    assert parsed[1] == [static]


def test_gobgp_and_openbgpd_configs() -> None:
    toml = gobgp_config(65001, "10.0.0.3", [GoBgpNeighbor("169.254.3.1", 133937, password='k"ey', hold_time=9)])
    assert 'auth-password = "k\\"ey"' in toml
    for line in ("hold-time = 9", "keepalive-interval = 3", "connect-retry = 1"):
        assert line in toml
    conf = openbgpd_config(65002, "10.0.0.4", [OpenBgpdNeighbor("169.254.4.1", 133937, local_address="169.254.4.2",
                                                                password="key", hold_time=9)],
                           [OpenBgpdNetwork("10.4.0.0/16", ("65030:4",), ("rt 65030:4",), ("4200000001:30:4",))])
    assert ("network 10.4.0.0/16 set { community 65030:4 ext-community rt 65030:4 large-community 4200000001:30:4 }"
            in conf)
    for line in ('tcp md5sig password "key"', "allow from any", "allow to any"):
        assert line in conf
