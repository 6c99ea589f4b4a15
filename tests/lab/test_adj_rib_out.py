"""Every peer ends holding exactly what mcrd says it sends it (its Adj-RIB-Out), whatever order sessions come up in.

Topology (namespaces of one test)::

    aws (FRR 64512) --- hub (mcrd, API on 127.0.0.1:8080 inside the hub) --- azure (BIRD 12076)

Both peers originate 10.10.0.0/16, Azure with a longer AS path. Azure comes up first, so when AWS's session comes up
the hub announces Azure's 10.10/16 to AWS; AWS's own UPDATE then makes AWS's path the best and the hub withdraws
10.10/16 from AWS. When both reach ExaBGP before its first UPDATE to AWS, stock ExaBGP 5.0.15 sent the announcement
and dropped the withdrawal, and AWS kept 10.10/16 via the hub for good (exabgp_launch.py, fix 8). The test makes
that case certain: the daemon is stopped (SIGSTOP) while AWS's session comes up and AWS sends its routes, so that it
reads the session's `up` and AWS's UPDATE together and sends the announcement and the withdrawal in one write.

The second test checks the same invariant under churn: three peers come up in a random order and announce, withdraw
and reset sessions at random without waiting; in the end every peer holds exactly the hub's Adj-RIB-Out for it, that
is what the decision process predicts, and the hub's kernel holds the best routes. `MCRD_LAB_SEED` picks the seeds.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import LAB_MARKS
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
    poll,
)

pytestmark = LAB_MARKS

MCR_AS, AWS_AS, AZURE_AS = 133937, 64512, 12076
HUB_AWS, AWS_IP, HUB_AZURE, AZURE_IP = "169.254.10.1", "169.254.10.2", "169.254.20.1", "169.254.20.2"
VPC, VPC2, VNET = "10.10.0.0/16", "10.20.0.0/16", "10.30.0.0/16"
API = "http://127.0.0.1:8080"
LG = f"{API}/v2/product/mcr2/lab-mcr/lookingGlass"
NSCLIENT = str(Path(__file__).parents[1] / "lg" / "nsclient.py")
TIMEOUT = 30.0


def mcr_config(lab: Lab, peers: list[tuple[str, str, str, int]]) -> dict[str, Any]:
    """`peers`: (name, hub address, peer address, peer AS), one VXC each."""
    def vxc(name: str, hub: str, peer: str, asn: int) -> dict[str, Any]:
        conn = {"peerAsn": asn, "localIpAddress": hub, "peerIpAddress": peer, "holdTime": 9}
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name),
                "vrouter": {"interfaces": [{"ipAddresses": [f"{hub}/30"], "bgpConnections": [conn]}]}}

    return {"mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
            "api": {"listen": "127.0.0.1:8080"},
            "vxcs": [vxc(*peer) for peer in peers]}


@dataclass
class Hub:
    ns: Netns
    proc: Any

    def data(self, path: str) -> Any:
        out = self.ns.run(sys.executable, NSCLIENT, "GET", LG + path).stdout
        answer = json.loads(out.strip().splitlines()[-1])
        assert answer["status"] == 200, answer
        return json.loads(answer["body"])["data"]

    def advertised(self, peer: str) -> set[str]:
        """The prefixes mcrd's looking glass says it sends `peer` (its Adj-RIB-Out)."""
        return {row["prefix"] for row in self.data(f"/bgpSessions/{peer}/advertised")}

    def best_from(self, prefix: str) -> str | None:
        """The next hop of the hub's best route for `prefix`."""
        return next((row["nextHop"] for row in self.data(f"/routes?ip={prefix}") if row["prefix"] == prefix), None)

    def unread_from(self, peer: str) -> int | None:
        """Bytes the peer sent that the hub's BGP speaker has not read yet (Recv-Q of the session's socket)."""
        out = self.ns.run("ss", "-tnH", "state", "established", "dst", peer).stdout.split()
        return int(out[0]) if out else None


def start_hub(lab: Lab, peers: list[tuple[str, str, str, int]]) -> Hub:
    hub = lab.netns("hub")
    config = lab.make_dir("mcrd") / "mcrd.json"
    config.write_text(json.dumps(mcr_config(lab, peers), indent=2))
    proc = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                     "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
    return Hub(hub, proc)


def updates_sent(frr: FrrPeer, neighbor: str) -> int:
    entry = frr.show_json(f"show bgp neighbors {neighbor}").get(neighbor, {})
    return int(entry.get("messageStats", {}).get("updatesSent", 0))


def test_a_withdrawal_right_after_the_session_comes_up_reaches_the_peer(lab: Lab) -> None:
    hub = start_hub(lab, [("aws", HUB_AWS, AWS_IP, AWS_AS), ("azure", HUB_AZURE, AZURE_IP, AZURE_AS)])
    aws_ns, azure_ns = lab.netns("aws"), lab.netns("azure")
    lab.link(hub.ns, "aws", aws_ns, "hub", [], [f"{AWS_IP}/30"])
    lab.link(hub.ns, "azure", azure_ns, "hub", [], [f"{AZURE_IP}/30"])
    azure = BirdPeer(azure_ns, bird_config(
        AZURE_AS, "10.0.0.2", [BirdNeighbor("mcr", HUB_AZURE, MCR_AS, hold_time=9)],
        [VNET, BirdStatic(VPC, as_path_prepend=(AZURE_AS, AZURE_AS))]))
    azure.wait_established("mcr", TIMEOUT)
    # Azure's 10.10/16 is the hub's best before AWS comes up.
    poll(lambda: hub.best_from(VPC), TIMEOUT, "the hub's best 10.10/16 is Azure's", until=lambda got: got == AZURE_IP,
         ignore=(AssertionError,))
    os.kill(hub.proc.pid, signal.SIGSTOP)
    try:
        aws = FrrPeer(aws_ns, AWS_AS, "10.0.0.1", frr_config(
            AWS_AS, "10.0.0.1", [FrrNeighbor(HUB_AWS, MCR_AS, hold_time=9)], [VPC, VPC2], hostname="aws",
            graceful_restart=False))
        aws.wait_established(HUB_AWS, TIMEOUT)
        # AWS sent its routes and ExaBGP read them (and so passed them on towards the stopped daemon).
        poll(lambda: (updates_sent(aws, HUB_AWS), hub.unread_from(AWS_IP)), TIMEOUT, "AWS's UPDATE read by ExaBGP",
             until=lambda got: got[0] >= 1 and got[1] == 0)
    finally:
        os.kill(hub.proc.pid, signal.SIGCONT)
    # The hub's view settles: AWS's own 10.10/16 wins, so AWS is sent Azure's VNet only...
    poll(lambda: hub.advertised(AWS_IP), TIMEOUT, "the hub sends AWS the VNet only",
         until=lambda got: got == {VNET}, ignore=(AssertionError,))
    poll(lambda: hub.advertised(AZURE_IP), TIMEOUT, "the hub sends Azure AWS's two VPCs",
         until=lambda got: got == {VPC, VPC2}, ignore=(AssertionError,))
    # ... and the peers hold exactly that: AWS without 10.10/16 via the hub.
    poll(lambda: set(aws.routes("ipv4", neighbor=HUB_AWS)), TIMEOUT, "AWS holds exactly what the hub sends it",
         until=lambda got: got == {VNET})
    poll(lambda: set(azure.routes("master4", protocol="mcr")), TIMEOUT, "Azure holds exactly what the hub sends it",
         until=lambda got: got == {VPC, VPC2})


# --- the invariant under churn -------------------------------------------------------------------------------------

POOL = [f"10.{n}.0.0/16" for n in range(1, 7)]
SEEDS = [int(seed) for seed in os.environ.get("MCRD_LAB_SEED", "1,2").split(",")]


@dataclass
class Spoke:
    """A peer of the churn test: FRR or BIRD, with the prefixes it originates. `prepend` makes AS paths of distinct
    lengths, so the best path for a prefix is the one of the peer with the shortest (no tie to break)."""
    name: str
    hub_ip: str
    ip: str
    asn: int
    prepend: tuple[int, ...]
    peer: FrrPeer | BirdPeer | None = None
    originated: set[str] = field(default_factory=set)

    def start(self, ns: Netns) -> None:
        if self.name.startswith("frr"):
            self.peer = FrrPeer(ns, self.asn, "10.0.0.1", frr_config(
                self.asn, "10.0.0.1", [FrrNeighbor(self.hub_ip, MCR_AS, hold_time=9)], hostname=self.name,
                graceful_restart=False))
        else:
            self.peer = BirdPeer(ns, bird_config(self.asn, "10.0.0.2", [
                BirdNeighbor("mcr", self.hub_ip, MCR_AS, hold_time=9)], [], kernel_export=False))

    def toggle(self, prefix: str) -> None:
        assert self.peer is not None
        if prefix in self.originated:
            self.originated.discard(prefix)
            self.peer.withdraw(prefix)
        else:
            self.originated.add(prefix)
            self.peer.announce(prefix, as_path_prepend=self.prepend)

    def reset(self) -> None:
        """Reset the BGP session from the peer's side (it comes back by itself)."""
        if isinstance(self.peer, FrrPeer):
            self.peer.vtysh(f"clear bgp {self.hub_ip}")
        elif isinstance(self.peer, BirdPeer):
            self.peer.birdc("restart", "mcr")

    def from_hub(self) -> set[str]:
        if isinstance(self.peer, FrrPeer):
            return set(self.peer.routes("ipv4", neighbor=self.hub_ip))
        assert isinstance(self.peer, BirdPeer)
        return set(self.peer.routes("master4", protocol="mcr"))


def _expected(spokes: list[Spoke]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """What the hub should send each spoke and install in its kernel: for each prefix the best is the originator
    with the shortest AS path; it goes to every other spoke (MCR-SEMANTICS.md 2.3), and to the kernel via that
    spoke."""
    best: dict[str, Spoke] = {}
    for spoke in sorted(spokes, key=lambda s: len(s.prepend), reverse=True):
        for prefix in spoke.originated:
            best[prefix] = spoke
    out = {spoke.ip: {p for p, b in best.items() if b is not spoke} for spoke in spokes}
    return out, {p: b.ip for p, b in best.items()}


def _kernel(hub: Hub) -> dict[str, str]:
    return {r["dst"]: r.get("gateway", "") for r in hub.ns.ip_json("-4", "route", "show", "proto", "252")}


@pytest.mark.parametrize("seed", SEEDS)
def test_after_any_churn_every_peer_holds_what_the_hub_advertises_it(lab: Lab, seed: int) -> None:
    rng = random.Random(seed)
    spokes = [Spoke("frr1", "169.254.1.1", "169.254.1.2", 64512, ()),
              Spoke("frr2", "169.254.2.1", "169.254.2.2", 64513, (64513,)),
              Spoke("bird3", "169.254.3.1", "169.254.3.2", 12076, (12076, 12076))]
    hub = start_hub(lab, [(s.name, s.hub_ip, s.ip, s.asn) for s in spokes])
    namespaces = {}
    for spoke in spokes:
        namespaces[spoke.name] = lab.netns(spoke.name)
        lab.link(hub.ns, spoke.name, namespaces[spoke.name], "hub", [], [f"{spoke.ip}/30"])
    # Sessions come up in a random order while the peers already originate and change routes.
    for spoke in rng.sample(spokes, len(spokes)):
        spoke.start(namespaces[spoke.name])
        for prefix in rng.sample(POOL, rng.randint(1, 4)):
            spoke.toggle(prefix)
    for _ in range(24):
        spoke = rng.choice(spokes)
        if rng.random() < 0.1:
            spoke.reset()
        else:
            spoke.toggle(rng.choice(POOL))
    out, kernel = _expected(spokes)
    what = f"(seed {seed}; originated {[(s.name, sorted(s.originated)) for s in spokes]})"
    for spoke in spokes:
        poll(functools.partial(hub.advertised, spoke.ip), TIMEOUT, f"the hub advertises {spoke.name} {what}",
             until=out[spoke.ip].__eq__, ignore=(AssertionError,))
    for spoke in spokes:
        poll(spoke.from_hub, TIMEOUT, f"{spoke.name} holds what the hub advertises it {what}",
             until=out[spoke.ip].__eq__)
    poll(lambda: _kernel(hub), TIMEOUT, f"the hub's kernel holds the best routes {what}",
         until=lambda got: got == kernel)
