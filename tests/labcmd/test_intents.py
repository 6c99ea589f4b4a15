"""The intents file of `mcrd lab verify` (no root): the contract's keys, FILE:LINE messages like `mcrd check`, the
shipped intents files; the parsers of each node's view; judging and the report files, against canned views."""

from __future__ import annotations

import io
import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import pytest

from mcrd.config.load import ConfigError
from mcrd.lab.intents import Intent, IntentsFile, Step, load_intents, parse_duration, parse_intents
from mcrd.lab.probe import Path as BgpPath
from mcrd.lab.probe import (
    PeerSession,
    Rejection,
    parse_bird_routes,
    parse_frr_table,
    parse_gobgp_neighbors,
    parse_gobgp_rib,
    parse_mcrd_bgp,
    split_json,
)
from mcrd.lab.topology import Node, Role, load_topology
from mcrd.lab.verify import judge, run_verify, to_junit
from tests.labcmd.conftest import REPO, SHIPPED

CONTRACT = """\
intents:
  - name: aws learns the azure vnet through the MCR
    at: aws                    # node whose own RIB is read
    route: 10.20.0.0/16
    present: true              # false: the node must NOT hold it
    orLonger: false            # true: also any more-specific route inside it
    asPath: [133937, 12076]    # optional, exact
    nextHop: 169.254.100.1     # optional
    med: 100                   # optional
    within: 30s
  - name: azure hears exactly these from the MCR (no leak)
    at: azure
    from: mcr                  # only routes learned from this neighbour node
    exactly: [10.10.0.0/16, 10.50.0.0/16]
  - name: every session up
    at: mcr
    sessions: established      # all BGP sessions of the node
  - name: aws host reaches azure host
    from: awshost
    ping: 10.30.1.10
    reach: true                # false: must NOT reach (isolation)
  - name: MCR explains why it refused the partner prefix
    at: mcr
    rejected: 172.31.0.0/16    # in received?filtered=true of any session, or `session:` to name one
    reason: import-permit-list # optional, the rejection code
scenarios:
  - name: primary AWS VXC fails
    do:
      - linkDown: mcr:eth1
      - exec: {node: aws, cmd: [vtysh, -c, "clear bgp *"]}
    expect:
      - {name: still up, at: mcr, sessions: established}
    undo: [ { linkUp: mcr:eth1 } ]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_intents(textwrap.dedent(text), "i.yaml")
    return [str(p) for p in info.value.problems]


def test_the_example_of_the_contract_parses_as_written() -> None:
    f = parse_intents(CONTRACT, "i.yaml")
    route, exactly, sessions, ping, rejected = f.intents
    assert route == Intent(name="aws learns the azure vnet through the MCR", kind="route", line=2, within=30.0,
                           at="aws", route="10.20.0.0/16", as_path=(133937, 12076), next_hop="169.254.100.1", med=100)
    assert exactly.exactly == ("10.10.0.0/16", "10.50.0.0/16")
    assert exactly.from_node == "mcr"
    assert sessions.kind == "sessions"
    assert sessions.within == 30.0
    assert (ping.from_node, ping.ping, ping.reach) == ("awshost", "10.30.1.10", True)
    assert (rejected.rejected, rejected.reason, rejected.session) == ("172.31.0.0/16", "import-permit-list", None)
    (scenario,) = f.scenarios
    assert scenario.do == (Step("linkDown", "mcr", 29, interface="eth1"),
                           Step("exec", "aws", 30, cmd=("vtysh", "-c", "clear bgp *")))
    assert scenario.undo == (Step("linkUp", "mcr", 33, interface="eth1"),)
    assert f.nodes() == {"aws", "azure", "mcr", "awshost"}


def test_extra_keys_are_refused_by_name_with_their_line() -> None:
    assert problems("""\
        intents:
          - name: x
            at: aws
            route: 10.0.0.0/8
            aspath: [1]
        scenarios:
          - name: s
            do: [{linkDown: mcr:eth1}]
            expect: []
            undo: [{linkup: mcr:eth1}]
            after: 3
        extra: 1
        """) == [
        "i.yaml:5: intents[0].aspath: unknown key 'aspath' for a route: intent (allowed: name, within, at, route, "
        "present, orLonger, asPath, nextHop, med, from)",
        "i.yaml:10: scenarios[0].undo[0].linkup: unknown step 'linkup' (allowed: linkDown, linkUp, stop, start, exec)",
        "i.yaml:11: scenarios[0].after: unknown key 'after' for a scenario (allowed: name, do, expect, undo)",
        "i.yaml:12: extra: unknown key 'extra' (allowed: intents, scenarios)",
    ]


def test_keys_of_another_kind_are_refused() -> None:
    assert problems("""\
        intents:
          - {name: p, from: awshost, ping: 10.0.0.1, asPath: [1]}
        """) == ["i.yaml:2: intents[0].asPath: unknown key 'asPath' for a ping: intent (allowed: name, within, "
                 "from, ping, reach)"]


def test_bad_values_are_named_each_at_its_line() -> None:
    assert problems("""\
        intents:
          - name: a
            at: aws
            route: 10.20.0.1/16
            asPath: [133937, x]
            nextHop: 300.1.1.1
            med: -1
            within: soon
          - name: b
            route: 10.0.0.0/8
            present: maybe
          - {name: c, at: aws, route: 10.0.0.0/8, ping: 10.0.0.1}
          - {at: mcr, sessions: up}
          - {name: e, from: awshost, ping: 10.0.0.1, reach: false, within: 2h}
        """) == [
        "i.yaml:4: intents[0].route: '10.20.0.1/16' is not a prefix (10.20.0.0/16, host bits zero)",
        "i.yaml:5: intents[0].asPath: must be a list of AS numbers (1..4294967295), e.g. [133937, 12076]",
        "i.yaml:6: intents[0].nextHop: '300.1.1.1' is not an IP address",
        "i.yaml:7: intents[0].med: -1 is not a MED (0..4294967295)",
        "i.yaml:8: intents[0].within: 'soon' is not a duration up to 1h (30s, 500ms, 2m)",
        "i.yaml:9: intents[1].at: is required: a node of the lab",
        "i.yaml:11: intents[1].present: 'maybe' is not true or false",
        "i.yaml:12: intents[2]: has route, ping: give one (one of route:, exactly:, sessions:, ping:, rejected:)",
        "i.yaml:13: intents[3].name: is required: a name for the report",
        "i.yaml:13: intents[3].sessions: 'up': the only state checked is 'established'",
        "i.yaml:14: intents[4].within: '2h' is not a duration up to 1h (30s, 500ms, 2m)",
    ]


def test_scenario_steps_and_shapes() -> None:
    assert problems("""\
        intents: []
        scenarios:
          - name: s
            do:
              - linkDown: mcr
              - stop: [aws]
              - exec: {node: aws, cmd: []}
              - {linkUp: mcr:eth1, stop: aws}
        """) == [
        "i.yaml:3: scenarios[0].expect: is required: a list of intents",
        "i.yaml:5: scenarios[0].do[0].linkDown: 'mcr' is not NODE:INTERFACE (mcr:eth1)",
        "i.yaml:6: scenarios[0].do[1].stop: ['aws'] is not a node name",
        "i.yaml:7: scenarios[0].do[2].exec.cmd: must be a non-empty list of arguments ([vtysh, -c, 'clear bgp *'])",
        "i.yaml:8: scenarios[0].do[3]: a step is a mapping with one key: linkDown, linkUp, stop, start or exec",
    ]


def test_yaml_errors_and_wrong_shapes_name_a_line() -> None:
    assert problems("intents:\n  - name: a\n    at: [\n") [0].startswith("i.yaml:4: YAML syntax error")
    assert problems("- a\n") == ["i.yaml:1: the intents file must be a mapping with intents: (and optionally "
                                 "scenarios:)"]
    assert problems("scenarios: []\n") == ["i.yaml:1: intents: is required: a list of intents"]
    assert problems("intents:\n  - {name: a, at: x, route: 10.0.0.0/8, name: b}\n")[0].startswith(
        "i.yaml:2: duplicate key")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), (5, 5.0),
                                                ("1.5s", 1.5), ("x", None), (True, None)])
def test_durations(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("name", ["hub-spoke", "seed-poc", "failover"])
def test_shipped_intents_load_and_name_only_nodes_of_their_topology(name: str) -> None:
    topo = load_topology(SHIPPED[name])
    f = load_intents(SHIPPED[name].parent / f"{name}.intents.yaml")
    assert f.intents
    assert f.nodes() <= set(topo.nodes)


def test_mcrd_check_style_cli_message_for_a_bad_intents_file(tmp_path: Path) -> None:
    from tests.labcmd.conftest import mcrd

    bad = tmp_path / "bad.yaml"
    bad.write_text("intents:\n  - {name: a, at: aws, route: 10.0.0.0/8, colour: red}\n")
    proc = mcrd("lab", "verify", str(SHIPPED["hub-spoke"]), str(bad))
    assert proc.returncode == 2
    assert f"{bad}:2: intents[0].colour: unknown key 'colour'" in proc.stderr


# --- parsers of each node's own view ------------------------------------------------------------------------------


BIRD_ROUTES = """\
BIRD 2.0.12 ready.
Table master4:
10.30.0.0/16         blackhole [vnet 20:45:25.964] * (200)
\tType: static univ
10.10.0.0/16         unicast [mcr 20:45:29.378] * (100) [AS64512i]
\tvia 192.168.30.1 on eth1
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 133937 64512
\tBGP.next_hop: 192.168.30.1
\tBGP.med: 20
\tBGP.local_pref: 100
                     unicast [mcr2 20:45:29.378] (100) [AS64512i]
\tvia 192.168.31.1 on eth3
\tType: BGP univ
\tBGP.as_path: 133937 133937 64512
\tBGP.next_hop: 192.168.31.1
"""


def test_bird_routes_parse_with_their_protocol_s_neighbour() -> None:
    paths = parse_bird_routes(BIRD_ROUTES, {"mcr": "192.168.30.1", "mcr2": "192.168.31.1"})
    assert paths == [
        BgpPath("10.30.0.0/16", (), "", None, "", True),
        BgpPath("10.10.0.0/16", (133937, 64512), "192.168.30.1", 20, "192.168.30.1", True),
        BgpPath("10.10.0.0/16", (133937, 133937, 64512), "192.168.31.1", None, "192.168.31.1", False),
    ]


def test_frr_table_and_several_json_documents() -> None:
    text = ('{"routes": {"10.30.0.0/16": [{"valid":true,"bestpath":true,"peerId":"169.254.100.1",'
            '"path":"133937 12076","metric":5,"nexthops":[{"ip":"169.254.100.1","afi":"ipv4","used":true}]}],'
            '"10.10.0.0/16": [{"valid":true,"bestpath":true,"peerId":"(unspec)","path":"",'
            '"nexthops":[{"ip":"0.0.0.0"}]}]}}\n{"routes": {}}\n')
    first, second = split_json(text)
    assert second == {"routes": {}}
    assert parse_frr_table(first) == [BgpPath("10.30.0.0/16", (133937, 12076), "169.254.100.1", 5,
                                              "169.254.100.1", True),
                                      BgpPath("10.10.0.0/16", (), "0.0.0.0", None, "", True)]


def test_mcrd_looking_glass_rows() -> None:
    rows = [{"prefix": "10.10.0.0/16", "nextHop": "169.254.100.2", "asPath": [64512], "med": 100,
             "neighborIp": "169.254.100.2", "best": True}]
    assert parse_mcrd_bgp(rows) == [BgpPath("10.10.0.0/16", (64512,), "169.254.100.2", 100, "169.254.100.2", True)]


GOBGP_RIB = (
    '{"10.50.0.0/16":[{"nlri":{"prefix":"10.50.0.0/16"},"age":1796508459,"best":true,"attrs":[{"type":1,"value":2},'
    '{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65001]}]},{"type":3,"nexthop":"10.9.0.1"}],'
    '"stale":false,"source-id":"10.9.0.1","neighbor-ip":"10.9.0.1"}],"10.51.0.0/16":[{"nlri":{"prefix":'
    '"10.51.0.0/16"},"age":1796508442,"best":true,"attrs":[{"type":1,"value":2},{"type":4,"metric":100},'
    '{"type":3,"nexthop":"0.0.0.0"}],"stale":false}]}')
GOBGP_NEIGHBORS = (
    '[{"conf":{"local_asn":65002,"neighbor_address":"10.9.0.1","peer_asn":65001,"type":1},"state":{"messages":{},'
    '"neighbor_address":"10.9.0.1","peer_asn":65001,"type":1,"queues":{},"session_state":6,"router_id":"10.9.0.1"},'
    '"afi_safis":[{"state":{"family":{"afi":1,"safi":1},"enabled":true,"received":2,"accepted":2}}]},'
    '{"conf":{"neighbor_address":"10.9.0.5","peer_asn":65005},"state":{"session_state":3}}]')


def test_gobgp_rib_and_neighbors_as_gobgp_3_prints_them() -> None:
    assert parse_gobgp_rib(json.loads(GOBGP_RIB)) == [
        BgpPath("10.50.0.0/16", (65001,), "10.9.0.1", None, "10.9.0.1", True),
        BgpPath("10.51.0.0/16", (), "", 100, "", True),  # originated by this GoBGP
    ]
    assert parse_gobgp_neighbors(json.loads(GOBGP_NEIGHBORS)) == [
        PeerSession("10.9.0.1", "65001", "Established", "2", "0"),
        PeerSession("10.9.0.5", "65005", "session state 3"),
    ]


# --- judging against canned views ---------------------------------------------------------------------------------


class FakeProbe:
    """The views of a tiny lab: mcr (mcrd) between aws and azure, hosts behind them."""

    def __init__(self) -> None:
        roles: tuple[tuple[str, Role], ...] = (("mcr", "mcrd"), ("aws", "frr"), ("azure", "frr"),
                                               ("awshost", "host"), ("azurehost", "host"))
        self.nodes: Mapping[str, Node] = {n: Node(n, "linux", "x", role) for n, role in roles}
        self.tables = {
            "aws": [BgpPath("10.30.0.0/16", (133937, 12076), "169.254.100.1", None, "169.254.100.1", True),
                    BgpPath("10.30.0.0/16", (133937, 133937, 12076), "169.254.200.1", None, "169.254.200.1", False)],
            "azure": [BgpPath("10.10.0.0/16", (133937, 64512), "192.168.30.1", None, "192.168.30.1", True),
                      BgpPath("172.31.0.0/16", (133937, 64512), "192.168.30.1", None, "192.168.30.1", True)],
        }
        self.addrs = {"mcr": {"169.254.100.1", "169.254.200.1", "192.168.30.1"}, "aws": {"169.254.100.2"},
                      "azure": {"192.168.30.2"}, "awshost": {"10.10.1.10"}, "azurehost": {"10.30.1.10"}}

    def paths(self, node: str) -> list[BgpPath]:
        return self.tables.get(node, [])

    def sessions(self, node: str) -> list[PeerSession]:
        return [PeerSession("169.254.100.1", "133937", "Established"), PeerSession("169.254.200.1", "133937", "Idle")]

    def rejections(self, node: str, session: str | None = None) -> list[Rejection]:
        return [Rejection("169.254.100.2", "172.31.0.0/16", "import-permit-list")]

    def addresses(self, node: str) -> set[str]:
        return self.addrs[node]

    def ping(self, node: str, address: str, count: int = 1, wait: float = 1.0) -> tuple[bool, str]:
        return address == "10.30.1.10", f"{count} packets transmitted"


def one(text: str) -> Intent:
    return parse_intents(textwrap.dedent(text), "i.yaml").intents[0]


@pytest.mark.parametrize(("text", "holds", "held"), [
    ("{name: n, at: aws, route: 10.30.0.0/16, asPath: [133937, 12076], nextHop: 169.254.100.1}", True,
     "aws holds 10.30.0.0/16 [133937 12076] via 169.254.100.1"),
    # the best path decides: the prepended one is only held in reserve
    ("{name: n, at: aws, route: 10.30.0.0/16, asPath: [133937, 133937, 12076]}", False, "(not best)"),
    ("{name: n, at: aws, from: mcr, route: 10.30.0.0/16, asPath: [133937, 133937, 12076]}", True, "(not best)"),
    ("{name: n, at: aws, route: 10.0.0.0/8, orLonger: true}", True, "10.30.0.0/16"),
    ("{name: n, at: aws, route: 10.0.0.0/8}", False, "aws holds no 10.0.0.0/8"),
    ("{name: a leak claimed absent, at: azure, route: 172.31.0.0/16, present: false}", False,
     "azure holds 172.31.0.0/16 [133937 64512]"),
    ("{name: n, at: azure, from: mcr, exactly: [10.10.0.0/16]}", False, "unexpected [172.31.0.0/16]"),
    ("{name: n, at: azure, from: aws, exactly: []}", True, "azure holds []"),
    ("{name: n, at: aws, sessions: established}", False, "1 of 2 Established; down: 169.254.200.1"),
    ("{name: n, from: awshost, ping: 10.30.1.10}", True, "awshost -> 10.30.1.10"),
    ("{name: n, from: awshost, ping: 10.99.1.10, reach: true}", False, "1 packets"),
    ("{name: n, from: awshost, ping: 10.99.1.10, reach: false}", True, "3 packets"),
    ("{name: n, at: mcr, rejected: 172.31.0.0/16, reason: import-permit-list, session: aws}", True,
     "172.31.0.0/16 from 169.254.100.2 (import-permit-list)"),
    ("{name: n, at: mcr, rejected: 172.31.0.0/16, reason: as-loop}", False, "(import-permit-list)"),
])
def test_judging_reads_the_view_and_shows_the_evidence(text: str, holds: bool, held: str) -> None:
    ok, evidence = judge(one(f"intents:\n  - {text}\n"), FakeProbe())  # type: ignore[arg-type]
    assert ok is holds
    assert held in evidence


def test_a_failing_run_exits_1_with_junit_that_parses_and_an_unknown_node_exits_2() -> None:
    f = parse_intents(textwrap.dedent("""\
        intents:
          - {name: good, at: aws, route: 10.30.0.0/16, within: 0.1s}
          - {name: wrong path, at: aws, route: 10.30.0.0/16, asPath: [1, 2], within: 0.1s}
        """), "i.yaml")
    report = run_verify("t", f, FakeProbe(), lambda s: None, io.StringIO())  # type: ignore[arg-type]
    assert [v.result for v in report.intents] == ["pass", "fail"]
    assert report.exit_code == 1
    suite = ET.fromstring(to_junit(report)).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None
    assert "expected: 10.30.0.0/16 as best route [1 2]" in (failure.text or "")
    unknown = IntentsFile("i.yaml", (Intent("x", "sessions", 1, at="nosuch"),), ())
    report = run_verify("t", unknown, FakeProbe(), lambda s: None, io.StringIO())  # type: ignore[arg-type]
    assert report.exit_code == 2
    assert "no node nosuch" in report.error
    ET.fromstring(to_junit(report))


def test_intents_files_ship_next_to_their_topologies() -> None:
    for name in ("hub-spoke", "seed-poc", "failover"):
        assert (REPO / "containerlab" / name / f"{name}.intents.yaml").is_file()
