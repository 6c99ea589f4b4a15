"""The looking glass, config API, metrics and `mcrd lg` against a running daemon with real BGP peers.

Topology (namespaces of this module only)::

    aws (FRR 64512, MD5, PRIV_CLOUD) --- hub (mcrd, API on 127.0.0.1:8080 inside the hub) --- azure (BIRD 12076)

AWS sends its two VPCs and 10.50.0.0/16, which its Import Permit List rejects; Azure sends its VNet, a more specific
/24 of it, and AWS's first VPC with a longer AS path (a BGP candidate that loses). Azure's Export Permit List lets
only AWS's first VPC out; a static route 10.99.0.0/16 points at AWS. The API is queried from inside the hub's
namespace (`nsclient.py`, `python -m mcrd lg`), where it listens. Every expected value is what docs/MCR-SEMANTICS.md
sections 2 and 3 predict; the peers' own RIBs confirm what `advertised` claims.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import (
    BirdNeighbor,
    BirdPeer,
    BirdStatic,
    FrrNeighbor,
    FrrPeer,
    Lab,
    Netns,
    bird_config,
    frr_config,
    pid_alive,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS, AWS_AS, AZURE_AS = 133937, 64512, 12076
AWS_KEY, TOKEN = "aws-md5-key", "lab-api-token"
HUB_AWS, AWS_IP, HUB_AZURE, AZURE_IP = "169.254.10.1", "169.254.10.2", "169.254.20.1", "169.254.20.2"
VPCS, AWS_REJECTED = ["10.10.0.0/16", "10.20.0.0/16"], "10.50.0.0/16"
VNET, VNET_SUBNET, STATIC = "10.30.0.0/16", "10.30.1.0/24", "10.99.0.0/16"
API = "http://127.0.0.1:8080"
LG = f"{API}/v2/product/mcr2/lab-mcr/lookingGlass"
NSCLIENT = str(Path(__file__).with_name("nsclient.py"))
TIMEOUT = 30.0


def mcr_config(lab: Lab, *, to_azure: list[str] | None = None) -> dict[str, Any]:
    def plist(list_id: int, name: str, prefixes: list[str]) -> dict[str, Any]:
        return {"id": list_id, "description": name, "addressFamily": "IPv4",
                "entries": [{"action": "permit", "prefix": p, "le": 16} for p in prefixes]}

    def vxc(name: str, address: str, conn: dict[str, Any], **extra: Any) -> dict[str, Any]:
        interface = {"ipAddresses": [f"{address}/30"], "bgpConnections": [conn], **extra}
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

    return {
        "mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "api": {"listen": "127.0.0.1:8080", "token": TOKEN},
        "prefixFilterLists": [plist(1, "aws-vpcs", VPCS), plist(2, "to-azure", to_azure or VPCS[:1])],
        "vxcs": [
            vxc("aws", HUB_AWS, {"peerAsn": AWS_AS, "localIpAddress": HUB_AWS, "peerIpAddress": AWS_IP,
                                 "peerType": "PRIV_CLOUD", "password": AWS_KEY, "importWhitelist": "aws-vpcs",
                                 "description": "AWS hosted VIF", "holdTime": 9},
                ipRoutes=[{"prefix": STATIC, "nextHop": AWS_IP}]),
            vxc("azure", HUB_AZURE, {"peerAsn": AZURE_AS, "localIpAddress": HUB_AZURE, "peerIpAddress": AZURE_IP,
                                     "peerType": "PRIV_CLOUD", "exportWhitelist": "to-azure",
                                     "description": "Azure VNet", "holdTime": 9}),
        ],
    }


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Topo:
    lab: Lab
    hub: Netns
    proc: Any
    config: Path
    aws: FrrPeer
    azure: BirdPeer

    def ask(self, method: str, url: str, *, token: str | None = None, body: str | None = None) -> Answer:
        args = [sys.executable, NSCLIENT, method, url]
        if token is not None:
            args += ["--token", token]
        if body is not None:
            path = self.lab.workdir / "put-body"
            path.write_text(body)
            args += ["--body-file", str(path)]
        out = self.hub.run(*args).stdout.strip().splitlines()[-1]
        data = json.loads(out)
        return Answer(data["status"], data["headers"], data["body"])

    def get(self, url: str, status: int = 200) -> Any:
        answer = self.ask("GET", url)
        assert answer.status == status, answer.body
        assert answer.headers["Content-Type"].startswith("application/json")
        body = answer.json()
        assert set(body) == {"message", "terms", "data"}
        return body

    def data(self, path: str) -> Any:
        return self.get(LG + path)["data"]

    def lg(self, *argv: str, check: bool = True) -> Any:
        return self.hub.run(sys.executable, "-m", "mcrd", "lg", *argv, "--api", API, check=check)

    def log(self) -> list[dict[str, Any]]:
        return self.lab.json_log(self.proc)

    def exabgp_pid(self) -> int:
        return int([e for e in self.log() if e.get("event") == "exabgp_started"][-1]["pid"])


@pytest.fixture(scope="module")
def lg_lab_ready() -> None:
    from tests.lab.conftest import require_lab

    require_lab()


@pytest.fixture(scope="module")
def topo(lg_lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topo]:
    with module_lab("test_lg_lab", request) as lab:
        yield _build(lab)


def _build(lab: Lab) -> Topo:
    hub, aws_ns, azure_ns = lab.netns("hub"), lab.netns("aws"), lab.netns("azure")
    lab.link(hub, "aws", aws_ns, "hub", [], [f"{AWS_IP}/30"])
    lab.link(hub, "azure", azure_ns, "hub", [], [f"{AZURE_IP}/30"])
    config = lab.make_dir("mcrd") / "mcrd.json"
    config.write_text(json.dumps(mcr_config(lab), indent=2))
    proc = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                     "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
    aws = FrrPeer(aws_ns, AWS_AS, "10.0.0.1", frr_config(
        AWS_AS, "10.0.0.1", [FrrNeighbor(HUB_AWS, MCR_AS, password=AWS_KEY, hold_time=9)],
        [*VPCS, AWS_REJECTED], hostname="aws", graceful_restart=False))
    azure = BirdPeer(azure_ns, bird_config(
        AZURE_AS, "10.0.0.2", [BirdNeighbor("mcr", HUB_AZURE, MCR_AS, hold_time=9)],
        [VNET, VNET_SUBNET, BirdStatic(VPCS[0], as_path_prepend=(AZURE_AS, AZURE_AS))]))
    topo = Topo(lab, hub, proc, config, aws, azure)
    aws.wait_established(HUB_AWS, TIMEOUT)
    azure.wait_established("mcr", TIMEOUT)
    # AWS rejects: 10.50/16 (import list) and, once FRR echoes them back, the three routes the MCR sends it (AS loop).
    poll(lambda: [(s["status"], s["prefixesIn"], s["prefixesRejected"]) for s in topo.data("/bgpSessions")],
         TIMEOUT, "both sessions up with every route in", until=lambda got: got == [("UP", 2, 4), ("UP", 3, 0)],
         ignore=(AssertionError, KeyError, ValueError))
    azure.wait_route(VPCS[0], TIMEOUT)
    return topo


def rows(items: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(item[f] for f in fields) for item in items]


# --- tests, in file order: the module's topology is shared, the PUT test changes Azure's export list and the last
# --- test stops the daemon ------------------------------------------------------------------------------------------


# --- the looking glass ---------------------------------------------------------------------------------------------


def test_index_names_the_mcr(topo: Topo) -> None:
    assert [p["productUid"] for p in topo.get(f"{API}/v2/product/mcr2")["data"]] == ["lab-mcr"]


def test_bgp_sessions(topo: Topo) -> None:
    body = topo.get(LG + "/bgpSessions")
    assert body["message"] == "BGP sessions of MCR lab-mcr: 2"
    aws, azure = body["data"]
    for session in (aws, azure):
        assert isinstance(session["uptime"], int)
        assert 0 <= session["uptime"] < 300
        assert session["lastStateChange"] == session["uptime"]
    expected_aws = {"sessionId": AWS_IP, "neighborAddress": AWS_IP, "neighborAsn": AWS_AS, "localAsn": MCR_AS,
                    "status": "UP", "prefixesIn": 2, "prefixesOut": 3, "vxcId": None, "vxcName": "aws-vxc",
                    "description": "AWS hosted VIF", "prefixesRejected": 4, "stateReason": "",
                    "bfdStatus": None, "addressFamilies": ["IPv4"], "routeRefresh": "ENHANCED"}
    assert {k: v for k, v in aws.items() if k not in ("uptime", "lastStateChange")} == expected_aws
    assert rows([azure], "sessionId", "neighborAsn", "status", "prefixesIn", "prefixesOut", "vxcName") == [
        (AZURE_IP, AZURE_AS, "UP", 3, 1, "azure-vxc")]


def test_routes(topo: Topo) -> None:
    aws_if, azure_if = topo.lab.ifname("aws"), topo.lab.ifname("azure")
    data = topo.data("/routes")
    assert rows(data, "prefix", "protocol", "nextHop", "interface", "vxcName", "asPath", "best") == [
        ("10.10.0.0/16", "BGP", AWS_IP, aws_if, "aws-vxc", [AWS_AS], True),
        ("10.20.0.0/16", "BGP", AWS_IP, aws_if, "aws-vxc", [AWS_AS], True),
        ("10.30.0.0/16", "BGP", AZURE_IP, azure_if, "azure-vxc", [AZURE_AS], True),
        ("10.30.1.0/24", "BGP", AZURE_IP, azure_if, "azure-vxc", [AZURE_AS], True),
        ("10.99.0.0/16", "STATIC", AWS_IP, aws_if, "aws-vxc", [], True),
        ("169.254.10.0/30", "CONNECTED", "0.0.0.0", aws_if, "aws-vxc", [], True),
        ("169.254.10.1/32", "LOCAL", "0.0.0.0", aws_if, "aws-vxc", [], True),
        ("169.254.20.0/30", "CONNECTED", "0.0.0.0", azure_if, "azure-vxc", [], True),
        ("169.254.20.1/32", "LOCAL", "0.0.0.0", azure_if, "azure-vxc", [], True),
    ]
    vpc = data[0]
    # FRR puts MED 0 on the networks it originates (tests/lab/README.md).
    assert rows([vpc], "med", "metric", "localPref", "origin", "vxcId", "communities") == [
        (0, 0, 100, "IGP", None, [])]
    assert isinstance(vpc["age"], int)
    assert set(vpc) == {"prefix", "nextHop", "protocol", "metric", "localPref", "asPath", "age", "interface",
                        "vxcId", "vxcName", "communities", "origin", "med", "best"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?protocol=STATIC", [(STATIC, "STATIC")]),
        ("?protocol=CONNECTED", [("169.254.10.0/30", "CONNECTED"), ("169.254.20.0/30", "CONNECTED")]),
        ("?ip=10.30.1.99", [(VNET_SUBNET, "BGP")]),  # an address: the longest match
        ("?ip=10.30.200.1", [(VNET, "BGP")]),
        ("?ip=10.30.0.0/16", [(VNET, "BGP"), (VNET_SUBNET, "BGP")]),  # a prefix: itself and what it covers
        ("?ip=169.254.10.1", [("169.254.10.1/32", "LOCAL")]),
        ("?ip=169.254.10.2", [("169.254.10.0/30", "CONNECTED")]),
        ("?protocol=BGP&ip=10.0.0.0/8", [(VPCS[0], "BGP"), (VPCS[1], "BGP"), (VNET, "BGP"), (VNET_SUBNET, "BGP")]),
        ("?ip=" + AWS_REJECTED, []),  # rejected on import: not in the routing table
    ],
)
def test_routes_query_filters(topo: Topo, query: str, expected: list[tuple[str, str]]) -> None:
    assert rows(topo.data("/routes" + query), "prefix", "protocol") == expected


def test_bgp_table_holds_the_losing_path_too(topo: Topo) -> None:
    data = topo.data("/bgp")
    assert rows(data, "prefix", "neighborIp", "neighborAsn", "asPath", "best", "valid", "weight") == [
        (VPCS[0], AWS_IP, AWS_AS, [AWS_AS], True, True, 0),
        (VPCS[0], AZURE_IP, AZURE_AS, [AZURE_AS] * 3, False, True, 0),
        (VPCS[1], AWS_IP, AWS_AS, [AWS_AS], True, True, 0),
        (VNET, AZURE_IP, AZURE_AS, [AZURE_AS], True, True, 0),
        (VNET_SUBNET, AZURE_IP, AZURE_AS, [AZURE_AS], True, True, 0),
        (STATIC, None, None, [], True, True, 32768),
    ]
    assert rows(topo.data("/bgp?ip=10.10.3.4"), "neighborIp", "best") == [(AWS_IP, True), (AZURE_IP, False)]


def test_received_advertised_and_the_filtered_extension(topo: Topo) -> None:
    assert rows(topo.data(f"/bgpSessions/{AWS_IP}/received"), "prefix", "nextHop", "asPath", "best", "valid") == [
        (VPCS[0], AWS_IP, [AWS_AS], True, True), (VPCS[1], AWS_IP, [AWS_AS], True, True)]
    assert rows(topo.data(f"/bgpSessions/{AZURE_IP}/received"), "prefix", "best") == [
        (VPCS[0], False), (VNET, True), (VNET_SUBNET, True)]
    # "Why is nothing in the Received section?": the rejected routes, each with the rule that rejected it. FRR
    # sends the MCR's own routes back (the receiver is left to drop them): the AS-path loop check does.
    filtered = topo.get(f"{LG}/bgpSessions/{AWS_IP}/received?filtered=true")
    assert filtered["message"] == f"routes rejected by import policy from {AWS_IP} on MCR lab-mcr: 4"
    loop = {"code": "as-loop", "detail": f"AS path holds the local AS {MCR_AS} (loop)"}
    assert rows(filtered["data"], "prefix", "asPath", "valid", "best", "rejection") == [
        (VNET, [AWS_AS, MCR_AS, AZURE_AS], False, False, loop),
        (VNET_SUBNET, [AWS_AS, MCR_AS, AZURE_AS], False, False, loop),
        (AWS_REJECTED, [AWS_AS], False, False,
         {"code": "import-permit-list", "detail": "import permit list 'aws-vpcs' (id 1): no entry contains the route"}),
        (STATIC, [AWS_AS, MCR_AS], False, False, loop),
    ]
    # Advertised: the attributes as sent, which the peers' own RIBs confirm.
    to_azure = topo.data(f"/bgpSessions/{AZURE_IP}/advertised")
    assert rows(to_azure, "prefix", "nextHop", "asPath", "med") == [(VPCS[0], HUB_AZURE, [MCR_AS, AWS_AS], None)]
    from_mcr = poll(lambda: topo.azure.routes("master4", protocol="mcr").get(VPCS[0]), TIMEOUT, "azure has it")
    assert from_mcr is not None
    assert (from_mcr.as_path, from_mcr.next_hop) == ((MCR_AS, AWS_AS), HUB_AZURE)  # Azure's own path wins there
    to_aws = topo.data(f"/bgpSessions/{AWS_IP}/advertised")
    assert rows(to_aws, "prefix", "asPath") == [(VNET, [MCR_AS, AZURE_AS]), (VNET_SUBNET, [MCR_AS, AZURE_AS]),
                                                (STATIC, [MCR_AS])]
    for prefix, path in rows(to_aws, "prefix", "asPath"):
        assert list(topo.aws.wait_route(prefix, TIMEOUT).as_path) == path
    # Exactly those: not the 10.10/16 via Azure announced and withdrawn while the sessions came up.
    poll(lambda: set(topo.aws.routes("ipv4", neighbor=HUB_AWS)), TIMEOUT, "AWS holds what the MCR advertises",
         until=lambda got: got == {prefix for prefix, in rows(to_aws, "prefix")})
    assert topo.data(f"/bgpSessions/{AWS_IP}/advertised?ip=10.30.1.1") == [to_aws[1]]


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        (f"{API}/v2/product/mcr2/not-this-mcr/lookingGlass/routes", 404, ["'not-this-mcr'", "'lab-mcr'"]),
        (f"{LG}/bgpSessions/192.0.2.9/received", 404, ["'192.0.2.9'", AWS_IP, AZURE_IP]),
        (f"{API}/no/such/thing", 404, ["no such path"]),
        (f"{LG}/routes?protocol=RIP", 400, ["parameter protocol", "'RIP'"]),
        (f"{LG}/routes?ip=10.1.2.300", 400, ["parameter ip", "'10.1.2.300'"]),
        (f"{LG}/bgp?ip=not-an-ip", 400, ["parameter ip"]),
        (f"{LG}/bgpSessions/{AWS_IP}/received?filtered=maybe", 400, ["parameter filtered"]),
    ],
)
def test_errors(topo: Topo, url: str, status: int, words: list[str]) -> None:
    body = topo.get(url, status)
    assert body["data"] is None
    for word in words:
        assert word in body["message"]


# --- config API ----------------------------------------------------------------------------------------------------


def test_get_config_hides_the_md5_key_and_the_token(topo: Topo) -> None:
    answer = topo.ask("GET", f"{API}/config")
    assert answer.status == 200
    assert AWS_KEY not in answer.body
    assert TOKEN not in answer.body
    data = answer.json()
    assert data["vxcs"][0]["vrouter"]["interfaces"][0]["bgpConnections"][0]["password"] == "********"
    assert data["api"]["token"] == "********"
    assert data["prefixFilterLists"] == mcr_config(topo.lab)["prefixFilterLists"]


class Marks(NamedTuple):
    """Something that changes whenever a session is reset, on both sides."""

    exact: dict[str, object]
    # BIRD prints the time of its last state change converted from its monotonic clock at each call, so the same
    # instant can print 1 ms apart: `same_sessions` allows 50 ms (a reset and reconnect takes far longer, and the
    # FRR counter and mcrd's session_up lines catch one independently).
    bird_since: float


def session_marks(topo: Topo) -> Marks:
    frr = topo.aws.show_json(f"show bgp neighbors {HUB_AWS}")[HUB_AWS]["connectionsEstablished"]
    state, since = topo.azure.birdc("show", "protocols", "mcr").stdout.splitlines()[-1].split()[3:5]
    hours, minutes, seconds = since.split(":")
    ours = {s["sessionId"]: s["uptime"] - s["lastStateChange"] for s in topo.data("/bgpSessions")}
    return Marks({"frr": frr, "bird": state, "mcrd": ours, "established": len(
        [e for e in topo.log() if e.get("event") == "session_up"])},
        int(hours) * 3600 + int(minutes) * 60 + float(seconds))


def same_sessions(before: Marks, after: Marks) -> bool:
    """No session was reset between two `session_marks`."""
    return before.exact == after.exact and abs(before.bird_since - after.bird_since) < 0.05


def test_put_config_with_a_bad_config_changes_nothing(topo: Topo) -> None:
    before_config, before_marks = topo.ask("GET", f"{API}/config").body, session_marks(topo)
    bad = mcr_config(topo.lab)
    bad["vxcs"][0]["vrouter"]["interfaces"][0]["bgpConnections"][0]["peerAsn"] = 4294967296
    bad["prefixFilterLists"][1]["entries"][0]["le"] = 8
    answer = topo.ask("PUT", f"{API}/config", token=TOKEN, body=json.dumps(bad, indent=2))
    assert answer.status == 400
    body = answer.json()
    assert body["message"] == "config not applied (2 problems); the running config is unchanged"
    texts = [p["text"] for p in body["data"]["problems"]]
    assert len(texts) == 2
    assert any(t.startswith("PUT /config:") and t.endswith(
        "vxcs[0].vrouter.interfaces[0].bgpConnections[0].peerAsn: 4294967296 is out of range 1..4294967295")
        for t in texts), texts
    assert any("prefixFilterLists[1].entries[0].le: le 8 is shorter than the prefix length of 10.10.0.0/16" in t
               for t in texts), texts
    # The same lines as `mcrd check` prints for that file, but for the name.
    path = topo.lab.workdir / "bad.json"
    path.write_text(json.dumps(bad, indent=2))
    check = topo.hub.run(sys.executable, "-m", "mcrd", "check", str(path), check=False)
    assert check.returncode == 1
    assert check.stderr.replace(str(path), "PUT /config").splitlines() == texts
    assert topo.ask("GET", f"{API}/config").body == before_config
    assert same_sessions(before_marks, session_marks(topo))
    assert rows(topo.data(f"/bgpSessions/{AZURE_IP}/advertised"), "prefix") == [(VPCS[0],)]


def test_put_config_needs_the_token(topo: Topo) -> None:
    good = json.dumps(mcr_config(topo.lab, to_azure=VPCS))
    for token in (None, "not-the-token"):
        answer = topo.ask("PUT", f"{API}/config", token=token, body=good)
        assert answer.status == 401, answer.body
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["data"] is None
    assert rows(topo.data(f"/bgpSessions/{AZURE_IP}/advertised"), "prefix") == [(VPCS[0],)]


def test_put_config_changes_a_filter_without_a_session_reset(topo: Topo) -> None:
    marks = session_marks(topo)
    # GET, edit, PUT: the password marker keeps the running MD5 key (a wrong key would take the session down).
    data = topo.ask("GET", f"{API}/config").json()
    data["prefixFilterLists"][1]["entries"].append({"action": "permit", "prefix": VPCS[1], "le": 16})
    answer = topo.ask("PUT", f"{API}/config", token=TOKEN, body=json.dumps(data))
    assert answer.status == 200, answer.body
    assert answer.json()["data"] == {"applied": True, "peersAdded": [], "peersRemoved": [], "reevaluated": []}
    # Applied before the answer: the looking glass shows it at once, the peer soon after.
    assert rows(topo.data(f"/bgpSessions/{AZURE_IP}/advertised"), "prefix") == [(VPCS[0],), (VPCS[1],)]
    assert topo.azure.wait_route(VPCS[1], TIMEOUT).as_path == (MCR_AS, AWS_AS)
    after = topo.ask("GET", f"{API}/config").json()
    assert after["prefixFilterLists"][1]["entries"][-1]["prefix"] == VPCS[1]
    assert same_sessions(marks, session_marks(topo))
    assert topo.aws.session_state(HUB_AWS) == "Established"
    applied = [e for e in topo.log() if e.get("event") == "config_reloaded"]
    assert applied[-1]["config"] == "PUT /config"


# --- metrics, health, CLI --------------------------------------------------------------------------------------------


def metrics(topo: Topo) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = topo.ask("GET", f"{API}/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.body) for s in family.samples}


def test_metrics(topo: Topo) -> None:
    values = metrics(topo)
    sessions = {s["sessionId"]: s for s in topo.data("/bgpSessions")}

    def per_session(kind: str, session: str) -> float:
        vxc = sessions[session]["vxcName"]
        return values[f"mcrd_bgp_prefixes_{kind}", (("session", session), ("vxc", vxc))]

    assert values["mcrd_bgp_sessions", (("status", "UP"),)] == 2
    assert values["mcrd_bgp_sessions", (("status", "DOWN"),)] == 0
    assert [per_session(kind, AWS_IP) for kind in ("received", "accepted", "rejected")] == [6, 2, 4]
    assert [per_session(kind, AZURE_IP) for kind in ("received", "accepted", "rejected")] == [3, 3, 0]
    for session in (AWS_IP, AZURE_IP):  # the same numbers as the looking glass
        assert per_session("advertised", session) == sessions[session]["prefixesOut"]
        assert per_session("accepted", session) == sessions[session]["prefixesIn"]
        assert per_session("rejected", session) == sessions[session]["prefixesRejected"]
    assert values["mcrd_rib_routes", ()] == 5
    assert values["mcrd_kernel_routes", ()] == 5  # connected subnets are the kernel's own
    kernel = {r["dst"] for r in topo.hub.ip_json("route", "show", "proto", "252")}
    assert kernel == {*VPCS, VNET, VNET_SUBNET, STATIC}
    assert values["mcrd_update_processing_seconds_count", ()] > 0
    events = [e.get("event") for e in topo.log()]
    assert values["mcrd_config_reloads_total", (("result", "applied"),)] == events.count("config_reloaded")
    assert values["mcrd_config_reloads_total", (("result", "rejected"),)] == events.count("config_not_applied")
    assert values["mcrd_events_dropped_total", ()] == 0
    assert values["mcrd_exabgp_up", ()] == 1
    assert values["process_resident_memory_bytes", ()] > 0


def test_cli_tables_and_json(topo: Topo) -> None:
    out = topo.lg("sessions").stdout.splitlines()
    assert out[0] == "BGP sessions of MCR lab-mcr: 2"
    assert out[3].split()[:3] == [AWS_IP, "aws-vxc", "UP"]
    assert out[4].split()[:3] == [AZURE_IP, "azure-vxc", "UP"]
    out = topo.lg("routes", "--protocol", "bgp", "--ip", "10.30.1.1").stdout.splitlines()
    assert out[0] == "IP routes of MCR lab-mcr: 1"
    assert out[3].split()[:4] == [VNET_SUBNET, "BGP", AZURE_IP, topo.lab.ifname("azure")]
    out = topo.lg("neighbor", AWS_IP, "received", "--filtered").stdout.splitlines()
    [line] = [line for line in out if line.startswith(AWS_REJECTED)]
    assert line.endswith("import permit list 'aws-vpcs' (id 1): no entry contains the route")
    views = [(["bgp"], "/bgp"), (["neighbor", AZURE_IP, "advertised"], f"/bgpSessions/{AZURE_IP}/advertised")]
    for argv, path in views:
        printed = json.loads(topo.lg(*argv, "--json").stdout)
        assert _without_ages(printed) == _without_ages(topo.data(path))
    failed = topo.lg("--uid", "other", "routes", check=False)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr == "mcrd lg: no MCR 'other' here: this mcrd plays MCR 'lab-mcr' (HTTP 404)\n"


def _without_ages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "age"} for item in items]


def test_healthz_answers_503_while_exabgp_is_down(topo: Topo) -> None:
    assert topo.get(f"{API}/healthz")["data"] == {"healthy": True, "reasons": []}
    # ExaBGP is restarted 0.5 s after it dies and takes about a second to connect: a poller already running in the
    # hub sees the 503 in between.
    poller = topo.hub.popen(sys.executable, NSCLIENT, "GET", f"{API}/healthz", "--until-status", "503",
                            "--until-text", "ExaBGP exited with status -9", "--timeout", str(TIMEOUT),
                            label="healthz-poll")
    log = topo.lab.log_of(poller)
    poll(lambda: '"polling"' in log.read_text(), TIMEOUT, "the health poller runs")
    old = topo.exabgp_pid()
    os.kill(old, signal.SIGKILL)
    assert poller.wait(TIMEOUT + 5) == 0
    answer = json.loads(log.read_text().strip().splitlines()[-1])
    assert answer["status"] == 503, answer
    body = json.loads(answer["body"])
    assert body["message"].startswith("ExaBGP is down (ExaBGP exited with status -9; restarts: ")
    assert body["data"]["healthy"] is False
    # ExaBGP is restarted by the daemon; health comes back with it.
    poll(lambda: topo.ask("GET", f"{API}/healthz").status, TIMEOUT, "healthy again", until=lambda s: s == 200)
    poll(lambda: not pid_alive(old), TIMEOUT, "the killed ExaBGP reaped")
    assert metrics(topo)["mcrd_exabgp_restarts_total", ()] >= 1
    topo.aws.wait_established(HUB_AWS, TIMEOUT)
    topo.azure.wait_established("mcr", TIMEOUT)


# --- limits, against the real daemon (uvloop): docs/THREAT-MODEL.md ---------------------------------------------------

# Run inside the hub: half a request header, then wait for the daemon to close the connection.
HALF_HEADER_CLIENT = """
import json, socket, time
sock = socket.create_connection(("127.0.0.1", 8080))
sock.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: mcrd\\r\\nX-Slow: ")
start = time.monotonic()
sock.settimeout(60)
data = sock.recv(100)
print(json.dumps({"closed_after": time.monotonic() - start, "data": data.decode()}))
"""

# Run inside the hub: GET /healthz over and over until a line arrives on stdin; then the count and slowest answer.
HEALTHZ_WATCH = """
import http.client, json, select, sys, time
latencies = []
print("watching", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=30)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()
    latencies.append(time.monotonic() - start)
print(json.dumps({"count": len(latencies), "slowest": max(latencies)}))
"""


def reloads(topo: Topo) -> int:
    return sum(e.get("event") in ("config_reloaded", "config_not_applied") for e in topo.log())


def rejections(topo: Topo) -> int:
    return sum(e.get("event") == "config_not_applied" for e in topo.log())


def test_a_half_sent_header_is_closed_by_the_daemon(topo: Topo) -> None:
    out = json.loads(topo.hub.run(sys.executable, "-c", HALF_HEADER_CLIENT, timeout=60).stdout)
    assert out["data"] == ""
    assert 5 <= out["closed_after"] <= 20  # the header timeout is 10 s


def test_sighup_with_an_alias_bomb_is_refused_at_once(topo: Topo) -> None:
    from tests.config.config_testlib import alias_bomb

    good = topo.config.read_text()
    before = reloads(topo)
    try:
        topo.config.write_text(alias_bomb())
        sent = time.monotonic()
        topo.proc.send_signal(signal.SIGHUP)
        poll(lambda: reloads(topo) > before, TIMEOUT, "the daemon handled SIGHUP")
        took = time.monotonic() - sent
        [problem] = [e["problem"] for e in topo.log() if e.get("event") == "config_rejected"][-1:]
        assert problem == (f"{topo.config}:5: e[0]: YAML aliases expand the config past 10000 values more than it "
                           "writes out (an alias bomb?): refused")
        print(f"alias bomb on SIGHUP refused in {took:.2f} s")
        assert took < 10  # before the bound: 28 s and gigabytes, the event loop held throughout
        assert topo.get(f"{API}/healthz")["data"]["healthy"] is True
    finally:
        topo.config.write_text(good)


def test_sighup_reads_a_big_config_off_the_event_loop(topo: Topo) -> None:
    good = topo.config.read_text()
    big = json.loads(good)
    big["prefixFilterLists"] += [
        {"id": 10 + n, "description": f"big{n}", "addressFamily": "IPv4",
         "entries": [{"action": "permit", "prefix": f"10.{100 + n}.{i}.0/24"} for i in range(200)]}
        for n in range(8)
    ]
    watcher = subprocess.Popen(["ip", "netns", "exec", topo.hub.name, sys.executable, "-c", HEALTHZ_WATCH],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "watching"
        before, refused = reloads(topo), rejections(topo)
        topo.config.write_text(json.dumps(big, indent=1))
        sent = time.monotonic()
        topo.proc.send_signal(signal.SIGHUP)
        poll(lambda: reloads(topo) > before, 120, "the daemon applied the big config")
        took = time.monotonic() - sent
        assert rejections(topo) == refused, "the big config was refused"
        out, _ = watcher.communicate("stop\n", timeout=60)
        seen = json.loads(out.strip().splitlines()[-1])
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        topo.config.write_text(good)
        before = reloads(topo)
        topo.proc.send_signal(signal.SIGHUP)
        poll(lambda: reloads(topo) > before, 120, "the daemon read the lab's config again")
    print(f"SIGHUP with {len(json.dumps(big, indent=1))} bytes applied in {took:.2f} s; /healthz answered "
          f"{seen['count']} times meanwhile, slowest {seen['slowest']:.3f} s")
    # Read on the event loop, one /healthz would wait for the whole read.
    assert seen["count"] >= 3
    assert seen["slowest"] < max(1.0, took / 2)


def test_no_log_line_shows_a_secret(topo: Topo) -> None:
    text = topo.lab.log_of(topo.proc).read_text()
    assert AWS_KEY not in text
    assert TOKEN not in text


def test_after_sigterm_the_cli_says_no_daemon_answers(topo: Topo) -> None:
    topo.proc.send_signal(signal.SIGTERM)
    assert topo.proc.wait(timeout=TIMEOUT) == 0
    started = time.monotonic()
    failed = topo.lg("sessions", check=False)
    assert time.monotonic() - started < 10
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr == f"mcrd lg: no mcrd answers at {API} (is the daemon running?)\n"
