"""Two mcrd nodes joined by an MCR-to-MCR VXC (two metros, a cloud behind each): both connect and both listen, so
their connections collide, and RFC 4271 6.8 must leave exactly one: the one initiated by the higher BGP identifier.
Then routes cross both MCRs (read from the far cloud's own RIB) and packets cross both MCRs' kernels.

Topology (containerlab/two-metro/ is the same design as a lab):

  hosta -- clouda (FRR 64512) -- mcra (mcrd 133937, id 10.255.0.1) == VXC == mcrb (mcrd 65020, id 10.255.0.2)
  10.10.1.10                                                                     -- cloudb (BIRD 12076) -- hostb
                                                                                                          10.30.1.10
The collision is made certain: until both TCP connections between the MCRs are up, mcra drops every BGP segment
that carries data (OPENs included), so each MCR has sent its OPEN on its own connection and accepted the other's
before any OPEN arrives.
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
    Netns,
    assert_stays,
    bird_config,
    frr_config,
    poll,
)
from tests.lab.test_listen import established

pytestmark = LAB_MARKS

A_AS, B_AS, CLOUDA_AS, CLOUDB_AS = 133937, 65020, 64512, 12076
A_ID, B_ID = "10.255.0.1", "10.255.0.2"  # B's is higher: B's connection must survive
A_VXC, B_VXC = "169.254.99.1", "169.254.99.2"
A_CLOUD, CLOUDA = "169.254.10.1", "169.254.10.2"
B_CLOUD, CLOUDB = "169.254.20.1", "169.254.20.2"
NET_A, NET_B = "10.10.0.0/16", "10.30.0.0/16"
TIMEOUT = 30.0
# On mcra, toward port 179 on the VXC: SYNs pass, nothing else. Each connector's handshake completes on its side (the
# SYN-ACK comes back) and it sends its OPEN; the listener never gets the last ACK nor the OPEN: its side stays in
# SYN-RECV, not yet accepted. Once both connections are there, the filter goes and both OPENs arrive together.
BLOCK = (
    "table inet mcl_collide {\n"
    f" chain out {{ type filter hook output priority 0; ip daddr {B_VXC} tcp dport 179 tcp flags & syn == 0 drop; }}\n"
    f" chain in {{ type filter hook input priority 0; ip saddr {B_VXC} tcp dport 179 tcp flags & syn == 0 drop; }}\n"
    "}\n"
)


def vxc_sockets(ns: Netns) -> set[tuple[str, int, str, int]]:
    """mcra's TCP connections with mcrb on port 179, in any state (half-open ones too)."""
    found = set()
    for line in ns.run("ss", "-Htan").stdout.splitlines():
        fields = line.split()
        local, peer = fields[-2].rsplit(":", 1), fields[-1].rsplit(":", 1)
        if peer[0] == B_VXC and "179" in (local[1], peer[1]):
            found.add((local[0], int(local[1]), peer[0], int(peer[1])))
    return found


def mcr_config(lab: Lab, name: str, asn: int, router_id: str, cloud: tuple[str, str, int], vxc: tuple[str, str],
               other_asn: int) -> str:
    def connection(local: str, peer: str, peer_asn: int, peer_type: str) -> dict[str, Any]:
        return {"peerAsn": peer_asn, "localIpAddress": local, "peerIpAddress": peer, "peerType": peer_type,
                "holdTime": 9}

    config = {
        "mcr": {"productName": name, "mcrAsn": asn, "routerId": router_id},
        "vxcs": [
            {"productName": "cloud", "interface": lab.ifname(f"{name}c"), "vrouter": {"interfaces": [{
                "ipAddresses": [f"{cloud[0]}/30"],
                "bgpConnections": [connection(cloud[0], cloud[1], cloud[2], "PRIV_CLOUD")]}]}},
            # An MCR-to-MCR VXC: the other MCR is no cloud (NON_CLOUD), so each MCR passes its cloud's routes on.
            {"productName": "mcr-to-mcr", "interface": lab.ifname(f"{name}v"), "vrouter": {"interfaces": [{
                "ipAddresses": [f"{vxc[0]}/30"],
                "bgpConnections": [connection(vxc[0], vxc[1], other_asn, "NON_CLOUD")]}]}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class TwoMcr:
    lab: Lab
    mcra: Netns
    mcrb: Netns
    clouda: FrrPeer
    cloudb: BirdPeer
    hosta: Netns
    hostb: Netns
    procs: dict[str, Any]

    def session_up(self, node: str, peer: str) -> bool:
        up = False
        for entry in self.lab.json_log(self.procs[node]):
            if entry.get("peer") == peer and entry.get("event") in ("session_up", "session_down"):
                up = entry["event"] == "session_up"
        return up

    def vxc_connections(self) -> set[tuple[str, int, str, int]]:
        return {c for c in established(self.mcra) if c[2] == B_VXC}


@pytest.fixture(scope="module")
def two(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[TwoMcr]:
    with module_lab("test_two_mcr", request) as lab:
        mcra, mcrb = lab.netns("mcra"), lab.netns("mcrb")
        clouda_ns, cloudb_ns = lab.netns("clouda"), lab.netns("cloudb")
        hosta, hostb = lab.netns("hosta"), lab.netns("hostb")
        lab.link(mcra, "mcrav", mcrb, "mcrbv", [], [])  # the VXC: each mcrd configures its own side
        lab.link(mcra, "mcrac", clouda_ns, "mcr", [], [f"{CLOUDA}/30"])
        lab.link(mcrb, "mcrbc", cloudb_ns, "mcr", [], [f"{CLOUDB}/30"])
        lab.link(hosta, "eth0", clouda_ns, "host", ["10.10.1.10/24"], ["10.10.1.1/24"])
        lab.link(hostb, "eth0", cloudb_ns, "host", ["10.30.1.10/24"], ["10.30.1.1/24"])
        hosta.add_route("default", via="10.10.1.1")
        hostb.add_route("default", via="10.30.1.1")
        for ns in (clouda_ns, cloudb_ns):
            ns.enable_forwarding()
        clouda = FrrPeer(clouda_ns, CLOUDA_AS, "10.0.0.10", frr_config(
            CLOUDA_AS, "10.0.0.10", [FrrNeighbor(A_CLOUD, A_AS, hold_time=9)], [NET_A], hostname="clouda",
            graceful_restart=False))
        cloudb = BirdPeer(cloudb_ns, bird_config(CLOUDB_AS, "10.0.0.20",
                                                 [BirdNeighbor("mcr", B_CLOUD, B_AS, hold_time=9)], [NET_B]))
        mcra.run("nft", "-f", "-", input_text=BLOCK)  # until both connections are up (test_a_collision...)
        configs = {
            "mcra": mcr_config(lab, "mcra", A_AS, A_ID, (A_CLOUD, CLOUDA, CLOUDA_AS), (A_VXC, B_VXC), B_AS),
            "mcrb": mcr_config(lab, "mcrb", B_AS, B_ID, (B_CLOUD, CLOUDB, CLOUDB_AS), (B_VXC, A_VXC), A_AS),
        }
        procs = {}
        for name, ns in (("mcra", mcra), ("mcrb", mcrb)):
            d = lab.make_dir(name)
            (d / "mcrd.yaml").write_text(configs[name])
            procs[name] = ns.popen(sys.executable, "-m", "mcrd", "run", "-c", str(d / "mcrd.yaml"), "--log-format",
                                   "json", "--state-dir", str(d), label=name)
        yield TwoMcr(lab, mcra, mcrb, clouda, cloudb, hosta, hostb, procs)


def test_a_collision_leaves_the_connection_of_the_higher_identifier(two: TwoMcr) -> None:
    # Both connections there (each MCR connected, its OPEN sent), neither accepted yet: mcra's filter holds them.
    colliding = poll(lambda: vxc_sockets(two.mcra), TIMEOUT, "both MCRs' connections there",
                     until=lambda found: {c[1] == 179 for c in found} == {True, False})
    mcrbs = {c for c in colliding if c[1] == 179}  # initiated by mcrb: it arrives on mcra's port 179
    two.mcra.run("nft", "delete", "table", "inet", "mcl_collide")
    poll(lambda: two.session_up("mcra", B_VXC) and two.session_up("mcrb", A_VXC), TIMEOUT,
         "the MCR-to-MCR session up on both MCRs")
    # Exactly one survives, and it is mcrb's (the higher identifier) of the two that collided: not a new one. Stock
    # ExaBGP, in OpenSent, dropped its own connection for the other's at both ends: both died, and the session
    # came up, if ever, on a later connection.
    survivors = two.vxc_connections()
    assert survivors == mcrbs, f"collided: {colliding}, established now: {survivors}"
    # And it stays: no second round of collisions, no flap (3 x the 1 s ExaBGP retry, well under the 9 s hold time).
    assert_stays(lambda: two.vxc_connections() == survivors and two.session_up("mcra", B_VXC), 3.0,
                 "the surviving connection changed or the session went down")


def test_routes_cross_both_mcrs_to_the_far_cloud(two: TwoMcr) -> None:
    # Read from each far cloud's own RIB: the other cloud's network, through both MCRs' ASes.
    route = two.clouda.wait_route(NET_B, TIMEOUT)
    assert route.as_path == (A_AS, B_AS, CLOUDB_AS)
    route = two.cloudb.wait_route(NET_A, TIMEOUT)
    assert route.as_path == (B_AS, A_AS, CLOUDA_AS)


def test_packets_cross_both_mcrs_kernels(two: TwoMcr) -> None:
    two.clouda.wait_route(NET_B, TIMEOUT)
    two.cloudb.wait_route(NET_A, TIMEOUT)
    poll(lambda: two.hosta.ping("10.30.1.10"), TIMEOUT, "ping hosta -> hostb across both MCRs")
    assert two.hostb.ping("10.10.1.10")
    # Through the MCRs' kernels: each holds the far cloud's network, from mcrd (protocol 252), via the other MCR.
    for ns, net, via in ((two.mcra, NET_B, B_VXC), (two.mcrb, NET_A, A_VXC)):
        routes = {r["dst"]: r.get("gateway") for r in ns.ip_json("route", "show", "proto", "252")}
        assert routes.get(net) == via, routes
