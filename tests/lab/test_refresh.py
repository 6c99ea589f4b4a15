"""Route refresh and what a session negotiated, proven from the peers' own RIBs and counters (issue 18, items 1, 6).

Topology (all NON_CLOUD, so every peer gets every other peer's prefix)::

    aws (FRR 64512, 10.10/16) ---+                +--- bird (BIRD 64700, 10.70/16)
                                 +--- hub (mcrd) -+
                                 |                +--- oldbird (BIRD 64600, `capabilities off`, 10.60/16)

- FRR and BIRD ask for a ROUTE-REFRESH (`clear bgp ... soft in`, `birdc reload in`): with no copy of what mcrd sent
  (FRR keeps none without `soft-reconfiguration inbound`, BIRD none without `import table`), routes their import
  filter refused before can only appear after the change if mcrd sends its Adj-RIB-Out again. The session stays up.
- The same over an IPv6 session (the MCR's static IPv6 route): the answer between an IPv6 BoRR and EoRR.
- `oldbird` sends an OPEN without any capability (no Multiprotocol, no 4-octet AS): it speaks IPv4 unicast only and
  must get IPv4 unicast routes, as FRR and BIRD would send it; the looking glass counts what it really holds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import (
    BirdNeighbor,
    BirdPeer,
    FrrNeighbor,
    FrrPeer,
    Lab,
    assert_stays,
    bird_config,
    frr_config,
    poll,
)
from tests.lab.test_daemon import Hub

pytestmark = LAB_MARKS

MCR_AS, AWS_AS, OLD_AS, BIRD_AS = 133937, 64512, 64600, 64700
OLD_LOCAL_AS = 65100  # the MCR's AS towards oldbird (`localAsn`): without 4-octet AS support BIRD takes no 133937
AWS_NET, OLD_NET, BIRD_NET = "10.10.0.0/16", "10.60.0.0/16", "10.70.0.0/16"
TIMEOUT = 30.0
LINKS = {  # hub side, peer side
    "aws": ("169.254.10.1", "169.254.10.2"),
    "oldbird": ("169.254.60.1", "169.254.60.2"),
    "bird": ("169.254.70.1", "169.254.70.2"),
}
ASNS = {"aws": AWS_AS, "oldbird": OLD_AS, "bird": BIRD_AS}
AWS6 = ("2001:db8:a::1", "2001:db8:a::2")  # an IPv6 session with aws too; the MCR sends it a static route
STATIC6 = "2001:db8:99::/48"
# FRR's inbound policy: at first it refuses the BIRD prefix mcrd sends; `clear ... soft in` after the change can only
# bring it in if mcrd answers the ROUTE-REFRESH (no soft-reconfiguration inbound: FRR keeps no copy).
AWS_IN_REFUSE = ("ip prefix-list bird-net seq 5 permit 10.70.0.0/16",
                 "route-map from-mcr deny 10", " match ip address prefix-list bird-net",
                 "route-map from-mcr permit 20")
# BIRD's: refuses the AWS prefix at first (its filter is changed by `configure soft`, which reloads nothing).
BIRD_IN_REFUSE = "where net != 10.10.0.0/16"


@dataclass
class Topo:
    lab: Lab
    hub: Hub
    aws: FrrPeer
    oldbird: BirdPeer
    bird: BirdPeer

    def lg(self, view: str) -> dict[str, dict[str, Any]]:
        """`mcrd lg VIEW --json` in the hub's namespace, by peer address."""
        out = self.hub.ns.run(sys.executable, "-m", "mcrd", "lg", view, "--json").stdout
        return {row["sessionId"]: row for row in json.loads(out)}

    def metric(self, name: str, session: str) -> float:
        code = ("import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/metrics', timeout=5)"
                ".read().decode())")
        text = self.hub.ns.run(sys.executable, "-c", code).stdout
        for line in text.splitlines():
            if line.startswith(f"{name}{{") and f'session="{session}"' in line:
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name} for {session} in /metrics")


def mcr_config(lab: Lab) -> str:
    def connection(name: str, local: str, peer: str) -> dict[str, Any]:
        return {"peerAsn": ASNS[name], "localIpAddress": local, "peerIpAddress": peer, "peerType": "NON_CLOUD",
                "holdTime": 9, **({"localAsn": OLD_LOCAL_AS} if name == "oldbird" else {})}

    def vxc(name: str) -> dict[str, Any]:
        local, peer = LINKS[name]
        interface: dict[str, Any] = {"ipAddresses": [f"{local}/30"], "bgpConnections": [connection(name, local, peer)]}
        if name == "aws":
            interface["ipAddresses"].append(f"{AWS6[0]}/126")
            interface["bgpConnections"].append(connection(name, *AWS6))
            interface["ipRoutes"] = [{"prefix": STATIC6, "nextHop": AWS6[1]}]
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

    config = {"mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1", "kernelRoutes": False},
              "vxcs": [vxc(name) for name in LINKS]}
    return json.dumps(config, indent=2) + "\n"


@pytest.fixture(scope="module")
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topo]:
    with module_lab("test_refresh", request) as lab:
        hub = lab.netns("hub")
        spokes = {name: lab.netns(name) for name in LINKS}
        for name, ns in spokes.items():
            lab.link(hub, name, ns, "hub", [], [f"{LINKS[name][1]}/30"] + ([f"{AWS6[1]}/126"] if name == "aws" else []))
        config = lab.make_dir("mcrd") / "mcrd.yaml"
        config.write_text(mcr_config(lab))
        proc = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                         "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
        aws = FrrPeer(spokes["aws"], AWS_AS, "10.0.0.1", frr_config(
            AWS_AS, "10.0.0.1", [FrrNeighbor(LINKS["aws"][0], MCR_AS, hold_time=9,
                                             extra=(f"neighbor {LINKS['aws'][0]} route-map from-mcr in",)),
                                 FrrNeighbor(AWS6[0], MCR_AS, hold_time=9)],
            [AWS_NET], hostname="aws", graceful_restart=False, extra="\n".join(AWS_IN_REFUSE)))
        oldbird = BirdPeer(spokes["oldbird"], bird_config(
            OLD_AS, "10.0.0.6", [BirdNeighbor("mcr", LINKS["oldbird"][0], OLD_LOCAL_AS, hold_time=9,
                                              extra=("capabilities off;",))],
            [OLD_NET], kernel_export=False))
        bird = BirdPeer(spokes["bird"], bird_config(
            BIRD_AS, "10.0.0.7", [BirdNeighbor("mcr", LINKS["bird"][0], MCR_AS, hold_time=9,
                                               import_filter=BIRD_IN_REFUSE)],
            [BIRD_NET], kernel_export=False))
        t = Topo(lab, Hub(lab, hub, proc, config, 1), aws, oldbird, bird)
        aws.wait_established(LINKS["aws"][0], TIMEOUT)
        aws.wait_established(AWS6[0], TIMEOUT)
        oldbird.wait_established("mcr", TIMEOUT)
        bird.wait_established("mcr", TIMEOUT)
        yield t


def from_mcr(peer: FrrPeer | BirdPeer, mcr_as: int = MCR_AS) -> set[str]:
    routes = peer.routes("ipv4") if isinstance(peer, FrrPeer) else peer.routes("master4")
    return {prefix for prefix, route in routes.items() if route.as_path[:1] == (mcr_as,)}


def old_from_mcr(t: Topo) -> set[str]:
    return from_mcr(t.oldbird, OLD_LOCAL_AS)


def frr_neighbor(t: Topo, hub: str = LINKS["aws"][0]) -> dict[str, Any]:
    neighbor: dict[str, Any] = t.aws.show_json(f"show bgp neighbors {hub} json")[hub]
    return neighbor


# --- item 1: a peer without capabilities ---------------------------------------------------------------------------


def test_a_peer_without_capabilities_gets_ipv4_unicast_in_its_own_table(topo: Topo) -> None:
    # BIRD's own table: the other two spokes' prefixes, from the MCR.
    poll(lambda: old_from_mcr(topo), TIMEOUT, "oldbird's routes from the MCR",
         until=lambda got: got == {AWS_NET, BIRD_NET})


def test_the_looking_glass_counts_what_the_peer_without_capabilities_really_holds(topo: Topo) -> None:
    old = LINKS["oldbird"][1]
    poll(lambda: topo.lg("sessions")[old]["prefixesOut"], TIMEOUT, "oldbird's prefixesOut",
         until=lambda n: n == len(old_from_mcr(topo)) == 2)
    session = topo.lg("sessions")[old]
    assert (session["status"], session["addressFamilies"], session["routeRefresh"], session["stateReason"]) == (
        "UP", ["IPv4"], "NONE", "")
    advertised = topo.hub.ns.run(sys.executable, "-m", "mcrd", "lg", "neighbor", old, "advertised", "--json").stdout
    assert {row["prefix"] for row in json.loads(advertised)} == old_from_mcr(topo)
    # And mcrd learned from it: the other spokes hold its prefix.
    poll(lambda: OLD_NET in from_mcr(topo.aws) and OLD_NET in from_mcr(topo.bird), TIMEOUT, "10.60/16 at the spokes",
         until=bool)


# --- item 6: route refresh -----------------------------------------------------------------------------------------


def test_frr_clear_soft_in_is_answered_without_a_reset_and_brings_routes_its_old_policy_refused(topo: Topo) -> None:
    hub = LINKS["aws"][0]
    poll(lambda: from_mcr(topo.aws), TIMEOUT, "aws's routes from the MCR", until=lambda got: got == {OLD_NET})
    before = frr_neighbor(topo)
    # mcrd offers route refresh and enhanced route refresh (RFC 7313), and FRR sees both.
    capabilities = before["neighborCapabilities"]
    assert "advertised" in str(capabilities.get("routeRefresh", "")).lower(), capabilities
    assert "advertised" in str(capabilities.get("enhancedRouteRefresh", "")).lower(), capabilities
    established = before["connectionsEstablished"]
    answered = topo.metric("mcrd_bgp_route_refreshes_total", LINKS["aws"][1])

    topo.aws.configure("no route-map from-mcr deny 10")
    done = topo.aws.vtysh(f"clear bgp ipv4 unicast {hub} soft in")
    result = done.stdout + done.stderr
    assert "refresh capability" not in result, result  # FRR 8.4 refuses a peer without it
    poll(lambda: from_mcr(topo.aws), TIMEOUT, "aws's routes after the refresh",
         until=lambda got: got == {OLD_NET, BIRD_NET})
    after = frr_neighbor(topo)
    assert after["connectionsEstablished"] == established  # no reset
    assert after["bgpState"] == "Established"
    sent, received = before["messageStats"], after["messageStats"]
    assert received["routeRefreshSent"] == sent["routeRefreshSent"] + 1, received
    assert received["updatesRecv"] > sent["updatesRecv"], received  # the answer
    # Enhanced route refresh (RFC 7313): the answer came between a BoRR and an EoRR, two ROUTE-REFRESH messages.
    assert received["routeRefreshRecv"] == sent["routeRefreshRecv"] + 2, received
    assert topo.metric("mcrd_bgp_route_refreshes_total", LINKS["aws"][1]) == answered + 1
    [logged] = [e for e in topo.hub.events("bgp_route_refresh") if e["peer"] == LINKS["aws"][1]][-1:]
    assert (logged["enhanced"], logged["prefixes"]) == (True, 2)
    # The EoRR came after the routes: FRR dropped none of them as stale (it would at once).
    # FRR drops what the EoRR left stale at once; 2 s is many times the answer's round trip here.
    assert_stays(lambda: from_mcr(topo.aws) == {OLD_NET, BIRD_NET}, 2.0,
                 "a route vanished from aws after the enhanced refresh")
    assert topo.hub.events("exabgp_command_failed") == []  # the BoRR and EoRR commands were understood


def test_an_ipv6_session_gets_its_refresh_between_an_ipv6_borr_and_eorr(topo: Topo) -> None:
    poll(lambda: STATIC6 in topo.aws.routes("ipv6"), TIMEOUT, "aws's IPv6 route from the MCR", until=bool)
    before = frr_neighbor(topo, AWS6[0])
    answered = topo.metric("mcrd_bgp_route_refreshes_total", AWS6[1])
    topo.aws.vtysh(f"clear bgp ipv6 unicast {AWS6[0]} soft in")
    poll(lambda: topo.metric("mcrd_bgp_route_refreshes_total", AWS6[1]), TIMEOUT, "the IPv6 refresh answered",
         until=lambda n: n == answered + 1)
    poll(lambda: frr_neighbor(topo, AWS6[0])["messageStats"], TIMEOUT, "FRR got the answer",
         until=lambda got: got["routeRefreshRecv"] == before["messageStats"]["routeRefreshRecv"] + 2
         and got["updatesRecv"] > before["messageStats"]["updatesRecv"])
    after = frr_neighbor(topo, AWS6[0])
    assert (after["bgpState"], after["connectionsEstablished"]) == ("Established", before["connectionsEstablished"])
    assert STATIC6 in topo.aws.routes("ipv6")
    assert topo.hub.events("exabgp_command_failed") == []


def test_birdc_reload_in_is_answered_and_brings_routes_its_old_filter_refused(topo: Topo) -> None:
    bird_peer = LINKS["bird"][1]
    poll(lambda: from_mcr(topo.bird), TIMEOUT, "bird's routes from the MCR", until=lambda got: got == {OLD_NET})
    answered = topo.metric("mcrd_bgp_route_refreshes_total", bird_peer)
    # A new import filter: BIRD keeps no copy of what it refused (no import table), so it asks for a refresh (and
    # would restart the session if the MCR did not offer route refresh).
    topo.bird.reconfigure(topo.bird.config_text.replace(f"import {BIRD_IN_REFUSE};", "import all;"))
    poll(lambda: from_mcr(topo.bird), TIMEOUT, "bird's routes after the refresh",
         until=lambda got: got == {AWS_NET, OLD_NET})
    assert topo.metric("mcrd_bgp_route_refreshes_total", bird_peer) == answered + 1
    # `birdc reload in` asks again: answered, the session never restarted.
    topo.bird.birdc("reload", "in", "mcr")
    poll(lambda: topo.metric("mcrd_bgp_route_refreshes_total", bird_peer), TIMEOUT, "the second refresh answered",
         until=lambda n: n == answered + 2)
    assert topo.lg("sessions")[bird_peer]["status"] == "UP"
    assert [e["peer"] for e in topo.hub.events("session_up")].count(bird_peer) == 1
    assert from_mcr(topo.bird) == {AWS_NET, OLD_NET}
