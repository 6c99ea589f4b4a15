"""mcrd as the hub of a hub-and-spoke lab, proven from the peers' own RIBs and with real packets.

Topology (addresses stay inside the namespaces this module creates)::

    hosta -- aws (FRR 64512, MD5, PRIV_CLOUD) --+                 +-- azure (BIRD 12076, PRIV_CLOUD) -- hostb
                                                +--- hub (mcrd) --+
          onprem (FRR 65010, NON_CLOUD) --------+                 +-- pub (BIRD 7224, PUB_CLOUD)
                                                +-- rogue (FRR 64999, wrong MD5 key)

The MCR config is the seed article's PoC: AWS imports only its two VPC CIDRs and exports only the Azure VNet,
Azure the mirror image; on-prem gets AS-path prepend 2 and MED out 100; a static summary route points to on-prem.
Every expectation below is what docs/MCR-SEMANTICS.md section 2 predicts; it is read from the peers, never from mcrd.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcrd.bgp import exabgp_launch
from mcrd.bgp.pool import process_of
from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import (
    BirdNeighbor,
    BirdPeer,
    FrrNeighbor,
    FrrPeer,
    Lab,
    Netns,
    Route,
    assert_stays,
    bird_config,
    frr_config,
    pid_alive,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS = 133937
AWS_AS, AZURE_AS, ONPREM_AS, PUB_AS, ROGUE_AS = 64512, 12076, 65010, 7224, 64999
AWS_KEY = "aws-md5-key"
VPCS = ["10.10.0.0/16", "10.20.0.0/16"]
AWS_REJECTED = "10.50.0.0/16"  # not in the AWS import permit list
VNET, AZURE_REJECTED = "10.30.0.0/16", "10.31.0.0/16"
ONPREM_NET, PUB_NET, STATIC = "192.168.0.0/16", "52.95.0.0/16", "10.99.0.0/16"
AWS_V6, AZURE_V6, PUB_V6 = "2001:db8:10::/48", "2001:db8:30::/48", "2001:db8:52::/48"
TIMEOUT = 30.0

PeerRib = dict[str, tuple[tuple[int, ...], int | None, str]]  # prefix -> (AS path, MED, next hop)

HUB: dict[str, tuple[str, str, str, str]] = {  # hub side, peer side of each link (IPv4, then IPv6)
    "aws": ("169.254.10.1", "169.254.10.2", "2001:db8:a::1", "2001:db8:a::2"),
    "azure": ("169.254.20.1", "169.254.20.2", "2001:db8:b::1", "2001:db8:b::2"),
    "onprem": ("172.16.1.1", "172.16.1.2", "", ""),
    "pub": ("169.254.40.1", "169.254.40.2", "2001:db8:d::1", "2001:db8:d::2"),
    "rogue": ("169.254.50.1", "169.254.50.2", "", ""),
}


def mcr_config(lab: Lab, *, aws_export: list[str] | None = None, kernel_routes: bool = True) -> str:
    """The MCR config of the lab (JSON, which mcrd reads like YAML); `aws_export` changes the AWS export permit
    list (for the reload test), `kernel_routes` the mcrd extension `mcr.kernelRoutes`."""

    def plist(list_id: int, name: str, prefixes: list[str]) -> dict[str, Any]:
        entries = [{"action": "permit", "prefix": p, "le": 16} for p in prefixes]
        return {"id": list_id, "description": name, "addressFamily": "IPv4", "entries": entries}

    def conn(name: str, asn: int, peer_type: str, *, v6: bool = False, **extra: Any) -> dict[str, Any]:
        v4_local, v4_peer, v6_local, v6_peer = HUB[name]
        local, peer = (v6_local, v6_peer) if v6 else (v4_local, v4_peer)
        return {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "peerType": peer_type,
                "holdTime": 9, **extra}

    def vxc(name: str, *connections: dict[str, Any], **extra: Any) -> dict[str, Any]:
        v4_local, _, v6_local, _ = HUB[name]
        addresses = [f"{v4_local}/30"] + ([f"{v6_local}/126"] if v6_local else [])
        interface = {"ipAddresses": addresses, "bgpConnections": list(connections), **extra}
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

    config = {
        "mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1", "kernelRoutes": kernel_routes},
        "prefixFilterLists": [
            plist(1, "aws-vpcs", VPCS), plist(2, "to-aws", aws_export or [VNET]), plist(3, "azure-vnet", [VNET]),
        ],
        "vxcs": [
            vxc("aws",
                conn("aws", AWS_AS, "PRIV_CLOUD", password=AWS_KEY, importWhitelist="aws-vpcs",
                     exportWhitelist="to-aws"),
                conn("aws", AWS_AS, "PRIV_CLOUD", v6=True)),
            vxc("azure",
                conn("azure", AZURE_AS, "PRIV_CLOUD", importWhitelist="azure-vnet", exportWhitelist="aws-vpcs"),
                conn("azure", AZURE_AS, "PRIV_CLOUD", v6=True)),
            vxc("onprem", conn("onprem", ONPREM_AS, "NON_CLOUD", asPathPrependCount=2, medOut=100),
                ipRoutes=[{"prefix": STATIC, "nextHop": HUB["onprem"][1]}]),
            vxc("pub", conn("pub", PUB_AS, "PUB_CLOUD"), conn("pub", PUB_AS, "PUB_CLOUD", v6=True)),
            vxc("rogue", conn("rogue", ROGUE_AS, "NON_CLOUD", password="right-key")),
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class Hub:
    lab: Lab
    ns: Netns
    proc: subprocess.Popen[bytes]
    config: Path
    exabgp_processes: int

    def log(self) -> list[dict[str, Any]]:
        return self.lab.json_log(self.proc)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log() if entry.get("event") == name]

    def kernel(self) -> dict[str, str]:
        """mcrd's routes in the hub's kernel (its own protocol number), prefix -> gateway."""
        routes = {}
        for family in ("-4", "-6"):
            for route in self.ns.ip_json(family, "route", "show", "proto", "252"):
                routes[route["dst"]] = route.get("gateway", "")
        return routes

    def exabgp_pid(self) -> int:
        return int(self.events("exabgp_started")[-1]["pid"])


@dataclass
class Topology:
    lab: Lab
    hub: Hub
    aws: FrrPeer
    azure: BirdPeer
    onprem: FrrPeer
    pub: BirdPeer
    rogue: FrrPeer
    hosta: Netns
    hostb: Netns


@pytest.fixture(scope="module", params=[1, 2], ids=["1-exabgp", "2-exabgp"])
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    """The whole module runs twice: with one ExaBGP process (the default) and with the sessions split over two
    (`--exabgp-processes 2`: onprem and rogue in one, aws, azure and pub in the other)."""
    with module_lab("test_daemon", request) as lab:
        yield _build(lab, request.param)


def _build(lab: Lab, exabgp_processes: int) -> Topology:
    hub = lab.netns("hub")
    spokes = {name: lab.netns(name) for name in HUB}
    hosta, hostb = lab.netns("hosta"), lab.netns("hostb")
    for name, ns in spokes.items():
        _v4_local, v4_peer, _v6_local, v6_peer = HUB[name]
        # mcrd configures the hub side itself (addresses from its config); the peer side is the lab's.
        lab.link(hub, name, ns, "hub", [], [f"{v4_peer}/30"] + ([f"{v6_peer}/126"] if v6_peer else []))
    lab.link(hosta, "eth0", spokes["aws"], "hosta", ["10.10.1.10/24"], ["10.10.1.1/24"])
    lab.link(hostb, "eth0", spokes["azure"], "hostb", ["10.30.1.10/24"], ["10.30.1.1/24"])
    hosta.add_route("default", via="10.10.1.1")
    hostb.add_route("default", via="10.30.1.1")
    for ns in (spokes["aws"], spokes["azure"]):
        ns.enable_forwarding()

    config = lab.make_dir("mcrd") / "mcrd.yaml"
    config.write_text(mcr_config(lab))
    proc = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                     "--state-dir", str(lab.make_dir("mcrd-state")), "--exabgp-processes", str(exabgp_processes),
                     label="mcrd")
    the_hub = Hub(lab, hub, proc, config, exabgp_processes)

    aws_v4, aws_v6 = HUB["aws"][0], HUB["aws"][2]
    aws = FrrPeer(spokes["aws"], AWS_AS, "10.0.0.1", frr_config(
        AWS_AS, "10.0.0.1",
        [FrrNeighbor(aws_v4, MCR_AS, password=AWS_KEY, hold_time=9), FrrNeighbor(aws_v6, MCR_AS, hold_time=9)],
        [*VPCS, AWS_REJECTED, AWS_V6], hostname="aws", graceful_restart=False))
    azure = BirdPeer(spokes["azure"], bird_config(
        AZURE_AS, "10.0.0.2",
        [BirdNeighbor("mcr4", HUB["azure"][0], MCR_AS, hold_time=9),
         BirdNeighbor("mcr6", HUB["azure"][2], MCR_AS, hold_time=9)],
        [VNET, AZURE_REJECTED, AZURE_V6]))
    onprem = FrrPeer(spokes["onprem"], ONPREM_AS, "10.0.0.3", frr_config(
        ONPREM_AS, "10.0.0.3", [FrrNeighbor(HUB["onprem"][0], MCR_AS, hold_time=9)], [ONPREM_NET],
        hostname="onprem", graceful_restart=False))
    pub = BirdPeer(spokes["pub"], bird_config(
        PUB_AS, "10.0.0.4",
        [BirdNeighbor("mcr4", HUB["pub"][0], MCR_AS, hold_time=9),
         BirdNeighbor("mcr6", HUB["pub"][2], MCR_AS, hold_time=9)],
        [PUB_NET, PUB_V6], kernel_export=False))
    rogue = FrrPeer(spokes["rogue"], ROGUE_AS, "10.0.0.5", frr_config(
        ROGUE_AS, "10.0.0.5", [FrrNeighbor(HUB["rogue"][0], MCR_AS, password="wrong-key", hold_time=9)],
        ["198.18.0.0/16"], hostname="rogue", graceful_restart=False))
    topology = Topology(lab, the_hub, aws, azure, onprem, pub, rogue, hosta, hostb)
    wait_all_established(topology)
    return topology


def wait_all_established(t: Topology) -> None:
    t.aws.wait_established(HUB["aws"][0], TIMEOUT)
    t.aws.wait_established(HUB["aws"][2], TIMEOUT)
    t.onprem.wait_established(HUB["onprem"][0], TIMEOUT)
    for bird in (t.azure, t.pub):
        bird.wait_established("mcr4", TIMEOUT)
        bird.wait_established("mcr6", TIMEOUT)


def mcr_path(*rest: int, prepend: int = 0) -> tuple[int, ...]:
    return (MCR_AS,) * (1 + prepend) + rest


def received(peer: FrrPeer | BirdPeer, family: str = "ipv4") -> dict[str, Route]:
    """The routes a peer learned from the MCR (its own networks left out)."""
    if isinstance(peer, FrrPeer):
        routes = peer.routes(family)
    else:
        routes = peer.routes("master4" if family == "ipv4" else "master6")
    return {prefix: route for prefix, route in routes.items() if route.as_path[:1] == (MCR_AS,)}


def summary(routes: dict[str, Route]) -> PeerRib:
    return {prefix: (r.as_path, r.med, r.next_hop) for prefix, r in routes.items()}


def expected_v4(t: Topology) -> dict[str, PeerRib]:
    """What docs/MCR-SEMANTICS.md section 2 predicts each peer holds (AS path, MED, next hop)."""
    aws_hop, azure_hop, onprem_hop, pub_hop = (HUB[n][0] for n in ("aws", "azure", "onprem", "pub"))
    return {
        # Import permit lists keep 10.50/16 and 10.31/16 out; AWS's export permit list lets only the VNet in.
        "aws": {VNET: (mcr_path(AZURE_AS), None, aws_hop)},
        "azure": {vpc: (mcr_path(AWS_AS), None, azure_hop) for vpc in VPCS},
        # NON_CLOUD receives from every peer type; prepend 2 and MED out 100 on this session.
        "onprem": {
            **{vpc: (mcr_path(AWS_AS, prepend=2), 100, onprem_hop) for vpc in VPCS},
            VNET: (mcr_path(AZURE_AS, prepend=2), 100, onprem_hop),
            PUB_NET: (mcr_path(PUB_AS, prepend=2), 100, onprem_hop),
            STATIC: (mcr_path(prepend=2), 100, onprem_hop),
        },
        # PUB_CLOUD receives only NON_CLOUD-learned routes and the MCR's own (static) routes.
        "pub": {ONPREM_NET: (mcr_path(ONPREM_AS), None, pub_hop), STATIC: (mcr_path(), None, pub_hop)},
    }


def peers_v4(t: Topology) -> dict[str, FrrPeer | BirdPeer]:
    return {"aws": t.aws, "azure": t.azure, "onprem": t.onprem, "pub": t.pub}


def wait_rib(t: Topology, expected: dict[str, PeerRib]) -> None:
    for name, peer in peers_v4(t).items():
        wait_peer_rib(name, peer, expected[name])


def wait_peer_rib(name: str, peer: FrrPeer | BirdPeer, want: PeerRib) -> None:
    poll(lambda: summary(received(peer)), TIMEOUT, f"{name}'s RIB", until=lambda got: got == want)


def expected_kernel() -> dict[str, str]:
    aws, azure, onprem, pub = (HUB[n][1] for n in ("aws", "azure", "onprem", "pub"))
    aws6, azure6, pub6 = (HUB[n][3] for n in ("aws", "azure", "pub"))
    return {
        **dict.fromkeys(VPCS, aws), VNET: azure, ONPREM_NET: onprem, PUB_NET: pub, STATIC: onprem,
        AWS_V6: aws6, AZURE_V6: azure6, PUB_V6: pub6,
    }


# --- tests, in order: the module's topology is shared and the last test stops the daemon ---------------------------


def test_each_peer_holds_exactly_what_mcr_semantics_predicts(topo: Topology) -> None:
    wait_rib(topo, expected_v4(topo))


def test_ipv6_sessions_carry_ipv6_with_private_public_isolation(topo: Topology) -> None:
    aws6, azure6 = HUB["aws"][2], HUB["azure"][2]
    # No lists on the IPv6 sessions: PRIV_CLOUD to PRIV_CLOUD passes, PUB_CLOUD to PRIV_CLOUD never.
    poll(lambda: summary(received(topo.aws, "ipv6")), TIMEOUT, "aws IPv6 RIB",
         until=lambda got: got == {AZURE_V6: (mcr_path(AZURE_AS), None, aws6)})
    poll(lambda: summary(received(topo.azure, "ipv6")), TIMEOUT, "azure IPv6 RIB",
         until=lambda got: got == {AWS_V6: (mcr_path(AWS_AS), None, azure6)})
    # The pub IPv6 session is up (the fixture waits for it) and must hold nothing from the private clouds.
    assert summary(received(topo.pub, "ipv6")) == {}


def test_hub_kernel_holds_the_best_routes(topo: Topology) -> None:
    poll(topo.hub.kernel, TIMEOUT, "hub kernel routes (proto 252)", until=lambda got: got == expected_kernel())


def test_a_host_behind_aws_reaches_a_host_behind_azure_through_the_hub(topo: Topology) -> None:
    wait_rib(topo, expected_v4(topo))
    poll(lambda: topo.hosta.ping("10.30.1.10"), TIMEOUT, "ping hosta -> hostb across the hub")
    assert topo.hostb.ping("10.10.1.10")


def test_a_wrong_md5_password_never_establishes(topo: Topology) -> None:
    # Bounded negative check: the rogue peer retries every second and ExaBGP connects on its own too; 5 s covers
    # several attempts from both sides, and the kernel counts the segments it dropped for their bad signature.
    poll(lambda: topo.rogue.ns.tcp_md5_rejects() + topo.hub.ns.tcp_md5_rejects() > 0, TIMEOUT,
         "MD5 rejections counted by the kernel")
    assert_stays(lambda: topo.rogue.session_state(HUB["rogue"][0]) != "Established", 5.0,
                 "the rogue session must not establish with a wrong MD5 key")


def test_a_withdrawal_disappears_from_the_other_peers_and_the_kernel(topo: Topology) -> None:
    topo.aws.withdraw(VPCS[1])
    expected = expected_v4(topo)
    del expected["azure"][VPCS[1]]
    del expected["onprem"][VPCS[1]]
    wait_rib(topo, expected)
    poll(topo.hub.kernel, TIMEOUT, "hub kernel without the withdrawn VPC",
         until=lambda got: VPCS[1] not in got and VPCS[0] in got)
    topo.aws.announce(VPCS[1])
    wait_rib(topo, expected_v4(topo))


def test_a_peer_going_down_takes_its_routes_everywhere_and_they_return(topo: Topology) -> None:
    topo.azure.birdc("disable", "mcr4")
    expected = expected_v4(topo)
    expected["azure"] = {}
    del expected["aws"][VNET]
    del expected["onprem"][VNET]
    wait_rib(topo, expected)
    poll(topo.hub.kernel, TIMEOUT, "hub kernel without Azure's routes", until=lambda got: VNET not in got)
    # While Azure is away, AWS withdraws a VPC: Azure must not get it back when it returns (no stale replay).
    topo.aws.withdraw(VPCS[1])
    poll(lambda: summary(received(topo.onprem)), TIMEOUT, "onprem without the VPC",
         until=lambda got: VPCS[1] not in got)
    topo.azure.birdc("enable", "mcr4")
    topo.azure.wait_established("mcr4", TIMEOUT)
    expected = expected_v4(topo)
    for name in ("azure", "onprem"):
        del expected[name][VPCS[1]]
    wait_rib(topo, expected)
    topo.aws.announce(VPCS[1])
    wait_rib(topo, expected_v4(topo))


def test_nothing_sent_is_lost_in_bulk(topo: Topology) -> None:
    """3,000 prefixes from on-prem reach the public cloud peer through ExaBGP's API in grouped commands, with
    acknowledgements bounding what is in flight: every one arrives, and every withdrawal too."""
    bulk = [f"100.{64 + i // 256}.{i % 256}.0/24" for i in range(3000)]
    af = ["router bgp 65010", "address-family ipv4 unicast"]
    topo.onprem.configure(*af, *(f"network {p}" for p in bulk))
    want = expected_v4(topo)["pub"] | {p: (mcr_path(ONPREM_AS), None, HUB["pub"][0]) for p in bulk}
    wait_peer_rib("pub", topo.pub, want)
    poll(topo.hub.kernel, TIMEOUT, "hub kernel with the bulk routes", until=lambda got: set(bulk) <= set(got))
    topo.onprem.configure(*af, *(f"no network {p}" for p in bulk))
    wait_peer_rib("pub", topo.pub, expected_v4(topo)["pub"])
    poll(topo.hub.kernel, TIMEOUT, "hub kernel without the bulk routes", until=lambda got: got == expected_kernel())


def test_exabgp_runs_with_mcrds_fixes(topo: Topology) -> None:
    """Every route in these tests went through ExaBGP started with all of mcrd/bgp/exabgp_launch.py's fixes, at the
    reactor speed that goes with them: what each ExaBGP's launcher reported, through its bridge."""
    reports = [(e["fixes"], e["reactor_speed"]) for e in topo.hub.events("exabgp_fixes")]
    expected = (list(exabgp_launch.expected_fixes()), exabgp_launch.SPEED_WITH_FIXES)
    assert reports == [expected] * topo.hub.exabgp_processes
    cmdline = Path(f"/proc/{topo.hub.exabgp_pid()}/cmdline").read_bytes().split(b"\0")
    assert b"mcrd.bgp.exabgp_launch" in cmdline


def test_killing_exabgp_heals(topo: Topology) -> None:
    started = topo.hub.events("exabgp_started")[-1]
    old, process = int(started["pid"]), started.get("exabgp_process", 0)
    before = session_counters(topo)
    os.kill(old, signal.SIGKILL)
    poll(lambda: topo.hub.exabgp_pid() != old, TIMEOUT, "a new ExaBGP started")
    poll(lambda: not pid_alive(old), TIMEOUT, "the killed ExaBGP reaped")
    wait_all_established(topo)
    wait_rib(topo, expected_v4(topo))
    # The kernel ends equal to the best routes: nothing left over from before the crash.
    poll(topo.hub.kernel, TIMEOUT, "hub kernel after the restart", until=lambda got: got == expected_kernel())
    assert topo.hub.events("exabgp_died")
    after = session_counters(topo)
    # Only the sessions of the process that died were reset: with two processes, the other's stayed up throughout.
    held = {name for name, peer in SESSION_PEERS.items()
            if process_of(LOCAL_OF[peer], topo.hub.exabgp_processes) == process}
    changed = resets(before, after)
    assert not changed - held, "sessions of an ExaBGP process that kept running were reset"
    assert held <= changed, "sessions of the killed ExaBGP process were not reset"


SESSION_PEERS = {  # session_counters' names -> the peer address, as mcrd keys the session
    "aws4": HUB["aws"][1], "aws6": HUB["aws"][3], "onprem": HUB["onprem"][1],
    "azure4": HUB["azure"][1], "azure6": HUB["azure"][3], "pub4": HUB["pub"][1], "pub6": HUB["pub"][3],
}

LOCAL_OF = {link[i + 1]: link[i] for link in HUB.values() for i in (0, 2)}  # peer address -> hub address


def session_counters(t: Topology) -> dict[str, object]:
    """Something that changes whenever a session is reset: FRR's established count, BIRD's state-change time."""
    def frr(peer: FrrPeer, neighbor: str) -> object:
        return peer.show_json(f"show bgp neighbors {neighbor} json")[neighbor]["connectionsEstablished"]

    def bird(peer: BirdPeer, protocol: str) -> object:
        fields = peer.birdc("show", "protocols", protocol).stdout.splitlines()[-1].split()
        stamp = f"{fields[4]} {fields[5]}" if "-" in fields[4] else f"1970-01-01 {fields[4]}"
        return fields[3], datetime.datetime.fromisoformat(stamp).timestamp()

    return {
        "aws4": frr(t.aws, HUB["aws"][0]), "aws6": frr(t.aws, HUB["aws"][2]),
        "onprem": frr(t.onprem, HUB["onprem"][0]),
        "azure4": bird(t.azure, "mcr4"), "azure6": bird(t.azure, "mcr6"),
        "pub4": bird(t.pub, "mcr4"), "pub6": bird(t.pub, "mcr6"),
    }


def resets(before: dict[str, object], after: dict[str, object]) -> set[str]:
    """The sessions reset between two `session_counters`. BIRD keeps a monotonic time and converts it to wall-clock
    time when it prints it, so the same state change can print a millisecond apart: times within 50 ms are one."""
    def same(a: object, b: object) -> bool:
        if isinstance(a, tuple) and isinstance(b, tuple):
            return bool(a[0] == b[0] and abs(a[1] - b[1]) < 0.05)
        return a == b

    return {name for name in before if not same(before[name], after[name])}


def reload(t: Topology) -> None:
    before = len(t.hub.events("config_applied")) + len(t.hub.events("config_not_applied"))
    t.hub.proc.send_signal(signal.SIGHUP)
    poll(lambda: len(t.hub.events("config_applied")) + len(t.hub.events("config_not_applied")) > before,
         TIMEOUT, "the daemon handled SIGHUP")


def test_sighup_changes_a_filter_without_resetting_sessions(topo: Topology) -> None:
    wait_rib(topo, expected_v4(topo))
    counters = session_counters(topo)
    topo.hub.config.write_text(mcr_config(topo.lab, aws_export=[VNET, ONPREM_NET]))
    reload(topo)
    expected = expected_v4(topo)
    expected["aws"][ONPREM_NET] = (mcr_path(ONPREM_AS), None, HUB["aws"][0])
    wait_rib(topo, expected)
    assert not resets(counters, session_counters(topo))
    topo.hub.config.write_text(mcr_config(topo.lab))
    reload(topo)
    wait_rib(topo, expected_v4(topo))
    assert not resets(counters, session_counters(topo))


def test_sighup_with_a_broken_config_changes_nothing(topo: Topology) -> None:
    counters = session_counters(topo)
    good = topo.hub.config.read_text()
    topo.hub.config.write_text(good.replace('"peerAsn": 64512', '"peerAsn": 4294967296', 1))
    try:
        reload(topo)
        [problem] = [e["problem"] for e in topo.hub.events("config_rejected")][-1:]
        assert "peerAsn: 4294967296 is out of range 1..4294967295" in problem
        assert problem.startswith(f"{topo.hub.config}:")
        wait_rib(topo, expected_v4(topo))
        assert not resets(counters, session_counters(topo))
        assert topo.hub.kernel() == expected_kernel()
    finally:
        topo.hub.config.write_text(good)


def test_kernel_routes_off_keeps_bgp_and_empties_the_kernel_then_on_fills_it(topo: Topology) -> None:
    counters = session_counters(topo)
    good = topo.hub.config.read_text()
    try:
        topo.hub.config.write_text(mcr_config(topo.lab, kernel_routes=False))
        reload(topo)
        poll(topo.hub.kernel, TIMEOUT, "hub kernel without mcrd's routes", until=lambda got: got == {})
        wait_rib(topo, expected_v4(topo))  # BGP goes on: every peer keeps exactly its routes
        # A change while off reaches the peers and stays out of the kernel.
        topo.onprem.configure("router bgp 65010", "address-family ipv4 unicast", "network 100.99.0.0/24")
        want = expected_v4(topo)["pub"] | {"100.99.0.0/24": (mcr_path(ONPREM_AS), None, HUB["pub"][0])}
        wait_peer_rib("pub", topo.pub, want)
        # The kernel is programmed after the commands of the same round are sent, well within 0.5 s.
        assert_stays(lambda: topo.hub.kernel() == {}, 0.5, "hub kernel stays without mcrd's routes")
    finally:
        topo.hub.config.write_text(good)
        reload(topo)
    poll(topo.hub.kernel, TIMEOUT, "hub kernel with mcrd's routes again",
         until=lambda got: got == {**expected_kernel(), "100.99.0.0/24": HUB["onprem"][1]})
    topo.onprem.configure("router bgp 65010", "address-family ipv4 unicast", "no network 100.99.0.0/24")
    poll(topo.hub.kernel, TIMEOUT, "hub kernel as before", until=lambda got: got == expected_kernel())
    assert not resets(counters, session_counters(topo))



COMMUNITY_NET = "10.20.0.0/16"  # VPCS[1]: AWS sends it, onprem (FRR) and Azure (BIRD) receive it


def _aws_sets(aws: FrrPeer, *sets: str) -> None:
    """Originate AWS's second VPC through a route-map with these `set` lines (none: plain `network`)."""
    bgp = (f"router bgp {AWS_AS}", "address-family ipv4 unicast")
    if not sets:
        aws.configure(*bgp, f"network {COMMUNITY_NET}")
        return
    aws.configure("no route-map MCL-COMM", "route-map MCL-COMM permit 10", *sets, "exit")
    aws.configure(*bgp, f"network {COMMUNITY_NET} route-map MCL-COMM")


def _frr_communities(peer: FrrPeer) -> tuple[str, str, str] | None:
    paths = peer.show_json(f"show bgp ipv4 unicast {COMMUNITY_NET}").get("paths", [])
    if not paths:
        return None
    path = paths[0]
    return tuple(str((path.get(kind) or {}).get("string", ""))  # type: ignore[return-value]
                 for kind in ("community", "extendedCommunity", "largeCommunity"))


def _bird_communities(peer: BirdPeer) -> str:
    return peer.birdc("show", "route", "all", "for", COMMUNITY_NET).stdout


def test_communities_of_all_three_kinds_reach_the_other_spokes(topo: Topology) -> None:
    """Issue 18.2: standard, extended (RFC 4360) and large (RFC 8092) communities pass unchanged, read from the
    receiving peers' own RIBs (FRR's JSON, BIRD's `show route all`)."""
    try:
        _aws_sets(topo.aws, " set community 65030:100", " set extcommunity rt 65030:1",
                  " set large-community 4200000001:30:1")
        poll(lambda: _frr_communities(topo.onprem), TIMEOUT, "onprem holds all three kinds",
             until=lambda got: got == ("65030:100", "RT:65030:1", "4200000001:30:1"))
        poll(lambda: _bird_communities(topo.azure), TIMEOUT, "azure holds all three kinds",
             until=lambda got: "(65030,100)" in got and "(rt, 65030, 1)" in got and "(4200000001, 30, 1)" in got)
    finally:
        topo.aws.configure(f"router bgp {AWS_AS}", "address-family ipv4 unicast", f"no network {COMMUNITY_NET}")
        _aws_sets(topo.aws)
    wait_rib(topo, expected_v4(topo))


def _aws_out_community(aws: FrrPeer, community: str | None) -> None:
    """Tag COMMUNITY_NET on AWS's session to the hub with `community` (None: untag). On the way out: FRR itself
    does not send a route it originates with NO_EXPORT or NO_ADVERTISE to an eBGP peer, but an outbound route-map
    is applied after that check."""
    hub = HUB["aws"][0]
    if community is None:
        aws.configure(f"router bgp {AWS_AS}", "address-family ipv4 unicast", f"no neighbor {hub} route-map MCL-OUT out")
    else:
        aws.configure(f"ip prefix-list MCL-COMM seq 5 permit {COMMUNITY_NET}",
                      "no route-map MCL-OUT", "route-map MCL-OUT permit 10", " match ip address prefix-list MCL-COMM",
                      f" set community {community}", "exit", "route-map MCL-OUT permit 20", "exit")
        aws.configure(f"router bgp {AWS_AS}", "address-family ipv4 unicast", f"neighbor {hub} route-map MCL-OUT out")
    aws.vtysh(f"clear bgp ipv4 unicast {hub} soft out")


@pytest.mark.parametrize("community", ["no-export", "no-advertise"])
def test_no_export_and_no_advertise_reach_no_ebgp_peer(topo: Topology, community: str) -> None:
    """Issue 18.3, RFC 1997: every spoke is eBGP, so a route with NO_EXPORT or NO_ADVERTISE reaches none of them;
    the hub still uses it (kernel route)."""
    expected = expected_v4(topo)
    del expected["azure"][COMMUNITY_NET]
    del expected["onprem"][COMMUNITY_NET]
    try:
        _aws_out_community(topo.aws, community)
        wait_rib(topo, expected)
        # The hub holds the route and it stays away from the spokes.
        poll(topo.hub.kernel, TIMEOUT, "hub kernel with the route", until=lambda got: COMMUNITY_NET in got)
        assert_stays(lambda: all(summary(received(peer)) == expected[name] for name, peer in peers_v4(topo).items()),
                     1.0, f"no spoke receives the {community} route")
    finally:
        _aws_out_community(topo.aws, None)
    wait_rib(topo, expected_v4(topo))


def test_no_log_line_shows_a_password(topo: Topology) -> None:
    text = topo.lab.log_of(topo.hub.proc).read_text()
    assert AWS_KEY not in text
    assert "right-key" not in text


def test_sigterm_closes_sessions_and_removes_the_kernel_routes(topo: Topology) -> None:
    topo.hub.proc.send_signal(signal.SIGTERM)
    assert topo.hub.proc.wait(timeout=TIMEOUT) == 0
    assert topo.hub.kernel() == {}
    # The peers were told (a Cease), not left to time out: FRR shows the session down at once.
    poll(lambda: topo.onprem.session_state(HUB["onprem"][0]) != "Established", 5.0, "onprem sees the session close")
    assert not topo.hub.ns.pids()
