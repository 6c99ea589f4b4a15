"""Interop: one hub scenario against every peer implementation, read from each peer's own RIB and counters.

One mcrd hub (AS 133937) and six spokes, each its own implementation or flavour, all NON_CLOUD so every route goes
to every other spoke::

    frr (FRR 64512)        bird (BIRD 12076)         gobgp (GoBGP 65001)
    openbgpd (OpenBGPD 65002)   as4 (BIRD, AS 4200000001)   as4off (BIRD 65003, `enable as4 off`; mcrd's
                                                                    `localAsn` 65100 on that session)

Spoke n (1..6) peers from 169.254.n.2 with the hub's 169.254.n.1 and originates 10.n.0.0/16 tagged with one
community of each kind: 65030:n, rt 65030:n (RFC 4360), 4200000001:30:n (RFC 8092). FRR, BIRD, GoBGP and OpenBGPD
have a second session with a TCP-MD5 key on 169.254.n.5/.6 that carries no routes (mcrd exports nothing on it and
imports nothing from it). docs/INTEROP.md is the matrix these tests prove; each test names its column, and the
parameter names the peer.

A second, separate lab puts two mcrd hubs back to back (an MCR-to-MCR VXC, dual stack, a TCP-MD5 key on its IPv4
session), each with a cloud behind it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import (
    BgpPeer,
    BirdNeighbor,
    BirdPeer,
    BirdStatic,
    FrrNeighbor,
    FrrPeer,
    GoBgpNeighbor,
    GoBgpPeer,
    Lab,
    LabCommandError,
    Netns,
    OpenBgpdNeighbor,
    OpenBgpdNetwork,
    OpenBgpdPeer,
    Route,
    bird_config,
    frr_config,
    gobgp_config,
    openbgpd_config,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS = 133937
TIMEOUT = 30.0
MD5_WAIT = 15.0
NOTHING = "192.0.2.0/24"  # the MD5 sessions' import permit list: a prefix no spoke sends


@dataclass(frozen=True)
class Spoke:
    name: str  # namespace and test id
    impl: str  # frr, bird, gobgp, openbgpd
    asn: int
    n: int  # its links are 169.254.n.0/30 and (MD5) 169.254.n.4/30, its prefix 10.n.0.0/16
    local_asn: int = MCR_AS  # mcrd's AS on this session (`localAsn`)
    as4: bool = True
    md5: bool = False
    v6: bool = False  # a third session over IPv6 (2001:db8:ffff:n::1 and ::2), its prefix 2001:db8:n::/48

    @property
    def hub_ip(self) -> str:
        return f"169.254.{self.n}.1"

    @property
    def ip(self) -> str:
        return f"169.254.{self.n}.2"

    @property
    def md5_hub_ip(self) -> str:
        return f"169.254.{self.n}.5"

    @property
    def md5_ip(self) -> str:
        return f"169.254.{self.n}.6"

    @property
    def hub_ip6(self) -> str:
        return f"2001:db8:ffff:{self.n}::1"

    @property
    def ip6(self) -> str:
        return f"2001:db8:ffff:{self.n}::2"

    @property
    def prefix6(self) -> str:
        return f"2001:db8:{self.n}::/48"

    @property
    def key(self) -> str:
        return f"md5-{self.name}"

    @property
    def prefix(self) -> str:
        return f"10.{self.n}.0.0/16"

    @property
    def communities(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(standard, extended, large) as every peer's parser spells them."""
        return (f"65030:{self.n}",), (f"rt 65030:{self.n}",), (f"4200000001:30:{self.n}",)


SPOKES = [
    Spoke("frr", "frr", 64512, 1, md5=True, v6=True),
    Spoke("bird", "bird", 12076, 2, md5=True, v6=True),
    Spoke("gobgp", "gobgp", 65001, 3, md5=True, v6=True),
    Spoke("openbgpd", "openbgpd", 65002, 4, md5=True, v6=True),
    Spoke("as4", "bird", 4200000001, 5),
    Spoke("as4off", "bird", 65003, 6, local_asn=65100, as4=False),
]
BY_NAME = {s.name: s for s in SPOKES}
MD5_SPOKES = [s.name for s in SPOKES if s.md5]
V6_SPOKES = [s.name for s in SPOKES if s.v6]


def mcr_config(lab: Lab) -> str:
    vxcs = []
    for s in SPOKES:
        conns: list[dict[str, Any]] = [{
            "peerAsn": s.asn, "localIpAddress": s.hub_ip, "peerIpAddress": s.ip, "peerType": "NON_CLOUD",
            "holdTime": 9, **({"localAsn": s.local_asn} if s.local_asn != MCR_AS else {}),
        }]
        addresses = [f"{s.hub_ip}/30"]
        if s.md5:
            addresses.append(f"{s.md5_hub_ip}/30")
            conns.append({"peerAsn": s.asn, "localIpAddress": s.md5_hub_ip, "peerIpAddress": s.md5_ip,
                          "peerType": "NON_CLOUD", "holdTime": 9, "password": s.key, "exportPolicy": "deny",
                          "importWhitelist": "nothing"})
        if s.v6:
            addresses.append(f"{s.hub_ip6}/64")
            conns.append({"peerAsn": s.asn, "localIpAddress": s.hub_ip6, "peerIpAddress": s.ip6,
                          "peerType": "NON_CLOUD", "holdTime": 9})
        vxcs.append({"productName": f"{s.name}-vxc", "interface": lab.ifname(s.name),
                     "vrouter": {"interfaces": [{"ipAddresses": addresses, "bgpConnections": conns}]}})
    config = {
        "mcr": {"productName": "interop-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "prefixFilterLists": [{"id": 1, "description": "nothing", "addressFamily": "IPv4",
                               "entries": [{"action": "permit", "prefix": NOTHING, "le": 24}]}],
        "vxcs": vxcs,
    }
    return json.dumps(config, indent=2) + "\n"


def start_mcrd(lab: Lab, ns: Netns, config_text: str) -> Any:
    config = lab.make_dir(f"mcrd-{ns.short}") / "mcrd.yaml"
    config.write_text(config_text)
    return ns.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                    "--state-dir", str(lab.make_dir(f"mcrd-state-{ns.short}")), label="mcrd")


# --- each implementation as the tests see it --------------------------------------------------------------------


class Peer:
    """One spoke's daemon behind one interface: its main session's state, its RIB, a session reset and a route
    refresh request, each the implementation's own way."""

    def __init__(self, spoke: Spoke, daemon: BgpPeer) -> None:
        self.spoke = spoke
        self.daemon = daemon

    @property
    def ns(self) -> Netns:
        return self.daemon.ns

    def state(self, md5: bool = False) -> str:
        s = self.spoke
        if isinstance(self.daemon, BirdPeer):
            return self.daemon.session_state("mcr_md5" if md5 else "mcr")
        return self.daemon.session_state(s.md5_hub_ip if md5 else s.hub_ip)

    def state6(self) -> str:
        if isinstance(self.daemon, BirdPeer):
            return self.daemon.session_state("mcr6")
        return self.daemon.session_state(self.spoke.hub_ip6)

    def rib6(self) -> dict[str, Route]:
        """Every IPv6 route in the peer's own RIB but its own prefix (one session carries IPv6: the best path)."""
        routes = self.daemon.routes_for(self.spoke.prefix6)  # each implementation's IPv6 table
        return {p: r for p, r in routes.items() if p != self.spoke.prefix6}

    def rib(self) -> dict[str, Route]:
        """Every route in the peer's own RIB but its own prefix, with communities of the three kinds: the path
        learned on the main session where the peer holds two (an MD5 spoke gets every route on both; FRR keeps the
        older eBGP path as best, so which one is best is a race)."""
        d = self.daemon
        if isinstance(d, FrrPeer):
            routes = {p: _main_path(d.route_detail(p), self.spoke.hub_ip) for p in d.routes("ipv4")}
        elif isinstance(d, BirdPeer):
            routes = d.routes("master4")
        elif isinstance(d, GoBgpPeer | OpenBgpdPeer):
            routes = d.routes("ipv4")
        else:
            raise TypeError(d)
        return {p: r for p, r in routes.items() if p != self.spoke.prefix}

    def reset(self) -> None:
        """Reset the main session from the peer's side (it closes the connection and connects again)."""
        d, hub = self.daemon, self.spoke.hub_ip
        if isinstance(d, FrrPeer):
            d.vtysh(f"clear bgp {hub}")
        elif isinstance(d, BirdPeer):
            d.birdc("restart", "mcr")
        elif isinstance(d, GoBgpPeer):
            # Not `neighbor X reset`: after it GoBGP 3.10 stays idle 30 s whatever the config file says.
            d.gobgp("neighbor", hub, "disable")
            poll(lambda: d.session_state(hub), TIMEOUT, f"{d!r}: session down", until=lambda got: got != "Established")
            d.gobgp("neighbor", hub, "enable")
        elif isinstance(d, OpenBgpdPeer):
            d.bgpctl("neighbor", hub, "clear")

    def refresh_counters(self) -> tuple[object, int, int]:
        """(what changes when the session is reset, ROUTE-REFRESH messages sent, UPDATEs received) as the peer
        counts them; BIRD counts no ROUTE-REFRESH (-1) and counts routes, not messages."""
        d, hub = self.daemon, self.spoke.hub_ip
        if isinstance(d, FrrPeer):
            entry = d.show_json(f"show bgp neighbors {hub}")[hub]
            stats = entry["messageStats"]
            return entry["connectionsEstablished"], int(stats["routeRefreshSent"]), int(stats["updatesRecv"])
        if isinstance(d, OpenBgpdPeer):
            msg = d.neighbor(hub)["stats"]["message"]
            return msg["sent"]["open"], int(msg["sent"]["route_refresh"]), int(msg["received"]["updates"])
        if isinstance(d, BirdPeer):
            out = d.birdc("show", "protocols", "all", "mcr").stdout
            since = out.splitlines()[2].split()[4:6]  # the protocol line: name, proto, table, state, since
            m = re.search(r"Import updates:\s+(\d+)", out)
            return tuple(since), -1, int(m.group(1)) if m else 0
        raise TypeError(d)

    def request_refresh(self) -> None:
        """Ask mcrd to send its routes again (ROUTE-REFRESH, RFC 2918); raises when the peer refuses."""
        d, hub = self.daemon, self.spoke.hub_ip
        if isinstance(d, FrrPeer):
            proc = d.vtysh(f"clear bgp ipv4 unicast {hub} soft in", check=False)
            text = proc.stdout + proc.stderr
            if "%" in text or "refresh" in text.lower():
                raise AssertionError(f"FRR refuses the route refresh: {text.strip()}")
        elif isinstance(d, BirdPeer):
            out = d.birdc("reload", "in", "mcr").stdout
            if "reload" not in out.lower() or "fail" in out.lower() or "not" in out.lower():
                raise AssertionError(f"BIRD refuses the route refresh: {out.strip()}")
        elif isinstance(d, OpenBgpdPeer):
            proc = d.bgpctl("neighbor", hub, "refresh", check=False)
            if proc.returncode != 0 or "processed" not in proc.stdout:
                raise AssertionError(f"OpenBGPD refuses the route refresh: {(proc.stdout + proc.stderr).strip()}")
        else:
            raise TypeError(d)


def start_peer(lab: Lab, spoke: Spoke, ns: Netns) -> Peer:
    s = spoke
    std, ext, large = s.communities
    router_id = f"10.0.0.{s.n}"
    if s.impl == "frr":
        neighbors = [FrrNeighbor(s.hub_ip, s.local_asn, hold_time=9)]
        if s.md5:
            neighbors.append(FrrNeighbor(s.md5_hub_ip, s.local_asn, password=s.key, hold_time=9))
        if s.v6:
            neighbors.append(FrrNeighbor(s.hub_ip6, s.local_asn, hold_time=9))
        frr = FrrPeer(ns, s.asn, router_id, frr_config(s.asn, router_id, neighbors, hostname=s.name,
                                                        graceful_restart=False))
        frr.announce(s.prefix, communities=std, ext_communities=ext, large_communities=large)
        if s.v6:
            frr.announce(s.prefix6)
        return Peer(s, frr)
    if s.impl == "bird":
        extra = () if s.as4 else ("enable as4 off;",)
        birds = [BirdNeighbor("mcr", s.hub_ip, s.local_asn, hold_time=9, extra=extra)]
        if s.md5:
            birds.append(BirdNeighbor("mcr_md5", s.md5_hub_ip, s.local_asn, password=s.key, hold_time=9))
        statics = [BirdStatic(s.prefix, communities=std, ext_communities=ext, large_communities=large)]
        if s.v6:
            birds.append(BirdNeighbor("mcr6", s.hub_ip6, s.local_asn, hold_time=9))
            statics.append(BirdStatic(s.prefix6))
        return Peer(s, BirdPeer(ns, bird_config(s.asn, router_id, birds, statics, kernel_export=False)))
    if s.impl == "gobgp":
        gos = [GoBgpNeighbor(s.hub_ip, s.local_asn, hold_time=9)]
        if s.md5:
            gos.append(GoBgpNeighbor(s.md5_hub_ip, s.local_asn, password=s.key, hold_time=9))
        if s.v6:
            gos.append(GoBgpNeighbor(s.hub_ip6, s.local_asn, hold_time=9))
        gobgp = GoBgpPeer(ns, gobgp_config(s.asn, router_id, gos))
        gobgp.announce(s.prefix, communities=std, ext_communities=ext, large_communities=large)
        if s.v6:
            gobgp.announce(s.prefix6)
        return Peer(s, gobgp)
    if s.impl == "openbgpd":
        obs = [OpenBgpdNeighbor(s.hub_ip, s.local_asn, local_address=s.ip, hold_time=9)]
        if s.md5:
            obs.append(OpenBgpdNeighbor(s.md5_hub_ip, s.local_asn, local_address=s.md5_ip, password=s.key,
                                        hold_time=9))
        nets: list[OpenBgpdNetwork | str] = [OpenBgpdNetwork(s.prefix, std, ext, large)]
        if s.v6:
            obs.append(OpenBgpdNeighbor(s.hub_ip6, s.local_asn, local_address=s.ip6, hold_time=9))
            nets.append(s.prefix6)
        return Peer(s, OpenBgpdPeer(ns, openbgpd_config(s.asn, router_id, obs, nets)))
    raise ValueError(s.impl)


@dataclass
class World:
    lab: Lab
    hub: Netns
    peers: dict[str, Peer]
    started: float


def build_world(lab: Lab) -> World:
    hub = lab.netns("hub")
    spokes = {s.name: lab.netns(s.name) for s in SPOKES}
    for s in SPOKES:
        # mcrd configures the hub side itself (addresses from its config); the peer side is the lab's.
        lab.link(hub, s.name, spokes[s.name], "hub", [], [f"{s.ip}/30"] + ([f"{s.md5_ip}/30"] if s.md5 else [])
                 + ([f"{s.ip6}/64"] if s.v6 else []))
    start_mcrd(lab, hub, mcr_config(lab))
    return World(lab, hub, {s.name: start_peer(lab, s, spokes[s.name]) for s in SPOKES}, time.monotonic())


@pytest.fixture(scope="module")
def labs(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[tuple[World, Pair]]:
    """Both labs of the module, built together: the MCR-to-MCR pair comes up while the hub's tests run."""
    with module_lab("test_interop-pair", request) as pair_lab, module_lab("test_interop", request) as lab:
        pair = build_pair(pair_lab)
        yield build_world(lab), pair


@pytest.fixture(scope="module")
def world(labs: tuple[World, Pair]) -> World:
    return labs[0]


@pytest.fixture(scope="module")
def pair(labs: tuple[World, Pair]) -> Pair:
    return labs[1]


# --- what MCR-SEMANTICS.md predicts each spoke holds ----------------------------------------------------------------


def others(spoke: Spoke) -> list[Spoke]:
    return [s for s in SPOKES if s is not spoke]


def expected_path(at: Spoke, origin: Spoke) -> tuple[int, ...]:
    """mcrd's AS on the receiving session, then the originator's AS.  To the AS4-off peer the 4-byte AS travels as
    AS_TRANS in AS_PATH and in full in AS4_PATH (RFC 6793), which BIRD merges back."""
    return at.local_asn, origin.asn


def wait_rib(peer: Peer, what: str, view: Callable[[dict[str, Route]], object], want: object) -> None:
    poll(lambda: view(peer.rib()), TIMEOUT, f"{peer.spoke.name} ({peer.spoke.impl}): {what}",
         until=lambda got: got == want)


def reference(spoke: Spoke, w: World) -> Peer:
    """A peer that shows how `spoke`'s route arrives at the others (FRR; BIRD for FRR's own route)."""
    return w.peers["bird" if spoke.name == "frr" else "frr"]



def _main_path(paths: list[Route], hub_ip: str) -> Route:
    """The path learned from `hub_ip` (FRR's peer address), else the best."""
    return next((path for path in paths if path.source == hub_ip), paths[0])

# --- the matrix's columns, one test each, parametrized by peer ----------------------------------------------------


ALL = [s.name for s in SPOKES]


@pytest.mark.parametrize("name", ALL)
def test_session(world: World, name: str) -> None:
    peer = world.peers[name]
    poll(peer.state, TIMEOUT, f"{name}: the session with the hub", until=lambda got: got == "Established")


@pytest.mark.parametrize("name", ALL)
def test_routes(world: World, name: str) -> None:
    """The peer holds exactly the other spokes' prefixes, and its own prefix reaches another spoke."""
    peer, spoke = world.peers[name], BY_NAME[name]
    want = sorted(s.prefix for s in others(spoke))
    wait_rib(peer, "exactly the other spokes' prefixes", lambda rib: sorted(rib), want)
    ref = reference(spoke, world)
    poll(lambda: spoke.prefix in ref.rib(), TIMEOUT, f"{name}'s prefix at {ref.spoke.name}")


@pytest.mark.parametrize("name", ALL)
def test_as_path(world: World, name: str) -> None:
    """AS paths as received: mcrd's AS on this session (localAsn for as4off) then the originator's, 4-byte ASNs
    whole (AS4_PATH reconstruction at the AS4-off peer); the peer's own AS arrives at another spoke."""
    peer, spoke = world.peers[name], BY_NAME[name]
    want = {s.prefix: expected_path(spoke, s) for s in others(spoke)}
    wait_rib(peer, "AS paths", lambda rib: {p: r.as_path for p, r in rib.items()}, want)
    ref = reference(spoke, world)
    wait_rib(ref, f"{name}'s AS path", lambda rib: rib.get(spoke.prefix, Route("", (), None, "", "")).as_path,
             expected_path(ref.spoke, spoke))


@pytest.mark.parametrize("name", ["as4", "as4off"])
def test_four_octet_as_capability(world: World, name: str) -> None:
    """The 4-byte-ASN peer's session is a 4-octet one; the AS4-off peer's is not (BIRD offers no 4-octet AS
    capability and calls the session plain "external"), so the AS paths test_as_path reads at as4off came through
    AS_TRANS and AS4_PATH, and mcrd's side of it speaks as AS 65100 (localAsn) in a 2-octet OPEN."""
    peer, spoke = world.peers[name], BY_NAME[name]
    assert isinstance(peer.daemon, BirdPeer)
    bird = peer.daemon
    poll(peer.state, TIMEOUT, f"{name}: the session", until=lambda got: got == "Established")
    out = bird.birdc("show", "protocols", "all", "mcr").stdout
    local_caps = out.split("Local capabilities", 1)[1].split("Neighbor capabilities", 1)[0]
    session = re.search(r"^\s*Session:\s*(.*)$", out, re.M)
    assert session is not None, out
    assert ("4-octet AS numbers" in local_caps) == spoke.as4, out
    assert ("AS4" in session.group(1).split()) == spoke.as4, out
    assert f"Neighbor AS:      {spoke.local_asn}" in out, out


@pytest.mark.parametrize("name", ALL)
def test_next_hop(world: World, name: str) -> None:
    """Every route the peer holds has the hub's address on this link as next hop (eBGP next-hop self)."""
    peer, spoke = world.peers[name], BY_NAME[name]
    want = {s.prefix: spoke.hub_ip for s in others(spoke)}
    wait_rib(peer, "next hops", lambda rib: {p: r.next_hop for p, r in rib.items()}, want)


@pytest.mark.parametrize("name", ALL)
def test_communities(world: World, name: str) -> None:
    """Standard, extended and large communities as the peer shows them, on every route it holds; its own three
    arrive at another spoke unchanged."""
    peer, spoke = world.peers[name], BY_NAME[name]

    def kinds(route: Route | None) -> object:
        return None if route is None else (route.communities, route.ext_communities, route.large_communities)

    want = {s.prefix: s.communities for s in others(spoke)}
    wait_rib(peer, "communities of all three kinds", lambda rib: {p: kinds(r) for p, r in rib.items()}, want)
    ref = reference(spoke, world)
    wait_rib(ref, f"{name}'s communities", lambda rib: kinds(rib.get(spoke.prefix)), spoke.communities)


@pytest.mark.parametrize("name", MD5_SPOKES)
def test_md5(world: World, name: str) -> None:
    """The session with a TCP-MD5 key (RFC 2385) establishes.  mcrd's side sets the key, so the hub's kernel drops
    any segment of this connection the peer did not sign with it (test_daemon proves a wrong key never
    establishes): Established means the peer signs."""
    peer = world.peers[name]
    # Counted from the lab's start: the MD5 sessions come up with the others, in a second or two.
    poll(lambda: peer.state(md5=True), max(1.0, world.started + MD5_WAIT - time.monotonic()),
         f"{name}: the MD5 session", until=lambda got: got == "Established")


# --- IPv6: a session over global IPv6 addresses carrying IPv6 unicast only --------------------------------------


@pytest.mark.parametrize("name", V6_SPOKES)
def test_ipv6_session(world: World, name: str) -> None:
    peer = world.peers[name]
    poll(peer.state6, TIMEOUT, f"{name}: the IPv6 session with the hub", until=lambda got: got == "Established")


@pytest.mark.parametrize("name", V6_SPOKES)
def test_ipv6_routes(world: World, name: str) -> None:
    """The peer's IPv6 table holds exactly the other IPv6 spokes' prefixes, each with the AS path mcrd's AS then
    the originator's and the hub's global address on this link as next hop; no IPv4 prefix rides the IPv6 session
    (the IPv4 table's exactness is test_routes')."""
    peer, spoke = world.peers[name], BY_NAME[name]
    want = {s.prefix6: (expected_path(spoke, s), spoke.hub_ip6) for s in others(spoke) if s.v6}
    poll(lambda: {p: (r.as_path, r.next_hop) for p, r in peer.rib6().items()}, TIMEOUT,
         f"{name} ({spoke.impl}): exactly the other spokes' IPv6 prefixes, path and next hop",
         until=lambda got: got == want)


# --- route refresh from the peer (issue 18.6) ----------------------------------------------------------------------


# GoBGP is left out: it keeps its own Adj-RIB-In and `gobgp neighbor X softresetin` re-reads it without sending a
# ROUTE-REFRESH (measured: its peer counts none), so there is nothing of mcrd's to test.
REFRESH_SPOKES = ["frr", "bird", "openbgpd"]
REFRESH_WAIT = 10.0  # mcrd answers at once: the routes come back within a second


@pytest.mark.parametrize("name", REFRESH_SPOKES)
def test_route_refresh(world: World, name: str) -> None:
    """The peer asks for mcrd's routes again (ROUTE-REFRESH): it counts the request sent and UPDATEs received
    again, the session is not reset, and it holds the same routes after."""
    peer, spoke = world.peers[name], BY_NAME[name]
    want = sorted(s.prefix for s in others(spoke))
    wait_rib(peer, "its routes before the refresh", lambda rib: sorted(rib), want)
    session, sent, received = peer.refresh_counters()
    peer.request_refresh()
    # BIRD counts no ROUTE-REFRESH sent (-1): the UPDATEs received again are the evidence.
    poll(peer.refresh_counters, REFRESH_WAIT, f"{name}: a refresh sent and mcrd's routes received again",
         until=lambda got: (sent < 0 or got[1] > sent) and got[2] >= received + len(want))
    assert peer.refresh_counters()[0] == session, f"{name}: the session was reset"
    wait_rib(peer, "its routes after the refresh", lambda rib: sorted(rib), want)


# --- incoming connections (issue 18.5) -----------------------------------------------------------------------------

DROP_SYN_TO_179 = """table inet mcl_incoming {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 179 tcp flags & (syn | ack) == syn drop
  }
}
"""
INCOMING_WAIT = 20.0  # measured with incoming connections accepted: GoBGP, the slowest, is back in 13 s


@pytest.fixture(scope="module")
def incoming(world: World) -> Iterator[float]:
    """Every spoke drops connection attempts to its port 179 (mcrd's SYNs) and resets its main session: from then
    on only a connection the spoke opens can establish.  Shared so that the spokes wait at the same time; yields
    the time of the resets.  Put back at the end: rules removed, sessions re-established by mcrd."""
    for peer in world.peers.values():
        peer.ns.run("nft", "-f", "-", input_text=DROP_SYN_TO_179)
    started = time.monotonic()
    for peer in world.peers.values():
        peer.reset()
    yield started
    for peer in world.peers.values():
        peer.ns.run("nft", "delete", "table", "inet", "mcl_incoming", check=False)
    for name, peer in world.peers.items():
        poll(peer.state, TIMEOUT, f"{name}: session back after the incoming test",
             until=lambda got: got == "Established")


def hub_accepted(world: World, spoke: Spoke) -> bool:
    """An established connection on the hub's port 179 from this spoke: one the spoke opened."""
    out = world.hub.run("ss", "-Htn", "state", "established", "sport", "=", ":179").stdout
    return any(f"{spoke.hub_ip}:179" in line and f"{spoke.ip}:" in line for line in out.splitlines())


@pytest.mark.parametrize("name", ALL)
def test_incoming_connection(world: World, incoming: float, name: str) -> None:
    """With mcrd's own connection attempts dropped, the session the spoke opens establishes (on the hub's port
    179) and the spoke gets its routes back (every spoke was reset at once: the others' routes come back as their
    own sessions do, within TIMEOUT of this one)."""
    peer, spoke = world.peers[name], BY_NAME[name]
    deadline = max(1.0, incoming + INCOMING_WAIT - time.monotonic())
    poll(peer.state, deadline, f"{name}: the session it opened", until=lambda got: got == "Established")
    assert hub_accepted(world, spoke), f"{name}: the established session is not on the hub's port 179"
    wait_rib(peer, "its routes over the connection it opened", lambda rib: sorted(rib),
             sorted(s.prefix for s in others(spoke)))


# --- mcrd against mcrd: two MCRs joined by a VXC, a cloud behind each -----------------------------------------------

MCR_B_AS = 65200
CLOUD_A_AS, CLOUD_B_AS = 64512, 12076
NET_A, NET_B = "10.10.0.0/16", "10.30.0.0/16"
HOST_A, HOST_B = "10.10.0.1", "10.30.0.1"
NET_A6, NET_B6 = "2001:db8:10::/48", "2001:db8:30::/48"  # dual stack: an IPv6 session beside each IPv4 one
HOST_A6, HOST_B6 = "2001:db8:10::1", "2001:db8:30::1"
PAIR_KEY = "mcr-to-mcr-md5"  # the MCR-to-MCR session's TCP-MD5 key, set at both ends
# (standard, extended, large) communities each cloud tags its prefix with, as the harness spells them.
COMMUNITIES_A = ("65010:1",), ("rt 65010:1",), ("4200000001:10:1",)
COMMUNITIES_B = ("65030:3",), ("rt 65030:3",), ("4200000001:30:3",)


Ends = tuple[str, str, str, str, int]  # local and peer address, IPv4 then IPv6; the peer's AS


def pair_config(lab: Lab, asn: int, name: str, cloud: Ends, other: Ends) -> str:
    def vxc(iface: str, local: str, peer: str, local6: str, peer6: str, peer_asn: int,
            key: str | None = None) -> dict[str, Any]:
        conn = {"peerAsn": peer_asn, "localIpAddress": local, "peerIpAddress": peer, "peerType": "NON_CLOUD",
                "holdTime": 9, **({"password": key} if key else {})}
        conn6 = {"peerAsn": peer_asn, "localIpAddress": local6, "peerIpAddress": peer6, "peerType": "NON_CLOUD",
                 "holdTime": 9}
        return {"productName": f"{iface}-vxc", "interface": lab.ifname(iface),
                "vrouter": {"interfaces": [{"ipAddresses": [f"{local}/30", f"{local6}/64"],
                                            "bgpConnections": [conn, conn6]}]}}

    config = {"mcr": {"productName": name, "mcrAsn": asn, "routerId": f"10.255.0.{asn % 250}"},
              "vxcs": [vxc("cloud", *cloud), vxc("mcr", *other, key=PAIR_KEY)]}
    return json.dumps(config, indent=2) + "\n"


@dataclass
class Pair:
    lab: Lab
    mcra: Netns
    mcrb: Netns
    clouda: FrrPeer
    cloudb: BirdPeer
    started: float


def build_pair(lab: Lab) -> Pair:
    """mcra (AS 133937) -- mcrb (AS 65200) over 169.254.9.0/30 (TCP-MD5 at both ends) and 2001:db8:ffff:9::/64;
    clouda (FRR 64512, 10.10/16 and 2001:db8:10::/48) behind mcra over 169.254.1.0/30 and 2001:db8:ffff:1::/64,
    cloudb (BIRD 12076, 10.30/16 and 2001:db8:30::/48) behind mcrb over 169.254.2.0/30 and 2001:db8:ffff:2::/64:
    an IPv4 and an IPv6 session on each VXC. Each cloud tags its IPv4 prefix with communities of all three kinds
    and has a host address of each family in its prefixes."""
    mcra, mcrb, clouda, cloudb = (lab.netns(n) for n in ("mcra", "mcrb", "clouda", "cloudb"))
    lab.link(mcra, "mcr", mcrb, "mcr", [], [])
    lab.link(mcra, "cloud", clouda, "mcr", [], ["169.254.1.2/30", "2001:db8:ffff:1::2/64"])
    lab.link(mcrb, "cloud", cloudb, "mcr", [], ["169.254.2.2/30", "2001:db8:ffff:2::2/64"])
    for ns, host, host6 in ((clouda, HOST_A, HOST_A6), (cloudb, HOST_B, HOST_B6)):
        ns.add_address("lo", f"{host}/32")
        ns.add_address("lo", f"{host6}/128")
    start_mcrd(lab, mcra, pair_config(
        lab, MCR_AS, "mcr-a", ("169.254.1.1", "169.254.1.2", "2001:db8:ffff:1::1", "2001:db8:ffff:1::2", CLOUD_A_AS),
        ("169.254.9.1", "169.254.9.2", "2001:db8:ffff:9::1", "2001:db8:ffff:9::2", MCR_B_AS)))
    start_mcrd(lab, mcrb, pair_config(
        lab, MCR_B_AS, "mcr-b", ("169.254.2.1", "169.254.2.2", "2001:db8:ffff:2::1", "2001:db8:ffff:2::2", CLOUD_B_AS),
        ("169.254.9.2", "169.254.9.1", "2001:db8:ffff:9::2", "2001:db8:ffff:9::1", MCR_AS)))
    a = FrrPeer(clouda, CLOUD_A_AS, "10.0.1.1", frr_config(
        CLOUD_A_AS, "10.0.1.1", [FrrNeighbor("169.254.1.1", MCR_AS, hold_time=9),
                                 FrrNeighbor("2001:db8:ffff:1::1", MCR_AS, hold_time=9)],
        hostname="clouda", graceful_restart=False))
    std, ext, large = COMMUNITIES_A
    a.announce(NET_A, communities=std, ext_communities=ext, large_communities=large)
    a.announce(NET_A6)
    std, ext, large = COMMUNITIES_B
    b = BirdPeer(cloudb, bird_config(CLOUD_B_AS, "10.0.1.2",
                                     [BirdNeighbor("mcr", "169.254.2.1", MCR_B_AS, hold_time=9),
                                      BirdNeighbor("mcr6", "2001:db8:ffff:2::1", MCR_B_AS, hold_time=9)],
                                     [BirdStatic(NET_B, communities=std, ext_communities=ext,
                                                 large_communities=large), BirdStatic(NET_B6)]))
    return Pair(lab, mcra, mcrb, a, b, time.monotonic())


def pair_wait(pair: Pair) -> float:
    """What is left of the pair's shared wait (the MCR-to-MCR session needs one side to accept)."""
    return max(1.0, pair.started + TIMEOUT - time.monotonic())


def lg_sessions(ns: Netns) -> dict[str, str]:
    rows = json.loads(ns.run(sys.executable, "-m", "mcrd", "lg", "--json", "sessions").stdout)
    return {str(r["neighborAddress"]): str(r["status"]) for r in rows}


def test_mcrd_to_mcrd_session(pair: Pair) -> None:
    """Both MCRs' looking glasses show the MCR-to-MCR sessions UP, IPv4 and IPv6."""
    def states() -> tuple[str | None, ...]:
        at_a, at_b = lg_sessions(pair.mcra), lg_sessions(pair.mcrb)
        return (at_a.get("169.254.9.2"), at_b.get("169.254.9.1"),
                at_a.get("2001:db8:ffff:9::2"), at_b.get("2001:db8:ffff:9::1"))

    poll(states, pair_wait(pair), "the MCR-to-MCR sessions at both ends", until=lambda got: got == ("UP",) * 4,
         ignore=(LabCommandError,))  # the looking glass answers a moment after the daemon starts


def wait_path_and_hop(pair: Pair, cloud: str, peer: BgpPeer, prefix: str, want: tuple[tuple[int, ...], str]) -> None:
    def seen() -> tuple[tuple[int, ...], str] | None:
        route = peer.routes_for(prefix).get(prefix)
        return None if route is None else (route.as_path, route.next_hop)

    poll(seen, pair_wait(pair), f"{cloud} holds {prefix}", until=lambda got: got == want)


def test_mcrd_to_mcrd_routes(pair: Pair) -> None:
    """Each cloud holds the other's prefixes of both families across both MCRs: both MCRs' ASes in the path, its own
    MCR's address on that link as next hop."""
    to_a, to_b = (MCR_AS, MCR_B_AS, CLOUD_B_AS), (MCR_B_AS, MCR_AS, CLOUD_A_AS)
    expected: list[tuple[str, BgpPeer, str, tuple[tuple[int, ...], str]]] = [
        ("cloud A", pair.clouda, NET_B, (to_a, "169.254.1.1")),
        ("cloud B", pair.cloudb, NET_A, (to_b, "169.254.2.1")),
        ("cloud A", pair.clouda, NET_B6, (to_a, "2001:db8:ffff:1::1")),
        ("cloud B", pair.cloudb, NET_A6, (to_b, "2001:db8:ffff:2::1")),
    ]
    for cloud, peer, prefix, want in expected:
        wait_path_and_hop(pair, cloud, peer, prefix, want)


def test_mcrd_to_mcrd_communities(pair: Pair) -> None:
    """Each cloud's standard, extended and large communities arrive unchanged at the other cloud, across both
    MCRs."""
    def kinds(route: Route | None) -> object:
        return None if route is None else (route.communities, route.ext_communities, route.large_communities)

    poll(lambda: kinds(pair.cloudb.routes().get(NET_A)), pair_wait(pair), "cloud A's communities at cloud B",
         until=lambda got: got == COMMUNITIES_A)
    poll(lambda: kinds(next(iter(pair.clouda.route_detail(NET_B)), None)), pair_wait(pair),
         "cloud B's communities at cloud A",
         until=lambda got: got == COMMUNITIES_B)


def test_mcrd_to_mcrd_md5(pair: Pair) -> None:
    """The MCR-to-MCR session carries a TCP-MD5 key at both ends (RFC 2385) and is UP: each MCR's kernel drops a
    segment from the other MCR's address that is not signed with it, so UP means both sign."""
    poll(lambda: (lg_sessions(pair.mcra).get("169.254.9.2"), lg_sessions(pair.mcrb).get("169.254.9.1")),
         pair_wait(pair), "the MCR-to-MCR session with its key at both ends", until=lambda got: got == ("UP", "UP"),
         ignore=(LabCommandError,))
    for ns, source, target in ((pair.mcrb, "169.254.9.2", "169.254.9.1"), (pair.mcra, "169.254.9.1", "169.254.9.2")):
        other = pair.mcra if ns is pair.mcrb else pair.mcrb
        before = other.netstat()["TcpExt.TCPMD5NotFound"]
        assert not ns.connects(source, target), f"{target}:179 accepted an unsigned connection"
        assert other.netstat()["TcpExt.TCPMD5NotFound"] > before, f"{target}'s kernel counted no unsigned SYN"


@pytest.mark.parametrize(("source", "target"), [(HOST_A, HOST_B), (HOST_A6, HOST_B6)])
def test_mcrd_to_mcrd_ping(pair: Pair, source: str, target: str) -> None:
    """A host address in cloud A reaches one in cloud B through both MCRs' kernels, over IPv4 and over IPv6."""
    def ping() -> bool:
        return pair.clouda.ns.run("ping", "-n", "-q", "-c", "1", "-W", "1", "-I", source, target,
                                  check=False).returncode == 0

    poll(ping, pair_wait(pair), f"ping {source} -> {target} across both MCRs")
