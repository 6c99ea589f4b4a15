"""The looking glass views on a route processor fed events directly (no root, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcrd.config.model import Config
from mcrd.lg import views
from mcrd.rib.inputs import ConfigChanged, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.peer_state import PeerState
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import PathAttributes
from tests.core.test_core_purity import test_core_module_imports_no_io as assert_no_io
from tests.lg.fixtures import AWS, AZURE, NOW, ONPREM, T0, bfd_status, config, processor


def peer(p: RouteProcessor, key: str) -> PeerState:
    found = p.peer(key)
    assert found is not None
    return found


def pick(rows: list[Any], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(row[f] for f in fields) for row in rows]


def test_routes_hold_bgp_static_connected_and_local_with_megaport_fields() -> None:
    rows = views.routes(processor(), config(), NOW)
    assert pick(rows, "prefix", "protocol", "nextHop", "interface", "vxcName", "best") == [
        ("10.0.1.0/24", "CONNECTED", "0.0.0.0", "eth1", "vxc1", True),
        ("10.0.1.1/32", "LOCAL", "0.0.0.0", "eth1", "vxc1", True),
        ("10.0.2.0/24", "CONNECTED", "0.0.0.0", "eth2", "vxc2", True),
        ("10.0.2.1/32", "LOCAL", "0.0.0.0", "eth2", "vxc2", True),
        ("10.0.3.0/24", "CONNECTED", "0.0.0.0", "eth3", "vxc3", True),
        ("10.0.3.1/32", "LOCAL", "0.0.0.0", "eth3", "vxc3", True),
        ("10.10.0.0/16", "BGP", AWS, "eth1", "vxc1", True),
        ("10.20.0.0/16", "BGP", AWS, "eth1", "vxc1", True),
        ("10.30.0.0/16", "BGP", AZURE, "eth2", "vxc2", True),
        ("10.30.1.0/24", "BGP", AZURE, "eth2", "vxc2", True),
        ("10.99.0.0/16", "STATIC", AWS, "eth1", "vxc1", True),
    ]
    bgp = rows[6]
    assert bgp == {
        "prefix": "10.10.0.0/16", "nextHop": AWS, "protocol": "BGP", "metric": 5, "localPref": 100,
        "asPath": [64512], "age": 80, "interface": "eth1", "vxcId": None, "vxcName": "vxc1", "communities": [],
        "origin": "IGP", "med": 5, "best": True,
    }
    static = rows[-1]
    assert (static["age"], static["origin"], static["asPath"], static["metric"]) == (100, "", [], 0)
    assert set(rows[0]) == set(views.IpRoute.__annotations__)


def test_routes_filter_by_protocol() -> None:
    p, c = processor(), config()
    assert [r["prefix"] for r in views.routes(p, c, NOW, protocol="STATIC")] == ["10.99.0.0/16"]
    assert [r["prefix"] for r in views.routes(p, c, NOW, protocol="CONNECTED")] == [
        "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
    assert {r["protocol"] for r in views.routes(p, c, NOW, protocol="BGP")} == {"BGP"}


@pytest.mark.parametrize(
    ("ip", "protocol", "expected"),
    [
        ("10.30.1.10", None, ["10.30.1.0/24"]),  # an address: the longest match only
        ("10.30.9.9", None, ["10.30.0.0/16"]),
        ("10.30.0.0/16", None, ["10.30.0.0/16", "10.30.1.0/24"]),  # a prefix: itself and what it covers
        ("10.30.0.0/24", None, []),  # nothing is inside 10.30.0.0/24, and 10.30/16 is not "covered"
        ("10.30.1.0/24", None, ["10.30.1.0/24"]),
        ("10.30.1.77/16", None, ["10.30.0.0/16", "10.30.1.0/24"]),  # host bits ignored
        ("10.0.1.1", None, ["10.0.1.1/32"]),  # the MCR's own address: LOCAL
        ("10.0.1.7", None, ["10.0.1.0/24"]),
        ("10.0.1.1", "BGP", []),  # the protocol filter applies first
        ("10.10.1.1", "BGP", ["10.10.0.0/16"]),
        ("0.0.0.0/0", "CONNECTED", ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]),
        ("192.0.2.1", None, []),
        ("2001:db8::1", None, []),
    ],
)
def test_routes_ip_filter(ip: str, protocol: str | None, expected: list[str]) -> None:
    rows = views.routes(processor(), config(), NOW, protocol=protocol, ip=views.parse_ip(ip))
    assert [r["prefix"] for r in rows] == expected


def test_bgp_holds_every_path_best_first_and_the_mcrs_own_routes() -> None:
    rows = views.bgp(processor(), config(), NOW)
    assert pick(rows, "prefix", "neighborIp", "neighborAsn", "asPath", "best", "valid", "weight", "age") == [
        ("10.10.0.0/16", AWS, 64512, [64512], True, True, 0, 80),
        ("10.10.0.0/16", AZURE, 12076, [12076, 12076, 12076], False, True, 0, 60),
        ("10.20.0.0/16", AWS, 64512, [64512], True, True, 0, 80),
        ("10.30.0.0/16", AZURE, 12076, [12076], True, True, 0, 70),
        ("10.30.1.0/24", AZURE, 12076, [12076], True, True, 0, 70),
        ("10.99.0.0/16", None, None, [], True, True, 32768, 100),
    ]
    assert rows[-1]["origin"] == "INCOMPLETE"
    assert set(rows[0]) == set(views.BgpRoute.__annotations__)
    only = views.bgp(processor(), config(), NOW, ip=views.parse_ip("10.10.0.0/16"))
    assert pick(only, "neighborIp", "best") == [(AWS, True), (AZURE, False)]
    assert pick(rows, "prefix", "neighborIp", "bestReason") == [
        ("10.10.0.0/16", AWS, "shorter AS path"), ("10.10.0.0/16", AZURE, None),
        ("10.20.0.0/16", AWS, "only candidate"), ("10.30.0.0/16", AZURE, "only candidate"),
        ("10.30.1.0/24", AZURE, "only candidate"), ("10.99.0.0/16", None, "only candidate"),
    ]


def test_the_best_reason_follows_the_candidates() -> None:
    p = processor()
    p.handle(RoutesAnnounced(AZURE, PathAttributes(AZURE, (12076,)), ("10.20.0.0/16",)), T0 + 45)
    assert pick(views.bgp(p, config(), NOW, ip=views.parse_ip("10.20.0.0/16")), "neighborIp", "bestReason") == [
        (AWS, "lower router ID"), (AZURE, None)]  # equal paths: the lower BGP identifier wins
    p.handle(RoutesWithdrawn(AWS, ("10.20.0.0/16",)), T0 + 46)
    assert pick(views.bgp(p, config(), NOW, ip=views.parse_ip("10.20.0.0/16")), "neighborIp", "bestReason") == [
        (AZURE, "only candidate")]


def test_a_static_route_beats_bgp_and_a_connected_subnet_beats_both() -> None:
    p = processor()
    p.handle(RoutesAnnounced(AZURE, PathAttributes(AZURE, (12076,)), ("10.99.0.0/16", "10.0.1.0/24")), T0 + 45)
    routes = views.routes(p, config(), NOW, ip=views.parse_ip("10.99.0.0/16"))
    assert pick(routes, "protocol", "best") == [("STATIC", True)]  # the BGP route is no IP route
    bgp = views.bgp(p, config(), NOW, ip=views.parse_ip("10.99.0.0/16"))
    assert pick(bgp, "neighborIp", "best", "bestReason") == [
        (None, True, "originated by the MCR"), (AZURE, False, None)]
    connected = views.routes(p, config(), NOW, ip=views.parse_ip("10.0.1.0/24"))
    assert pick(connected, "prefix", "protocol", "best") == [
        ("10.0.1.0/24", "CONNECTED", True), ("10.0.1.0/24", "BGP", False), ("10.0.1.1/32", "LOCAL", True)]


def test_sessions() -> None:
    rows = views.sessions(processor(), NOW)
    assert rows[0] == {
        "sessionId": AWS, "neighborAddress": AWS, "neighborAsn": 64512, "localAsn": 133937, "status": "UP",
        "uptime": 90, "prefixesIn": 2, "prefixesOut": 3, "vxcId": None, "vxcName": "vxc1", "lastStateChange": 90,
        "description": "AWS hosted VIF", "prefixesRejected": 1, "stateReason": "", "bfdStatus": None,
        "addressFamilies": None, "routeRefresh": None,
    }
    assert pick(rows[1:], "sessionId", "status", "prefixesIn", "prefixesOut", "uptime", "lastStateChange") == [
        (AZURE, "UP", 3, 1, 90, 90), (ONPREM, "DOWN", 0, 0, None, None)]
    assert rows[2]["stateReason"] == "shut down by config"


def test_a_session_that_went_down_says_since_when_and_why() -> None:
    p = processor()
    p.handle(PeerDown(AZURE, "hold timer expired"), T0 + 50)
    row = views.sessions(p, NOW)[1]
    assert (row["status"], row["uptime"], row["lastStateChange"], row["stateReason"], row["prefixesIn"]) == (
        "DOWN", None, 50, "hold timer expired", 0)


def test_advertised_shows_the_attributes_as_sent() -> None:
    p = processor()
    expected: list[views.NeighborRoute] = [{
        "prefix": "10.10.0.0/16", "nextHop": "10.0.2.1", "asPath": [133937, 64512], "localPref": None, "med": None,
        "origin": "IGP", "communities": [], "valid": True, "best": True,
    }]
    assert views.advertised(p, peer(p, AZURE)) == expected
    assert [r["prefix"] for r in views.advertised(p, peer(p, AWS))] == ["10.30.0.0/16", "10.30.1.0/24",
                                                                        "10.99.0.0/16"]
    assert views.advertised(p, peer(p, ONPREM)) == []


def test_received_and_filtered() -> None:
    p = processor()
    assert pick(views.received(p, peer(p, AWS)), "prefix", "asPath", "med", "best", "valid") == [
        ("10.10.0.0/16", [64512], 5, True, True), ("10.20.0.0/16", [64512], 5, True, True)]
    assert pick(views.received(p, peer(p, AZURE)), "prefix", "best") == [
        ("10.10.0.0/16", False), ("10.30.0.0/16", True), ("10.30.1.0/24", True)]
    rejected: list[views.FilteredRoute] = [{
        "prefix": "10.50.0.0/16", "nextHop": AWS, "asPath": [64512], "localPref": None, "med": 5, "origin": "IGP",
        "communities": [], "valid": False, "best": False,
        "rejection": {"code": "import-permit-list",
                      "detail": "import permit list 'aws' (id 1): no entry contains the route"},
    }]
    assert views.filtered(peer(p, AWS)) == rejected
    assert views.filtered(peer(p, AZURE)) == []
    assert views.received(p, peer(p, AZURE), ip=views.parse_ip("10.30.1.1")) == views.received(
        p, peer(p, AZURE), ip=views.parse_ip("10.30.1.0/24"))


def test_find_session_accepts_any_spelling_of_the_address() -> None:
    p = processor()
    assert peer(p, AWS) is views.find_session(p, " 10.0.1.2 ")
    assert views.find_session(p, "10.0.9.9") is None
    assert views.find_session(p, "not-an-address") is None


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: views.parse_ip("10.300.0.0"), "ip"),
        (lambda: views.parse_ip("10.0.0.0/33"), "ip"),
        (lambda: views.parse_ip("aws"), "ip"),
        (lambda: views.parse_protocol("OSPF"), "protocol"),
        (lambda: views.parse_bool("filtered", "yes"), "filtered"),
    ],
)
def test_bad_query_values_name_the_parameter(call: Any, parameter: str) -> None:
    with pytest.raises(views.QueryError) as caught:
        call()
    assert caught.value.parameter == parameter
    assert str(caught.value).startswith(f"{parameter}: ")


def test_query_values_are_forgiving_about_case_and_blanks() -> None:
    assert views.parse_protocol("bgp") == "BGP"
    assert views.parse_protocol("") is None
    assert views.parse_ip(None) is None
    assert views.parse_bool("filtered", "TRUE") is True
    assert views.parse_bool("filtered", None) is False


def test_views_are_pure() -> None:
    """Same inputs, same rows; the processor is not changed by reading it."""
    p = processor()
    before = (p.best(), p.fib(), [(x.key, dict(x.accepted), dict(x.rejected), dict(x.out)) for x in p.peers()])
    first = (views.routes(p, config(), NOW), views.bgp(p, config(), NOW), views.sessions(p, NOW))
    assert first == (views.routes(p, config(), NOW), views.bgp(p, config(), NOW), views.sessions(p, NOW))
    assert before == (p.best(), p.fib(), [(x.key, dict(x.accepted), dict(x.rejected), dict(x.out))
                                          for x in p.peers()])


@pytest.mark.parametrize("module", ["views.py", "configapi.py"])
def test_the_views_import_no_io_and_keep_no_clock(module: str) -> None:
    """Like the core (tests/core/test_core_purity.py): the time is passed in; the edge (http.py) does the I/O."""
    path = Path(views.__file__).with_name(module)
    assert_no_io(path)


def test_ipv6_routes_and_queries() -> None:
    cfg = Config.model_validate({
        "mcr": {"productName": "v6", "routerId": "10.255.0.9"},
        "vxcs": [{"productName": "aws6", "interface": "eth1", "vrouter": {"interfaces": [{
            "ipAddresses": ["2001:db8:a::1/126"],
            "bgpConnections": [{"peerAsn": 64512, "localIpAddress": "2001:db8:a::1",
                                "peerIpAddress": "2001:db8:a::2"}]}]}}],
    })
    p = RouteProcessor()
    p.handle(ConfigChanged(cfg), T0)
    p.handle(PeerUp("2001:db8:a::2", "10.0.0.1"), T0)
    p.handle(RoutesAnnounced("2001:db8:a::2", PathAttributes("2001:db8:a::2", (64512,)),
                             ("2001:db8:10::/48", "2001:db8:10:1::/64")), T0)
    assert pick(views.routes(p, cfg, NOW), "prefix", "protocol", "nextHop") == [
        ("2001:db8:a::/126", "CONNECTED", "::"),
        ("2001:db8:a::1/128", "LOCAL", "::"),
        ("2001:db8:10::/48", "BGP", "2001:db8:a::2"),
        ("2001:db8:10:1::/64", "BGP", "2001:db8:a::2"),
    ]
    assert [r["prefix"] for r in views.routes(p, cfg, NOW, ip=views.parse_ip("2001:db8:10:1::5"))] == [
        "2001:db8:10:1::/64"]
    assert [r["prefix"] for r in views.routes(p, cfg, NOW, ip=views.parse_ip("2001:db8:10::/48"))] == [
        "2001:db8:10::/48", "2001:db8:10:1::/64"]
    assert views.routes(p, cfg, NOW, ip=views.parse_ip("10.0.0.1")) == []
    assert views.find_session(p, "2001:DB8:A:0::2") is p.peer("2001:db8:a::2")


def test_bfd_state_in_sessions_and_the_bfd_view() -> None:
    p = processor()
    bfd = {AWS: bfd_status(AWS, "DOWN", None)}
    assert [row["bfdStatus"] for row in views.sessions(p, NOW, bfd)] == ["DOWN", None, None]
    [row] = views.bfd_sessions(p, bfd, 130.0)
    assert row == {
        "sessionId": AWS, "neighborAddress": AWS, "localAddress": "10.0.1.1", "interface": "eth1", "vxcName": "vxc1",
        "status": "DOWN", "remoteStatus": "UP", "localDiagnostic": "NONE", "remoteDiagnostic": "NONE",
        "localDiscriminator": 7, "remoteDiscriminator": 9, "txInterval": 300.0, "rxInterval": 300.0,
        "detectionTime": 900.0, "remoteMultiplier": 3, "transitions": 2, "lastStateChange": None, "bgpStatus": "UP",
    }
    assert set(row) == set(views.BfdSession.__annotations__)
    assert views.bfd_sessions(p, {AWS: bfd_status(AWS)}, 130.0)[0]["lastStateChange"] == 30


def test_a_session_that_did_not_negotiate_its_family_is_sent_nothing_and_says_why() -> None:
    """A peer whose OPEN offered no IPv4 unicast (BIRD's `capabilities off` without exabgp_launch's fix 6): the
    looking glass counts and lists nothing advertised, and says why, instead of what was never sent."""
    p = RouteProcessor()
    p.handle(ConfigChanged(config()), T0)
    p.handle(PeerUp(AWS, "10.255.0.1", frozenset({4}), "enhanced"), T0 + 10)
    p.handle(PeerUp(AZURE, "10.255.0.2", frozenset(), "absent"), T0 + 10)
    p.handle(RoutesAnnounced(AWS, PathAttributes(AWS, (64512,)), ("10.10.0.0/16",)), T0 + 20)
    aws, azure, _ = views.sessions(p, NOW)
    assert (aws["addressFamilies"], aws["routeRefresh"], aws["stateReason"]) == (["IPv4"], "ENHANCED", "")
    assert (azure["status"], azure["prefixesOut"], azure["addressFamilies"], azure["routeRefresh"]) == (
        "UP", 0, [], "NONE")
    assert "did not negotiate IPv4 unicast" in azure["stateReason"]
    azure_peer = p.peer(AZURE)
    assert azure_peer is not None
    assert views.advertised(p, azure_peer) == []
    # The same session re-established with IPv4 unicast gets the route.
    p.handle(PeerDown(AZURE), T0 + 30)
    p.handle(PeerUp(AZURE, "10.255.0.2", frozenset({4}), "normal"), T0 + 40)
    assert [row["prefix"] for row in views.advertised(p, azure_peer)] == ["10.10.0.0/16"]
