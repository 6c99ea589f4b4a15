"""Failures seen at once (MCR-SEMANTICS.md 2.7): a VXC's interface going down, losing its carrier or its address
takes that VXC's sessions down and their routes out of the other peers' RIBs and the hub's kernel at once, and
everything returns when it comes back.

Topology (addresses stay inside the namespaces this module creates)::

    aws (FRR 64512) ----+                +---- azure (BIRD 12076)
                        +--- hub (mcrd) -+
                        +---- onprem (FRR 65010)

The times from the command to the other peers' RIBs are printed (`pytest -s`) and only bounded generously here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
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
    assert_stays,
    bird_config,
    frr_config,
    poll,
)
from tests.lab.test_daemon import Hub

pytestmark = LAB_MARKS

MCR_AS, AWS_AS, AZURE_AS, ONPREM_AS = 133937, 64512, 12076, 65010
AWS_NET, AZURE_NET, ONPREM_NET = "10.10.0.0/16", "10.30.0.0/16", "192.168.0.0/16"
LINKS = {"aws": ("169.254.10.1", "169.254.10.2"), "azure": ("169.254.20.1", "169.254.20.2"),
         "onprem": ("172.16.1.1", "172.16.1.2")}
TIMEOUT = 30.0
BOUND = 5.0  # seconds: a generous bound for "at once" on a loaded machine; the measured figure is printed


def mcr_config(lab: Lab) -> str:
    def vxc(name: str, asn: int, peer_type: str) -> dict[str, Any]:
        local, peer = LINKS[name]
        conn = {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "peerType": peer_type, "holdTime": 90}
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name),
                "vrouter": {"interfaces": [{"ipAddresses": [f"{local}/30"], "bgpConnections": [conn]}]}}

    config = {"mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
              "vxcs": [vxc("aws", AWS_AS, "PRIV_CLOUD"), vxc("azure", AZURE_AS, "PRIV_CLOUD"),
                       vxc("onprem", ONPREM_AS, "NON_CLOUD")]}
    return json.dumps(config, indent=2) + "\n"


@dataclass
class Topology:
    lab: Lab
    hub: Hub
    spokes: dict[str, Netns]
    aws: FrrPeer
    azure: BirdPeer
    onprem: FrrPeer
    state: Path  # the daemon's state directory (ExaBGP's configuration)

    def hub_if(self, name: str) -> str:
        return self.lab.ifname(name)

    def spoke_if(self) -> str:
        return self.lab.ifname("hub")


@pytest.fixture(scope="module")
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    with module_lab("test_failover", request) as lab:
        hub = lab.netns("hub")
        spokes = {name: lab.netns(name) for name in LINKS}
        for name, ns in spokes.items():
            lab.link(hub, name, ns, "hub", [], [f"{LINKS[name][1]}/30"])
        config = lab.make_dir("mcrd") / "mcrd.json"
        config.write_text(mcr_config(lab))
        state = lab.make_dir("mcrd-state")
        proc = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                         "--state-dir", str(state), label="mcrd")
        aws = FrrPeer(spokes["aws"], AWS_AS, "10.0.0.1", frr_config(
            AWS_AS, "10.0.0.1", [FrrNeighbor(LINKS["aws"][0], MCR_AS)], [AWS_NET], hostname="aws",
            graceful_restart=False))
        azure = BirdPeer(spokes["azure"], bird_config(
            AZURE_AS, "10.0.0.2", [BirdNeighbor("mcr", LINKS["azure"][0], MCR_AS)], [AZURE_NET]))
        onprem = FrrPeer(spokes["onprem"], ONPREM_AS, "10.0.0.3", frr_config(
            ONPREM_AS, "10.0.0.3", [FrrNeighbor(LINKS["onprem"][0], MCR_AS)], [ONPREM_NET], hostname="onprem",
            graceful_restart=False))
        topology = Topology(lab, Hub(lab, hub, proc, config, 1), spokes, aws, azure, onprem, state)
        wait_steady(topology)
        yield topology


def learned(peer: FrrPeer | BirdPeer) -> set[str]:
    """The prefixes a peer learned from the MCR."""
    return {p for p, r in peer.routes_for("10.0.0.0/8").items() if r.as_path[:1] == (MCR_AS,)}


EXPECTED = {"aws": {AZURE_NET, ONPREM_NET}, "azure": {AWS_NET, ONPREM_NET}, "onprem": {AWS_NET, AZURE_NET}}


def expected_kernel() -> dict[str, str]:
    return {AWS_NET: LINKS["aws"][1], AZURE_NET: LINKS["azure"][1], ONPREM_NET: LINKS["onprem"][1]}


def wait_learned(name: str, peer: FrrPeer | BirdPeer) -> None:
    poll(lambda: learned(peer), TIMEOUT, f"{name}'s RIB", until=lambda got: got == EXPECTED[name])


def wait_steady(t: Topology) -> None:
    t.aws.wait_established(LINKS["aws"][0], TIMEOUT)
    t.onprem.wait_established(LINKS["onprem"][0], TIMEOUT)
    t.azure.wait_established("mcr", TIMEOUT)
    peers: dict[str, FrrPeer | BirdPeer] = {"aws": t.aws, "azure": t.azure, "onprem": t.onprem}
    for name, peer in peers.items():
        wait_learned(name, peer)
    poll(t.hub.kernel, TIMEOUT, "hub kernel", until=lambda got: got == expected_kernel())


def time_until_aws_gone(t: Topology, action: Callable[[], object]) -> dict[str, float]:
    """Run `action`, then poll fast until AWS's prefix has left azure's and onprem's RIBs and the hub's kernel:
    seconds from the start of `action` to each."""
    start = time.monotonic()
    action()
    pending: dict[str, Callable[[], bool]] = {
        "azure": lambda: AWS_NET not in learned(t.azure),
        "onprem": lambda: AWS_NET not in learned(t.onprem),
        "hub kernel": lambda: AWS_NET not in t.hub.kernel(),
    }
    took: dict[str, float] = {}
    while pending:
        for name, done in list(pending.items()):
            if done():
                took[name] = time.monotonic() - start
                del pending[name]
        assert time.monotonic() - start < TIMEOUT, f"still there after {TIMEOUT} s: {sorted(pending)}"
    return took


def report(what: str, took: dict[str, float]) -> None:
    figures = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in took.items())
    print(f"\n{what}: {figures}")
    assert max(took.values()) < BOUND, f"{what}: {figures}"


def aws_ups(t: Topology) -> int:
    return sum(1 for e in t.hub.events("session_up") if e["peer"] == LINKS["aws"][1])


def check_held_then_back(t: Topology, restore: Callable[[], object]) -> None:
    """While held down the AWS session stays down: ExaBGP's configuration leaves it out (no attempt at all) and the
    hub brings it up no more; after `restore` everything is back exactly as before."""
    exabgp_conf = t.state / "exabgp.conf"
    poll(exabgp_conf.read_text, TIMEOUT, "the AWS neighbor left out of ExaBGP's configuration",
         until=lambda text: f"neighbor {LINKS['aws'][1]} " not in text)
    ups = aws_ups(t)
    assert_stays(lambda: aws_ups(t) == ups, 2.0, "the AWS session came back while held down")
    restore()
    wait_steady(t)
    assert aws_ups(t) == ups + 1


# --- tests ---------------------------------------------------------------------------------------------------------


def test_the_hub_interface_set_down_withdraws_its_routes_at_once_and_up_restores_them(topo: Topology) -> None:
    ifname = topo.hub_if("aws")
    took = time_until_aws_gone(topo, lambda: topo.hub.ns.ip("link", "set", ifname, "down"))
    report(f"ip link set {ifname} down (hub) -> AWS prefix gone", took)
    down = topo.hub.events("interface_down")[-1]
    assert (down["interface"], down["vxc"]) == (ifname, "aws-vxc")
    check_held_then_back(topo, lambda: topo.hub.ns.ip("link", "set", ifname, "up"))
    assert topo.hub.events("interface_up")[-1]["interface"] == ifname


def test_carrier_loss_from_the_peer_side_withdraws_at_once(topo: Topology) -> None:
    aws_end = topo.spoke_if()
    took = time_until_aws_gone(topo, lambda: topo.spokes["aws"].ip("link", "set", aws_end, "down"))
    report("ip link set <aws end> down (peer side, carrier loss on the hub) -> AWS prefix gone", took)
    assert "no carrier" in topo.hub.events("interface_down")[-1]["reason"]
    check_held_then_back(topo, lambda: topo.spokes["aws"].ip("link", "set", aws_end, "up"))


def test_the_local_address_removed_withdraws_at_once(topo: Topology) -> None:
    ifname, address = topo.hub_if("aws"), f"{LINKS['aws'][0]}/30"
    took = time_until_aws_gone(topo, lambda: topo.hub.ns.ip("addr", "del", address, "dev", ifname))
    report("ip addr del <session address> (hub) -> AWS prefix gone", took)
    assert "local address" in topo.hub.events("session_held_down")[-1]["reason"]
    check_held_then_back(topo, lambda: topo.hub.ns.ip("addr", "add", address, "dev", ifname))
