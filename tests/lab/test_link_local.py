"""IPv6 BGP sessions over link-local addresses (fe80::/10), as lab routers often peer, proven from the peers' own
RIBs, the hub's kernel and real packets (issue 18 item 4).

Topology (addresses stay inside the namespaces this module creates)::

    frr  (FRR 64512, fe80::1 <-> hub fe80::2, TCP-MD5)  --+                +-- glob (FRR 65010, 2001:db8:e::2)
    2001:db8:10::1 on lo, announces 2001:db8:10::/48      +-- hub (mcrd) --+   2001:db8:20::1 on lo, 2001:db8:20::/48
    bird (BIRD 65020, fe80::3 <-> hub fe80::4)          --+
    2001:db8:30::1 on lo, announces 2001:db8:30::/48      |
    gobgp (GoBGP 65030, fe80::5 <-> hub fe80::6)        --+
    announces 2001:db8:40::/48                            |
    openbgpd (OpenBGPD 65040, fe80::7 <-> hub fe80::8)  --+
    announces 2001:db8:50::/48

mcrd scopes a link-local session to its VXC's interface (ExaBGP `source-interface`): without a scope the kernel
refuses to bind or connect a link-local address, and the session used to be never attempted. FRR's side of its link
also has a global address the hub has none in, so FRR sends a global and a link-local next hop (RFC 2545): the hub
must route through the link-local one (`via fe80::1 dev <vxc>`), the only one on its link. The global peer gets the
link-local peers' routes with the hub's global address as next hop, and packets cross the hub. To a link-local peer
the hub sends its link-local address as both addresses of the next hop field (RFC 2545 3, as FRR does without a
global address; `wire.ipv6_next_hop`): FRR's, GoBGP's and OpenBGPD's RIBs show it. Last, mcrd accepts a link-local
peer's own connection: its listening socket is bound to the VXC's interface too (exabgp_listen.py).
"""

from __future__ import annotations

import functools
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
    GoBgpNeighbor,
    GoBgpPeer,
    Lab,
    Netns,
    OpenBgpdNeighbor,
    OpenBgpdPeer,
    bird_config,
    frr_config,
    gobgp_config,
    openbgpd_config,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS, FRR_AS, GLOBAL_AS, BIRD_AS, GOBGP_AS, OPENBGPD_AS = 133937, 64512, 65010, 65020, 65030, 65040
HUB_FRR, PEER_FRR = "fe80::2", "fe80::1"  # the FRR link: link-local only on the hub's side
PEER_FRR_GLOBAL = "2001:db8:f::2/64"  # on FRR's side of that link; the hub has no address in 2001:db8:f::/64
HUB_BIRD, PEER_BIRD = "fe80::4", "fe80::3"
HUB_G, PEER_G = "2001:db8:e::1", "2001:db8:e::2"
FRR_NET, FRR_HOST = "2001:db8:10::/48", "2001:db8:10::1"
G_NET, G_HOST = "2001:db8:20::/48", "2001:db8:20::1"
BIRD_NET, BIRD_HOST = "2001:db8:30::/48", "2001:db8:30::1"
HUB_GOBGP, PEER_GOBGP = "fe80::6", "fe80::5"
GOBGP_NET = "2001:db8:40::/48"
HUB_OPENBGPD, PEER_OPENBGPD = "fe80::8", "fe80::7"
OPENBGPD_NET = "2001:db8:50::/48"
FRR_KEY = "ll-md5-key"  # TCP-MD5 over link-local too: cloud-like peers require a key
TIMEOUT = 30.0


@dataclass
class Topology:
    lab: Lab
    hub: Netns
    frr: FrrPeer
    bird: BirdPeer
    bird_ns: Netns
    bird_if: str  # BIRD's end of its link to the hub
    glob: FrrPeer
    glob_ns: Netns
    gobgp: GoBgpPeer
    openbgpd: OpenBgpdPeer


def mcr_config(lab: Lab, *, scoped: bool = False) -> str:
    """`scoped`: the link-local peers written `fe80::1%<the VXC's interface>`, as `ip` and FRR show them."""

    def vxc(name: str, local: str, plen: int, peer: str, asn: int, **extra: Any) -> dict[str, Any]:
        ifname = lab.ifname(name)
        if scoped and peer.startswith("fe80"):
            peer = f"{peer}%{ifname}"
        connection = {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "holdTime": 9, **extra}
        interface = {"ipAddresses": [f"{local}/{plen}"], "bgpConnections": [connection]}
        return {"productName": f"{name}-vxc", "interface": ifname, "vrouter": {"interfaces": [interface]}}

    config = {
        "mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "vxcs": [
            vxc("frr", HUB_FRR, 64, PEER_FRR, FRR_AS, password=FRR_KEY),
            vxc("bird", HUB_BIRD, 64, PEER_BIRD, BIRD_AS),
            vxc("glob", HUB_G, 126, PEER_G, GLOBAL_AS),
            vxc("gobgp", HUB_GOBGP, 64, PEER_GOBGP, GOBGP_AS),
            vxc("openbgpd", HUB_OPENBGPD, 64, PEER_OPENBGPD, OPENBGPD_AS),
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@pytest.fixture(scope="module", params=[False, True], ids=["fe80", "fe80-scoped"])
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    """The module runs twice: the link-local peers written `fe80::1`, then `fe80::1%<the VXC's interface>`."""
    with module_lab("test_link_local", request) as lab:
        yield _build(lab, scoped=request.param)


def _build(lab: Lab, *, scoped: bool) -> Topology:
    hub, frr_ns, bird_ns, glob_ns = lab.netns("hub"), lab.netns("frr"), lab.netns("bird"), lab.netns("glob")
    gobgp_ns, openbgpd_ns = lab.netns("gobgp"), lab.netns("openbgpd")
    # mcrd puts the hub side's addresses on (from its config); the peer sides are the lab's.
    frr_link = lab.link(hub, "frr", frr_ns, "hub", [], [f"{PEER_FRR}/64", PEER_FRR_GLOBAL])
    bird_link = lab.link(hub, "bird", bird_ns, "hub", [], [f"{PEER_BIRD}/64"])
    lab.link(hub, "glob", glob_ns, "hub", [], [f"{PEER_G}/126"])
    gobgp_link = lab.link(hub, "gobgp", gobgp_ns, "hub", [], [f"{PEER_GOBGP}/64"])
    # OpenBGPD 7.7 puts a neighbour's name (`fe80::8%IF`) into the format string of its log lines: an interface
    # name that printf reads as a conversion after the `%` (`hub...` -> `%hu`) crashes it when it logs the End-of-RIB
    # (docs/INTEROP.md). Its end of the link is named `vhub...`: `%v` is no conversion.
    openbgpd_link = lab.link(hub, "openbgpd", openbgpd_ns, "vhub", [], [f"{PEER_OPENBGPD}/64"])
    for ns, host in ((frr_ns, FRR_HOST), (bird_ns, BIRD_HOST), (glob_ns, G_HOST)):
        ns.add_address("lo", f"{host}/128")

    config = lab.make_dir("mcrd") / "mcrd.yaml"
    config.write_text(mcr_config(lab, scoped=scoped))
    hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
              "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
    # Each peer's own way of naming a link-local neighbour: FRR `neighbor X interface IF`, BIRD `interface "IF"`.
    frr = FrrPeer(frr_ns, FRR_AS, "10.0.0.1", frr_config(
        FRR_AS, "10.0.0.1",
        [FrrNeighbor(HUB_FRR, MCR_AS, password=FRR_KEY, hold_time=9,
                     extra=(f"neighbor {HUB_FRR} interface {frr_link.if_b}",))],
        [FRR_NET], hostname="frr", graceful_restart=False))
    bird = BirdPeer(bird_ns, bird_config(
        BIRD_AS, "10.0.0.3",
        # `local`: BIRD would connect from its interface's own (EUI-64) link-local address, which is no peer of mcrd.
        [BirdNeighbor("mcr6", HUB_BIRD, MCR_AS, local_address=PEER_BIRD, hold_time=9,
                      extra=(f'interface "{bird_link.if_b}";',))],
        [BIRD_NET]))
    glob = FrrPeer(glob_ns, GLOBAL_AS, "10.0.0.2", frr_config(
        GLOBAL_AS, "10.0.0.2", [FrrNeighbor(HUB_G, MCR_AS, hold_time=9)], [G_NET], hostname="glob",
        graceful_restart=False))
    # GoBGP names a link-local neighbour with its scope, `fe80::6%IF`, and connects from the session's own address
    # (`local-address`), not its interface's EUI-64 one.
    gobgp = GoBgpPeer(gobgp_ns, gobgp_config(
        GOBGP_AS, "10.0.0.4", [GoBgpNeighbor(f"{HUB_GOBGP}%{gobgp_link.if_b}", MCR_AS, hold_time=9,
                                             local_address=f"{PEER_GOBGP}%{gobgp_link.if_b}")]))
    gobgp.announce(GOBGP_NET)
    openbgpd = OpenBgpdPeer(openbgpd_ns, openbgpd_config(
        OPENBGPD_AS, "10.0.0.5", [OpenBgpdNeighbor(f"{HUB_OPENBGPD}%{openbgpd_link.if_b}", MCR_AS, hold_time=9,
                                                   local_address=f"{PEER_OPENBGPD}%{openbgpd_link.if_b}")],
        [OPENBGPD_NET]))
    frr.wait_established(HUB_FRR, TIMEOUT)
    bird.wait_established("mcr6", TIMEOUT)
    glob.wait_established(HUB_G, TIMEOUT)
    gobgp.wait_established(f"{HUB_GOBGP}%{gobgp_link.if_b}", TIMEOUT)
    openbgpd.wait_established(f"{HUB_OPENBGPD}%{openbgpd_link.if_b}", TIMEOUT)
    return Topology(lab, hub, frr, bird, bird_ns, bird_link.if_b, glob, glob_ns, gobgp, openbgpd)


def _hub_routes(hub: Netns) -> dict[str, tuple[str, str]]:
    """mcrd's IPv6 routes in the hub's kernel (its own protocol number): prefix -> (gateway, device)."""
    return {r["dst"]: (r.get("gateway", ""), r.get("dev", ""))
            for r in hub.ip_json("-6", "route", "show", "proto", "252")}


def _from_hub(routes: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {p: (r.as_path, r.next_hop) for p, r in routes.items() if r.as_path[:1] == (MCR_AS,)}


def test_each_peer_learns_the_others_routes_over_the_link_local_sessions(topo: Topology) -> None:
    # Read from each peer's own RIB. The link-local peers get the hub's link-local address as next hop (the
    # session's own address, all ExaBGP sends), the global peer the hub's global address.
    want_frr = {G_NET: ((MCR_AS, GLOBAL_AS), HUB_FRR), BIRD_NET: ((MCR_AS, BIRD_AS), HUB_FRR),
                GOBGP_NET: ((MCR_AS, GOBGP_AS), HUB_FRR), OPENBGPD_NET: ((MCR_AS, OPENBGPD_AS), HUB_FRR)}
    poll(lambda: _from_hub(topo.frr.routes("ipv6")), TIMEOUT, "FRR's IPv6 RIB", until=lambda got: got == want_frr)
    want_bird = {G_NET: (MCR_AS, GLOBAL_AS), FRR_NET: (MCR_AS, FRR_AS), GOBGP_NET: (MCR_AS, GOBGP_AS),
                 OPENBGPD_NET: (MCR_AS, OPENBGPD_AS)}
    poll(lambda: {p: a for p, (a, _) in _from_hub(topo.bird.routes("master6")).items()}, TIMEOUT,
         "BIRD's IPv6 RIB", until=lambda got: got == want_bird)
    want_glob = {FRR_NET: ((MCR_AS, FRR_AS), HUB_G), BIRD_NET: ((MCR_AS, BIRD_AS), HUB_G),
                 GOBGP_NET: ((MCR_AS, GOBGP_AS), HUB_G), OPENBGPD_NET: ((MCR_AS, OPENBGPD_AS), HUB_G)}
    poll(lambda: _from_hub(topo.glob.routes("ipv6")), TIMEOUT, "the global peer's IPv6 RIB",
         until=lambda got: got == want_glob)
    want_gobgp = {FRR_NET: ((MCR_AS, FRR_AS), HUB_GOBGP), BIRD_NET: ((MCR_AS, BIRD_AS), HUB_GOBGP),
                  G_NET: ((MCR_AS, GLOBAL_AS), HUB_GOBGP), OPENBGPD_NET: ((MCR_AS, OPENBGPD_AS), HUB_GOBGP)}
    poll(lambda: _from_hub(topo.gobgp.routes("ipv6")), TIMEOUT, "GoBGP's IPv6 RIB",
         until=lambda got: got == want_gobgp)
    want_openbgpd = {FRR_NET: ((MCR_AS, FRR_AS), HUB_OPENBGPD), BIRD_NET: ((MCR_AS, BIRD_AS), HUB_OPENBGPD),
                     G_NET: ((MCR_AS, GLOBAL_AS), HUB_OPENBGPD), GOBGP_NET: ((MCR_AS, GOBGP_AS), HUB_OPENBGPD)}
    poll(lambda: _from_hub(topo.openbgpd.routes("ipv6")), TIMEOUT, "OpenBGPD's IPv6 RIB",
         until=lambda got: got == want_openbgpd)


def test_hub_kernel_routes_through_the_link_local_next_hops_and_their_interfaces(topo: Topology) -> None:
    lab = topo.lab
    # BIRD sends its interface's own link-local address (the kernel's EUI-64 one), not the session's fe80::3: any
    # link-local address of BIRD's end of the link is right.
    bird_link_local = {a["local"] for link in topo.bird_ns.ip_json("addr", "show", "dev", topo.bird_if)
                       for a in link.get("addr_info", []) if a["local"].startswith("fe80:")}
    want = {FRR_NET: (PEER_FRR, lab.ifname("frr")), G_NET: (PEER_G, lab.ifname("glob")),
            GOBGP_NET: (PEER_GOBGP, lab.ifname("gobgp")), OPENBGPD_NET: (PEER_OPENBGPD, lab.ifname("openbgpd"))}

    def right(got: dict[str, tuple[str, str]]) -> bool:
        bird_hop = got.get(BIRD_NET, ("", ""))
        others = {p: hop for p, hop in got.items() if p != BIRD_NET}
        return others == want and bird_hop[0] in bird_link_local and bird_hop[1] == lab.ifname("bird")

    poll(lambda: _hub_routes(topo.hub), TIMEOUT, "hub kernel routes (proto 252)", until=right)


def test_packets_cross_the_hub_between_link_local_and_global_peers(topo: Topology) -> None:
    def reaches(target: str) -> bool:
        ping = ("ping", "-n", "-q", "-c", "1", "-W", "1", "-I", G_HOST, target)
        return topo.glob_ns.run(*ping, check=False).returncode == 0

    for target in (FRR_HOST, BIRD_HOST):
        poll(functools.partial(reaches, target), TIMEOUT, f"ping {target} from {G_HOST} across the hub")


def test_a_link_local_peer_that_only_connects_gets_its_session(topo: Topology) -> None:
    """mcrd listens on its link-local addresses too, bound to the VXC's interface (a link-local listening socket
    binds only with one). The hub's own SYNs to BIRD are dropped from now on and BIRD's session is restarted: it
    comes back only through the connection BIRD opens to the hub."""
    topo.hub.run("nft", "-f", "-", input_text=(
        "table inet mcl_ll {\n chain out {\n  type filter hook output priority 0;\n"
        f"  ip6 daddr {PEER_BIRD} tcp dport 179 tcp flags & (syn | ack) == syn drop\n }}\n}}\n"))
    topo.bird.birdc("disable", "mcr6")
    poll(lambda: topo.bird.session_state("mcr6"), TIMEOUT, "BIRD's session down", until=lambda s: s != "Established")
    topo.bird.birdc("enable", "mcr6")
    topo.bird.wait_established("mcr6", TIMEOUT)
    connection = poll(lambda: topo.hub.run("ss", "-Htn", "state", "established", "sport", "= :179").stdout, TIMEOUT,
                      "the hub's end of BIRD's connection on port 179", until=lambda out: f"[{PEER_BIRD}]" in out)
    assert f"[{HUB_BIRD}]" in connection
    topo.bird.wait_route(G_NET, TIMEOUT)
