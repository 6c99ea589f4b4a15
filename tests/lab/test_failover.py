"""Failures seen at once (docs/MCR-SEMANTICS.md 2.7): a VXC's interface going down, losing its carrier or its address
takes that VXC's sessions down and their routes out of the other peers' RIBs and the hub's kernel at once, and
everything returns when it comes back. BFD (every connection has `bfdEnabled`): a silent failure (the peer's packets
dropped by nft in its namespace, the link stays up) takes the BGP session down within the detection time, and it
comes back only once BFD is Up again; a peer that runs no BFD keeps its session.

Topology (addresses stay inside the namespaces this module creates)::

    aws (FRR 64512, bfdd, neighbor bfd) --+                +-- azure (BIRD 12076, protocol bfd, bfd on)
                                          +--- hub (mcrd) -+
                                          +-- onprem (FRR 65010, no BFD)

The times from the command to the other peers' RIBs are printed (`pytest -s`) and only bounded generously here.
"""

from __future__ import annotations

import datetime
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcrd.bgp.pool import process_of
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


def mcr_config(lab: Lab, aws_bfd: dict[str, int] | None = None) -> str:
    """`aws_bfd`: the AWS interface's `bfd` timers (default: none given, Megaport's 300/300/3)."""

    def vxc(name: str, asn: int, peer_type: str) -> dict[str, Any]:
        local, peer = LINKS[name]
        conn = {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "peerType": peer_type, "holdTime": 90,
                "bfdEnabled": True}
        interface: dict[str, Any] = {"ipAddresses": [f"{local}/30"], "bgpConnections": [conn]}
        if name == "aws" and aws_bfd:
            interface["bfd"] = aws_bfd
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

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

    def exabgp_conf(self, peer: str) -> str:
        """The configuration of the ExaBGP process that has the session to `peer`."""
        processes = self.hub.exabgp_processes
        local = next(hub for hub, far in LINKS.values() if far == peer)  # the pool splits by local address
        folder = self.state if processes == 1 else self.state / f"exabgp{process_of(local, processes)}"
        return (folder / "exabgp.conf").read_text()


@pytest.fixture(scope="module", params=[1, 2], ids=["1-exabgp", "2-exabgp"])
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    """Twice: with one ExaBGP process, and with the sessions split over two (a hold reloads only the process that
    has the session)."""
    processes: int = request.param
    with module_lab("test_failover", request) as lab:
        hub = lab.netns("hub")
        spokes = {name: lab.netns(name) for name in LINKS}
        for name, ns in spokes.items():
            lab.link(hub, name, ns, "hub", [], [f"{LINKS[name][1]}/30"])
        config = lab.make_dir("mcrd") / "mcrd.json"
        config.write_text(mcr_config(lab))
        state = lab.make_dir("mcrd-state")
        proc = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                         "--state-dir", str(state), "--exabgp-processes", str(processes), label="mcrd")
        aws_hub = LINKS["aws"][0]
        aws = FrrPeer(spokes["aws"], AWS_AS, "10.0.0.1", frr_config(
            AWS_AS, "10.0.0.1", [FrrNeighbor(aws_hub, MCR_AS, extra=(f"neighbor {aws_hub} bfd",))], [AWS_NET],
            hostname="aws", graceful_restart=False), bfdd="")
        azure = BirdPeer(spokes["azure"], bird_config(
            AZURE_AS, "10.0.0.2", [BirdNeighbor("mcr", LINKS["azure"][0], MCR_AS, extra=("bfd on;",))], [AZURE_NET],
            extra='protocol bfd {\n  interface "*" { interval 300 ms; multiplier 3; };\n}'))
        onprem = FrrPeer(spokes["onprem"], ONPREM_AS, "10.0.0.3", frr_config(
            ONPREM_AS, "10.0.0.3", [FrrNeighbor(LINKS["onprem"][0], MCR_AS)], [ONPREM_NET], hostname="onprem",
            graceful_restart=False))
        topology = Topology(lab, Hub(lab, hub, proc, config, processes), spokes, aws, azure, onprem, state)
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
    poll(lambda: t.exabgp_conf(LINKS["aws"][1]), TIMEOUT, "the AWS neighbor left out of ExaBGP's configuration",
         until=lambda text: f"neighbor {LINKS['aws'][1]} " not in text)
    ups = aws_ups(t)
    assert_stays(lambda: aws_ups(t) == ups, 2.0, "the AWS session came back while held down")
    restore()
    wait_steady(t)
    # Exactly once: mcrd connects and FRR connects too when the session returns (mcrd listens), and that collision is
    # resolved before either connection is Established (exabgp_listen.py), so no second up.
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


# --- BFD -----------------------------------------------------------------------------------------------------------


def lg(t: Topology, view: str) -> list[dict[str, Any]]:
    """`mcrd lg VIEW --json` in the hub's namespace (the daemon's API listens on its loopback)."""
    out = t.hub.ns.run(sys.executable, "-m", "mcrd", "lg", view, "--json").stdout
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def by_peer(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["sessionId"]: row for row in rows}


def test_bfd_is_up_with_frr_and_bird_and_shown_in_the_looking_glass(topo: Topology) -> None:
    aws, azure, onprem = (LINKS[n][1] for n in ("aws", "azure", "onprem"))
    poll(lambda: by_peer(lg(topo, "bfd")), TIMEOUT, "BFD Up with FRR and BIRD",
         until=lambda rows: rows[aws]["status"] == rows[azure]["status"] == "UP")
    bfd = by_peer(lg(topo, "bfd"))
    assert (bfd[aws]["txInterval"], bfd[aws]["rxInterval"], bfd[aws]["detectionTime"]) == (300, 300, 900)
    sessions = by_peer(lg(topo, "sessions"))
    assert {p: (s["status"], s["bfdStatus"]) for p, s in sessions.items()} == {
        aws: ("UP", "UP"), azure: ("UP", "UP"), onprem: ("UP", "DOWN")}
    poll(topo.aws.bfd_peers, TIMEOUT, "FRR's own BFD view", until=lambda v: v[LINKS["aws"][0]]["status"] == "up")


def test_a_peer_without_bfd_keeps_its_session_without_flapping(topo: Topology) -> None:
    onprem = LINKS["onprem"][1]
    downs = [e for e in topo.hub.events("session_down") if e["peer"] == onprem]
    assert_stays(lambda: by_peer(lg(topo, "bfd"))[onprem]["status"] == "DOWN", 3.0, "BFD with onprem came up")
    assert [e for e in topo.hub.events("session_down") if e["peer"] == onprem] == downs
    assert by_peer(lg(topo, "bfd"))[onprem]["transitions"] <= 1  # AdminDown -> Down at most, no flapping
    assert [e["peer"] for e in topo.hub.events("bfd_not_up")].count(onprem) == 1  # said once


def drop_hub_traffic(ns: Netns, hub_address: str) -> None:
    """A silent failure: the peer's namespace drops everything to and from the hub; the link stays up."""
    ruleset = f"""table inet mclfail {{
  chain in {{ type filter hook input priority 0; ip saddr {hub_address} drop; }}
  chain out {{ type filter hook output priority 0; ip daddr {hub_address} drop; }}
}}
"""
    ns.run("nft", "-f", "-", input_text=ruleset)  # one transaction: the failure starts at one instant


def reload(t: Topology, text: str) -> None:
    count = len(t.hub.events("config_reloaded"))
    t.hub.config.write_text(text)
    t.hub.proc.send_signal(signal.SIGHUP)
    poll(lambda: len(t.hub.events("config_reloaded")), TIMEOUT, "the daemon handled SIGHUP",
         until=lambda n: n > count)


def test_a_silent_failure_takes_bgp_down_within_the_detection_time_and_bfd_brings_it_back(topo: Topology) -> None:
    aws = LINKS["aws"][1]
    detection = by_peer(lg(topo, "bfd"))[aws]["detectionTime"] / 1000
    wall = time.time()
    took = time_until_aws_gone(topo, lambda: drop_hub_traffic(topo.spokes["aws"], LINKS["aws"][0]))
    down = [e for e in topo.hub.events("session_down") if e["peer"] == aws][-1]
    assert down["reason"] == "BFD down (CONTROL_DETECTION_TIME_EXPIRED)"
    at = datetime.datetime.fromisoformat(down["timestamp"].replace("Z", "+00:00")).timestamp()
    took = {"hub BGP down": at - wall, **took}
    report(f"nft drop on the AWS side (detection time {detection * 1000:.0f} ms) -> AWS prefix gone", took)
    assert by_peer(lg(topo, "sessions"))[aws]["status"] == "DOWN"
    # A reload keeps the hold: the AWS neighbor stays out of ExaBGP's configuration.
    reload(topo, topo.hub.config.read_text())
    assert f"neighbor {aws} " not in topo.exabgp_conf(aws)
    assert f"neighbor {LINKS['azure'][1]} " in topo.exabgp_conf(LINKS["azure"][1])
    ups = aws_ups(topo)
    topo.spokes["aws"].run("nft", "delete", "table", "inet", "mclfail")
    wait_steady(topo)
    assert aws_ups(topo) == ups + 1  # exactly once: see check_held_then_back
    bfd_up = [e for e in topo.hub.events("bfd_state") if e["peer"] == aws and e["new"] == "Up"][-1]
    bgp_up = [e for e in topo.hub.events("session_up") if e["peer"] == aws][-1]
    assert bfd_up["timestamp"] < bgp_up["timestamp"]  # BGP only once BFD was Up again


def test_changed_timers_are_negotiated_on_sighup_without_touching_other_sessions(topo: Topology) -> None:
    azure = LINKS["azure"][1]
    before = by_peer(lg(topo, "bfd"))[azure]["transitions"]
    ups = len(topo.hub.events("session_up"))
    reload(topo, mcr_config(topo.lab, {"txInterval": 500, "rxInterval": 600, "multiplier": 5}))
    hub = LINKS["aws"][0]
    poll(lambda: topo.aws.bfd_peers()[hub], TIMEOUT, "FRR did not see the new timers",
         until=lambda v: (v["remote-transmit-interval"], v["remote-receive-interval"], v["remote-detect-multiplier"])
         == (500, 600, 5))
    poll(lambda: by_peer(lg(topo, "bfd"))[LINKS["aws"][1]], TIMEOUT, "hub: timers not agreed",
         until=lambda row: (row["txInterval"], row["rxInterval"], row["status"]) == (500, 600, "UP"))
    assert by_peer(lg(topo, "bfd"))[azure]["transitions"] == before
    assert len(topo.hub.events("session_up")) == ups  # no BGP session was reset
    reload(topo, mcr_config(topo.lab))
    poll(lambda: topo.aws.bfd_peers()[hub], TIMEOUT, "FRR: timers not back",
         until=lambda v: v["remote-receive-interval"] == 300)
