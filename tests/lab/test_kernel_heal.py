"""The kernel heals (issue 15.2): mcrd's routes changed behind its back in the hub's kernel come back, a stray
route of its protocol goes, routes of other protocols are never touched, and a route the kernel refused is sent
again until it takes it. mcrd runs with `--kernel-scan-interval 1`; the routes come from real FRR and BIRD peers.

Topology (addresses stay inside the namespaces this module creates)::

    frr (FRR 64512) --- hub (mcrd) --- bird (BIRD 12076, IPv4 and IPv6)
                         |
                         +-- edge (a VXC without BGP, to frr's namespace: the next hop of a static route)
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import (
    BirdNeighbor,
    BirdPeer,
    FrrNeighbor,
    FrrPeer,
    Lab,
    Netns,
    bird_config,
    frr_config,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS, FRR_AS, BIRD_AS = 133937, 64512, 12076
FRR_HUB, FRR_PEER = "169.254.10.1", "169.254.10.2"
BIRD_HUB, BIRD_PEER, BIRD_HUB6, BIRD_PEER6 = "169.254.32.1", "169.254.32.2", "2001:db8:b::1", "2001:db8:b::2"
EDGE_HUB, EDGE_PEER, EDGE_SUBNET = "192.0.2.1", "192.0.2.2", "192.0.2.0/30"
FRR_NETS, BIRD_NETS, BIRD_V6 = ["10.10.0.0/16", "10.11.0.0/16"], ["10.30.0.0/16", "10.31.0.0/16"], "2001:db8:30::/48"
STATIC, EDGE_STATIC = "10.99.0.0/16", "10.98.0.0/16"
API = "http://127.0.0.1:8080"
NSCLIENT = str(Path(__file__).parents[1] / "lg" / "nsclient.py")
TIMEOUT = 30.0
HEAL = 10.0  # seconds: a scan every second; generous on a loaded machine


def mcr_config(lab: Lab, *, edge_route: bool = False) -> str:
    def vxc(name: str, addresses: list[str], conns: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        interface = {"ipAddresses": addresses, "bgpConnections": conns, **extra}
        return {"productName": name, "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

    def conn(local: str, peer: str, asn: int) -> dict[str, Any]:
        return {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "holdTime": 9}

    edge_routes = [{"prefix": EDGE_STATIC, "nextHop": EDGE_PEER}] if edge_route else []
    config = {
        "mcr": {"productName": "heal-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "vxcs": [
            vxc("frr", [f"{FRR_HUB}/30"], [conn(FRR_HUB, FRR_PEER, FRR_AS)],
                ipRoutes=[{"prefix": STATIC, "nextHop": FRR_PEER}]),
            vxc("bird", [f"{BIRD_HUB}/30", f"{BIRD_HUB6}/126"],
                [conn(BIRD_HUB, BIRD_PEER, BIRD_AS), conn(BIRD_HUB6, BIRD_PEER6, BIRD_AS)]),
            vxc("edge", [f"{EDGE_HUB}/30"], [], ipRoutes=edge_routes),
        ],
    }
    return json.dumps(config, indent=2) + "\n"


EXPECTED = {**dict.fromkeys(FRR_NETS, FRR_PEER), **dict.fromkeys(BIRD_NETS, BIRD_PEER), BIRD_V6: BIRD_PEER6,
            STATIC: FRR_PEER}


@dataclass
class Heal:
    lab: Lab
    hub: Netns
    config: Path
    mcrd: Any
    frr: FrrPeer
    bird: BirdPeer

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.lab.log_events(self.mcrd, name)

    def kernel(self) -> dict[str, str]:
        """mcrd's routes in the hub's kernel, prefix -> gateway."""
        return {r["dst"]: r.get("gateway", "") for family in ("-4", "-6")
                for r in self.hub.ip_json(family, "route", "show", "proto", "252")}

    def others(self) -> list[dict[str, Any]]:
        """Every route of the hub's main table that is not of mcrd's protocol."""
        routes = self.hub.ip_json("route", "show", "table", "main") + self.hub.ip_json("-6", "route", "show",
                                                                                        "table", "main")
        return [r for r in routes if r.get("protocol") != "252"]

    def metrics(self) -> dict[str, float]:
        out = self.hub.run(sys.executable, NSCLIENT, "GET", API + "/metrics").stdout.strip().splitlines()[-1]
        answer = json.loads(out)
        assert answer["status"] == 200, answer
        values = {}
        for line in answer["body"].splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def scans_after(self, count: int) -> None:
        """Wait for `count` more scans of the kernel (the metric counts them)."""
        start = self.metrics()["mcrd_kernel_scans_total"]
        poll(lambda: self.metrics()["mcrd_kernel_scans_total"], HEAL, f"{count} more kernel scans",
             until=lambda n: n >= start + count)

    def repaired(self, action: str) -> list[str]:
        return [p for e in self.events("kernel_repaired") for p in e[f"{action}_prefixes"]]

    def reload(self, text: str) -> None:
        before = len(self.events("config_applied"))
        self.config.write_text(text)
        self.mcrd.send_signal(signal.SIGHUP)
        poll(lambda: len(self.events("config_applied")), TIMEOUT, "the reload applied", until=lambda n: n > before)


@pytest.fixture(scope="module")
def heal(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Heal]:
    with module_lab("test_kernel_heal", request) as lab:
        hub, frr_ns, bird_ns = lab.netns("hub"), lab.netns("frr"), lab.netns("bird")
        lab.link(hub, "frr", frr_ns, "hub", [], [f"{FRR_PEER}/30"])
        lab.link(hub, "bird", bird_ns, "hub", [], [f"{BIRD_PEER}/30", f"{BIRD_PEER6}/126"])
        lab.link(hub, "edge", frr_ns, "edge", [], [f"{EDGE_PEER}/30"])
        config = lab.make_dir("mcrd") / "mcrd.yaml"
        config.write_text(mcr_config(lab))
        mcrd = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                         "--state-dir", str(lab.make_dir("mcrd-state")), "--kernel-scan-interval", "1", label="mcrd")
        frr = FrrPeer(frr_ns, FRR_AS, "10.0.0.1", frr_config(
            FRR_AS, "10.0.0.1", [FrrNeighbor(FRR_HUB, MCR_AS, hold_time=9)], FRR_NETS, hostname="frr",
            graceful_restart=False))
        bird = BirdPeer(bird_ns, bird_config(
            BIRD_AS, "10.0.0.2",
            [BirdNeighbor("mcr4", BIRD_HUB, MCR_AS, hold_time=9), BirdNeighbor("mcr6", BIRD_HUB6, MCR_AS, hold_time=9)],
            [*BIRD_NETS, BIRD_V6]))
        t = Heal(lab, hub, config, mcrd, frr, bird)
        frr.wait_established(FRR_HUB, TIMEOUT)
        bird.wait_established("mcr4", TIMEOUT)
        bird.wait_established("mcr6", TIMEOUT)
        poll(t.kernel, TIMEOUT, "the hub's kernel with every best route", until=lambda got: got == EXPECTED)
        yield t


# --- tests, in order: the module's topology is shared ---------------------------------------------------------------


def test_deleted_routes_come_back(heal: Heal) -> None:
    t = heal
    t.hub.ip("route", "del", FRR_NETS[0], "proto", "252")
    t.hub.ip("route", "del", STATIC, "proto", "252")
    t.hub.ip("-6", "route", "del", BIRD_V6, "proto", "252")
    poll(t.kernel, HEAL, "the deleted routes back", until=lambda got: got == EXPECTED)
    assert sorted(t.repaired("added")) == sorted([FRR_NETS[0], STATIC, BIRD_V6])
    assert t.metrics()['mcrd_kernel_repairs_total{action="added"}'] == 3


def test_an_altered_route_is_restored(heal: Heal) -> None:
    t = heal
    # Another next hop, same protocol and metric (what `ip route replace` by hand does).
    t.hub.ip("route", "replace", BIRD_NETS[0], "via", FRR_PEER, "dev", t.lab.ifname("frr"), "proto", "252",
             "metric", "20")
    # Replaced by a route of mcrd's protocol with another metric.
    t.hub.ip("route", "del", BIRD_NETS[1], "proto", "252")
    t.hub.ip("route", "add", BIRD_NETS[1], "via", BIRD_PEER, "proto", "252", "metric", "50")
    poll(lambda: t.hub.ip_json("route", "show", "proto", "252", "exact", BIRD_NETS[1]), HEAL,
         "the other metric's route replaced by mcrd's", until=lambda got: [r.get("metric") for r in got] == [20])
    poll(t.kernel, HEAL, "the altered route restored", until=lambda got: got == EXPECTED)
    assert t.repaired("replaced") == [BIRD_NETS[0]]
    assert BIRD_NETS[1] in t.repaired("removed")  # metric 50
    assert BIRD_NETS[1] in t.repaired("added")  # metric 20


def test_a_stray_route_of_mcrds_protocol_is_removed(heal: Heal) -> None:
    t = heal
    t.hub.ip("route", "add", "10.77.0.0/16", "via", FRR_PEER, "proto", "252", "metric", "20")
    t.hub.ip("-6", "route", "add", "2001:db8:77::/48", "via", BIRD_PEER6, "proto", "252", "metric", "20")
    poll(t.kernel, HEAL, "the stray routes removed", until=lambda got: got == EXPECTED)
    assert {"10.77.0.0/16", "2001:db8:77::/48"} <= set(t.repaired("removed"))


def test_routes_of_other_protocols_are_never_touched(heal: Heal) -> None:
    t = heal
    # One for a prefix mcrd installs too (metric 0: beside mcrd's metric 20), one of its own, one IPv6, and a route
    # of mcrd's protocol in another table (the scan reads table main only).
    t.hub.ip("route", "add", FRR_NETS[0], "via", BIRD_PEER, "proto", "static")
    t.hub.ip("route", "add", "10.88.0.0/16", "via", FRR_PEER)
    t.hub.ip("-6", "route", "add", "2001:db8:88::/48", "via", BIRD_PEER6, "proto", "bird")
    t.hub.ip("route", "add", "10.89.0.0/16", "via", FRR_PEER, "proto", "252", "table", "100")
    before = t.others()
    assert {r["dst"] for r in before} >= {FRR_NETS[0], "10.88.0.0/16", "2001:db8:88::/48"}
    # Three scans: each one sees these routes, compares and changes nothing of theirs.
    t.scans_after(3)
    assert t.others() == before
    assert [r["dst"] for r in t.hub.ip_json("route", "show", "table", "100")] == ["10.89.0.0/16"]
    assert t.kernel() == EXPECTED
    t.hub.ip("route", "del", FRR_NETS[0], "via", BIRD_PEER, "proto", "static")
    t.hub.ip("route", "del", "10.88.0.0/16")
    t.hub.ip("-6", "route", "del", "2001:db8:88::/48", "proto", "bird")
    t.hub.ip("route", "del", "10.89.0.0/16", "table", "100")


def test_a_refused_route_is_retried_until_the_kernel_takes_it(heal: Heal) -> None:
    """The edge VXC's connected route is deleted by hand (its link and address stay, so nothing tells mcrd): the
    kernel refuses a route via 192.0.2.2 (ENETUNREACH). A reload adds such a static route; it is refused, pending,
    sent again and refused again until the connected route is back, then it is installed."""
    t = heal
    edge = t.lab.ifname("edge")
    t.hub.ip("route", "del", EDGE_SUBNET, "dev", edge)
    t.reload(mcr_config(t.lab, edge_route=True))
    failed = poll(lambda: [e for e in t.events("kernel_route_failed") if e["prefix"] == EDGE_STATIC], TIMEOUT,
                  "the install refused")
    print(f"refused: {failed[0]}")
    assert "unreachable" in failed[0]["error"].lower()
    assert t.metrics()["mcrd_kernel_routes_pending"] == 1
    retried = t.metrics()["mcrd_kernel_route_retries_total"]
    poll(lambda: t.metrics()["mcrd_kernel_route_retries_total"], TIMEOUT, "a retry, refused again",
         until=lambda n: n > retried)
    assert EDGE_STATIC not in t.kernel()
    assert t.metrics()["mcrd_kernel_routes_pending"] == 1
    t.hub.ip("route", "add", EDGE_SUBNET, "dev", edge, "proto", "kernel", "scope", "link", "src", EDGE_HUB)
    want = {**EXPECTED, EDGE_STATIC: EDGE_PEER}
    poll(t.kernel, TIMEOUT, "the refused route installed", until=lambda got: got == want)
    poll(lambda: t.metrics()["mcrd_kernel_routes_pending"], TIMEOUT, "nothing pending", until=lambda n: n == 0)
    t.reload(mcr_config(t.lab))
    poll(t.kernel, TIMEOUT, "the static route removed by the reload", until=lambda got: got == EXPECTED)
