"""An IPv6 BGP session over link-local addresses (fe80::/10), as lab routers often peer, proven from the peers' own
RIBs, the hub's kernel and real packets (issue 18 item 4).

Topology (addresses stay inside the namespaces this module creates)::

    lab (FRR 64512, fe80::1 <-> hub fe80::2, link-local only) --+-- hub (mcrd) --+-- glob (FRR 65010, global IPv6)
    2001:db8:10::1 on lo, announces 2001:db8:10::/48                              2001:db8:20::1 on lo, 2001:db8:20::/48

mcrd scopes the link-local session to its VXC's interface (ExaBGP `source-interface`): without a scope the kernel
refuses to bind or connect a link-local address and the session was never attempted. The link-local peer's routes
reach the hub with a link-local next hop only, so the hub's kernel route must name the interface
(`via fe80::1 dev <vxc>`); the global peer gets them with the hub's global address as next hop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import FrrNeighbor, FrrPeer, Lab, Netns, frr_config, poll

pytestmark = LAB_MARKS

MCR_AS, LL_AS, GLOBAL_AS = 133937, 64512, 65010
HUB_LL, PEER_LL = "fe80::2", "fe80::1"
HUB_G, PEER_G = "2001:db8:e::1", "2001:db8:e::2"
LL_NET, LL_HOST = "2001:db8:10::/48", "2001:db8:10::1"
G_NET, G_HOST = "2001:db8:20::/48", "2001:db8:20::1"
LL_KEY = "ll-md5-key"  # TCP-MD5 over link-local too, as AWS-like peers require a key
TIMEOUT = 30.0


@dataclass
class Topology:
    lab: Lab
    hub: Netns
    hub_ll_if: str
    ll: FrrPeer
    glob: FrrPeer
    ll_ns: Netns
    glob_ns: Netns


def mcr_config(lab: Lab, *, scoped: bool = False) -> str:
    """`scoped`: the link-local peer written as `fe80::1%<the VXC's interface>`, as FRR and `ip` show it."""
    ll_if = lab.ifname("ll")
    peer = f"{PEER_LL}%{ll_if}" if scoped else PEER_LL
    config = {
        "mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "vxcs": [
            {"productName": "ll-vxc", "interface": ll_if, "vrouter": {"interfaces": [{
                "ipAddresses": [f"{HUB_LL}/64"],
                "bgpConnections": [{"peerAsn": LL_AS, "localIpAddress": HUB_LL, "peerIpAddress": peer,
                                    "holdTime": 9, "password": LL_KEY}]}]}},
            {"productName": "global-vxc", "interface": lab.ifname("glob"), "vrouter": {"interfaces": [{
                "ipAddresses": [f"{HUB_G}/126"],
                "bgpConnections": [{"peerAsn": GLOBAL_AS, "localIpAddress": HUB_G, "peerIpAddress": PEER_G,
                                    "holdTime": 9}]}]}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@pytest.fixture(scope="module", params=[False, True], ids=["fe80", "fe80-scoped"])
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    """The module runs twice: the peer written `fe80::1`, then `fe80::1%<the VXC's interface>`."""
    with module_lab("test_link_local", request) as lab:
        yield _build(lab, scoped=request.param)


def _build(lab: Lab, *, scoped: bool) -> Topology:
    hub, ll_ns, glob_ns = lab.netns("hub"), lab.netns("ll"), lab.netns("glob")
    # mcrd puts the hub side's addresses on (its config); the link-local peer has only fe80 on its link.
    ll_link = lab.link(hub, "ll", ll_ns, "hub", [], [f"{PEER_LL}/64"])
    lab.link(hub, "glob", glob_ns, "hub", [], [f"{PEER_G}/126"])
    ll_ns.add_address("lo", f"{LL_HOST}/128")
    glob_ns.add_address("lo", f"{G_HOST}/128")

    config = lab.make_dir("mcrd") / "mcrd.yaml"
    config.write_text(mcr_config(lab, scoped=scoped))
    hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
              "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
    # FRR's own link-local form: the neighbor is reached through the named interface.
    ll = FrrPeer(ll_ns, LL_AS, "10.0.0.1", frr_config(
        LL_AS, "10.0.0.1",
        [FrrNeighbor(HUB_LL, MCR_AS, hold_time=9, password=LL_KEY,
                     extra=(f"neighbor {HUB_LL} interface {ll_link.if_b}",))],
        [LL_NET], hostname="ll", graceful_restart=False))
    glob = FrrPeer(glob_ns, GLOBAL_AS, "10.0.0.2", frr_config(
        GLOBAL_AS, "10.0.0.2", [FrrNeighbor(HUB_G, MCR_AS, hold_time=9)], [G_NET], hostname="glob",
        graceful_restart=False))
    ll.wait_established(HUB_LL, TIMEOUT)
    glob.wait_established(HUB_G, TIMEOUT)
    return Topology(lab, hub, ll_link.if_a, ll, glob, ll_ns, glob_ns)


def _v6_route(ns: Netns, prefix: str) -> dict[str, Any] | None:
    return ns.kernel_routes(ipv6=True).get(prefix)


def test_link_local_session_carries_routes_both_ways(topo: Topology) -> None:
    # Read from each FRR's own RIB: the link-local peer learns the global peer's prefix from the hub over fe80,
    # the global peer learns the link-local peer's prefix with the hub's global address as next hop.
    got = topo.ll.wait_route(G_NET, TIMEOUT)
    assert got.as_path == (MCR_AS, GLOBAL_AS)
    got = topo.glob.wait_route(LL_NET, TIMEOUT)
    assert got.as_path == (MCR_AS, LL_AS)
    assert got.next_hop == HUB_G


def test_hub_kernel_route_names_the_link_local_next_hop_and_its_interface(topo: Topology) -> None:
    route = poll(lambda: _v6_route(topo.hub, LL_NET), TIMEOUT, f"hub kernel route to {LL_NET}",
                 until=lambda r: r is not None and r.get("protocol") in ("252", 252))
    assert route is not None
    assert (route.get("gateway"), route.get("dev")) == (PEER_LL, topo.hub_ll_if)


def test_packets_cross_the_hub_between_the_link_local_and_the_global_peer(topo: Topology) -> None:
    poll(lambda: topo.glob_ns.run("ping", "-n", "-q", "-c", "1", "-W", "1", "-I", G_HOST, LL_HOST,
                                  check=False).returncode == 0,
         TIMEOUT, f"ping {LL_HOST} from {G_HOST} across the hub")
