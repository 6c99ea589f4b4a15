"""Self-test of the lab harness with real FRR, BIRD, GoBGP and OpenBGPD (no mcrd): sessions, routes, withdrawal,
MD5, forwarding, teardown.

Topology (documentation addresses; traffic never leaves the namespaces this module creates)::

    hosta ---- frr (AS 64512) ---- bird (AS 12076) ---- hostb
    198.51.100.10/24     192.0.2.1/24 . 192.0.2.2/24     203.0.113.10/24
    2001:db8:a::10/64    2001:db8:12::1 . 2001:db8:12::2  2001:db8:b::10/64
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.conftest import LAB_MARKS
from tests.lab.harness import (
    REGISTRY_DIR,
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
    assert_stays,
    bird_config,
    cleanup_run,
    frr_config,
    gobgp_config,
    list_netns,
    openbgpd_config,
    pid_alive,
    poll,
    run_id_of,
)

pytestmark = LAB_MARKS

FRR_AS, BIRD_AS = 64512, 12076
PASSWORD = "lab-md5-secret"
FRR_V4, BIRD_V4 = "192.0.2.1", "192.0.2.2"
FRR_V6, BIRD_V6 = "2001:db8:12::1", "2001:db8:12::2"
HOSTA_V4, HOSTB_V4 = "198.51.100.10", "203.0.113.10"
HOSTA_V6, HOSTB_V6 = "2001:db8:a::10", "2001:db8:b::10"
HOSTA_NET_V4, HOSTA_NET_V6 = "198.51.100.0/24", "2001:db8:a::/64"
HOSTB_NET_V4, HOSTB_NET_V6 = "203.0.113.0/24", "2001:db8:b::/64"
# Extra prefixes, one per test that changes them, so the module-scoped topology stays order independent.
FRR_EXTRA_V4 = "198.18.1.0/24"  # withdrawn by test_withdrawal_disappears
BIRD_EXTRA_V4 = "198.19.2.0/24"  # withdrawn by test_withdrawal_disappears
BIRD_ATTRS_V4 = BirdStatic("198.19.1.0/24", med=50, as_path_prepend=(65000,), communities=("12076:100",))


@dataclass
class Topology:
    lab: Lab
    hosta: Netns
    hostb: Netns
    frr: FrrPeer
    bird: BirdPeer


@pytest.fixture(scope="module")
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    failed_before = request.session.testsfailed
    lab = Lab("test_harness")
    try:
        hosta, r_frr, r_bird, hostb = (lab.netns(n) for n in ("hosta", "frr", "bird", "hostb"))
        lab.link(hosta, "eth0", r_frr, "hosta", ["198.51.100.10/24", "2001:db8:a::10/64"],
                 ["198.51.100.1/24", "2001:db8:a::1/64"])
        lab.link(r_frr, "bird", r_bird, "frr", [f"{FRR_V4}/24", f"{FRR_V6}/64"], [f"{BIRD_V4}/24", f"{BIRD_V6}/64"])
        lab.link(r_bird, "hostb", hostb, "eth0", ["203.0.113.1/24", "2001:db8:b::1/64"],
                 ["203.0.113.10/24", "2001:db8:b::10/64"])
        for router in (r_frr, r_bird):
            router.enable_forwarding()
        hosta.add_route("default", via="198.51.100.1")
        hosta.add_route("default", via="2001:db8:a::1")
        hostb.add_route("default", via="203.0.113.1")
        hostb.add_route("default", via="2001:db8:b::1")

        frr = FrrPeer(r_frr, FRR_AS, "10.255.0.1", frr_config(
            FRR_AS, "10.255.0.1",
            [FrrNeighbor(BIRD_V4, BIRD_AS, password=PASSWORD), FrrNeighbor(BIRD_V6, BIRD_AS, password=PASSWORD)],
            [HOSTA_NET_V4, FRR_EXTRA_V4, HOSTA_NET_V6],
        ))
        bird = BirdPeer(r_bird, bird_config(
            BIRD_AS, "10.255.0.2",
            [BirdNeighbor("frr4", FRR_V4, FRR_AS, password=PASSWORD),
             BirdNeighbor("frr6", FRR_V6, FRR_AS, password=PASSWORD)],
            [HOSTB_NET_V4, BIRD_EXTRA_V4, BIRD_ATTRS_V4, HOSTB_NET_V6],
        ))
        for neighbor in (BIRD_V4, BIRD_V6):
            frr.wait_established(neighbor, timeout=20)
        for protocol in ("frr4", "frr6"):
            bird.wait_established(protocol, timeout=20)
    except BaseException:
        lab.dump_logs()
        lab.close()
        raise
    try:
        yield Topology(lab, hosta, hostb, frr, bird)
        if request.session.testsfailed > failed_before:
            lab.dump_logs()
    finally:
        pids = [p for ns in lab.namespaces for p in ns.pids()]
        names = [ns.name for ns in lab.namespaces]
        lab.close()
        # Nothing of the run may remain: namespaces (and with them the veths), processes, run directory.
        assert not set(names) & set(list_netns())
        assert not [p for p in pids if pid_alive(p)]
        assert not lab.workdir.exists()


def test_names_carry_the_run_id(topo: Topology) -> None:
    rid = topo.lab.run_id
    for ns in topo.lab.namespaces:
        assert ns.name.startswith("mcl-")
        assert run_id_of(ns.name) == rid
    links = topo.hosta.ip_json("link", "show")
    names = [link["ifname"] for link in links if link["ifname"] != "lo"]
    assert names == [f"eth0-{rid}"]
    assert all(len(n) <= 15 for n in names)
    with pytest.raises(ValueError, match="at most 8 characters"):
        topo.lab.ifname("too-long-1")


def test_ipv4_routes_arrive_with_as_path_and_next_hop(topo: Topology) -> None:
    # FRR's RIB: BIRD's prefixes, AS path 12076 (plus the prepended 65000), next hop BIRD's address.
    hostb_net = topo.frr.wait_route(HOSTB_NET_V4)
    assert hostb_net.as_path == (BIRD_AS,)
    assert hostb_net.next_hop == BIRD_V4
    assert hostb_net.source == BIRD_V4
    assert hostb_net.origin == "igp"
    assert hostb_net.med is None
    attrs = topo.frr.wait_route(BIRD_ATTRS_V4.prefix)
    assert attrs.as_path == (BIRD_AS, 65000)
    assert attrs.med == 50
    assert topo.frr.route_detail(BIRD_ATTRS_V4.prefix)[0].communities == ("12076:100",)
    assert set(topo.frr.routes("ipv4", neighbor=BIRD_V4)) == {HOSTB_NET_V4, BIRD_EXTRA_V4, BIRD_ATTRS_V4.prefix}
    # BIRD's RIB: FRR's prefixes, AS path 64512, next hop FRR's address, learnt by protocol frr4.
    hosta_net = topo.bird.wait_route(HOSTA_NET_V4)
    assert hosta_net.as_path == (FRR_AS,)
    assert hosta_net.next_hop == FRR_V4
    assert hosta_net.source == "frr4"
    assert hosta_net.med == 0  # FRR sets MED 0 on the networks it originates


def test_ipv6_routes_arrive_with_as_path_and_next_hop(topo: Topology) -> None:
    at_frr = topo.frr.wait_route(HOSTB_NET_V6)
    assert (at_frr.as_path, at_frr.next_hop, at_frr.source) == ((BIRD_AS,), BIRD_V6, BIRD_V6)
    at_bird = topo.bird.wait_route(HOSTA_NET_V6)
    assert (at_bird.as_path, at_bird.next_hop, at_bird.source) == ((FRR_AS,), FRR_V6, "frr6")
    assert HOSTA_NET_V4 not in topo.bird.routes("master6")
    assert set(topo.frr.routes("ipv6", neighbor=BIRD_V6)) == {HOSTB_NET_V6}


def test_end_of_rib_exchanged(topo: Topology) -> None:
    # With `bgp graceful-restart` FRR sends End-of-RIB, and BIRD (graceful restart "aware" by default) sends it too.
    eor = poll(lambda: topo.frr.end_of_rib(BIRD_V4), 10, "End-of-RIB not exchanged",
               until=lambda e: "ipv4Unicast" in e["sent"] and "ipv4Unicast" in e["received"])
    assert eor["received"] == {"ipv4Unicast"}


def test_announce_with_attributes_and_withdrawal_disappears(topo: Topology) -> None:
    # FRR withdraws a network: gone from BIRD's RIB; BIRD withdraws a static route: gone from FRR's RIB.
    topo.bird.wait_route(FRR_EXTRA_V4)
    topo.frr.wait_route(BIRD_EXTRA_V4)
    topo.frr.withdraw(FRR_EXTRA_V4)
    topo.bird.withdraw(BIRD_EXTRA_V4)
    topo.bird.wait_route_gone(FRR_EXTRA_V4, timeout=10)
    topo.frr.wait_route_gone(BIRD_EXTRA_V4, timeout=10)
    assert HOSTA_NET_V4 in topo.bird.routes()  # the rest stays
    assert BIRD_EXTRA_V4 not in topo.bird.announced
    # A new announcement with attributes arrives with them.
    prefix = "198.18.9.0/24"
    topo.frr.announce(prefix, med=7, as_path_prepend=(FRR_AS, FRR_AS), communities=("64512:9",))
    route = topo.bird.wait_route(prefix, timeout=10)
    assert (route.as_path, route.med, route.communities) == ((FRR_AS, FRR_AS, FRR_AS), 7, ("64512:9",))
    topo.frr.withdraw(prefix)
    topo.bird.wait_route_gone(prefix, timeout=10)


def test_hosts_ping_through_both_routers(topo: Topology) -> None:
    # The routers forward along the routes BGP put into their kernels: FRR via zebra, BIRD via its kernel protocol.
    poll(lambda: topo.frr.ns.kernel_routes().get(HOSTB_NET_V4), 10, "FRR did not install BIRD's route",
         until=lambda r: r is not None and r.get("protocol") == "bgp" and r.get("gateway") == BIRD_V4)
    poll(lambda: topo.bird.ns.kernel_routes().get(HOSTA_NET_V4), 10, "BIRD did not install FRR's route",
         until=lambda r: r is not None and r.get("protocol") == "bird" and r.get("gateway") == FRR_V4)
    poll(lambda: topo.hosta.ping(HOSTB_V4), 10, f"hosta cannot ping {HOSTB_V4}")
    poll(lambda: topo.hosta.ping(HOSTB_V6), 10, f"hosta cannot ping {HOSTB_V6}")
    poll(lambda: topo.hostb.ping(HOSTA_V4), 10, f"hostb cannot ping {HOSTA_V4}")


def test_ping_refuses_addresses_outside_the_lab(topo: Topology) -> None:
    with pytest.raises(ValueError, match="not an address of this lab"):
        topo.hosta.ping("192.0.2.200")


def test_stop_notifies_so_the_peer_drops_routes_at_once(lab: Lab) -> None:
    # FRR terminated by a plain SIGTERM sends no NOTIFICATION, and BIRD would keep its routes as stale for FRR's
    # graceful-restart time (120 s); stop() runs `bgp shutdown` first.  BIRD sends a Cease itself when terminated.
    r_frr, r_bird = lab.netns("frr"), lab.netns("bird")
    lab.link(r_frr, "bird", r_bird, "frr", [f"{FRR_V4}/24"], [f"{BIRD_V4}/24"])
    frr_conf = frr_config(FRR_AS, "10.255.0.1", [FrrNeighbor(BIRD_V4, BIRD_AS)], [HOSTA_NET_V4])
    bird_conf = bird_config(BIRD_AS, "10.255.0.2", [BirdNeighbor("frr4", FRR_V4, FRR_AS)], [HOSTB_NET_V4])
    frr = FrrPeer(r_frr, FRR_AS, "10.255.0.1", frr_conf)
    bird = BirdPeer(r_bird, bird_conf)
    frr.wait_route(HOSTB_NET_V4)
    bird.wait_route(HOSTA_NET_V4)
    bird.stop()
    frr.wait_route_gone(HOSTB_NET_V4, timeout=5)
    bird = BirdPeer(r_bird, bird_conf)  # a peer can be started again in the same namespace
    bird.wait_route(HOSTA_NET_V4)
    frr.stop()
    bird.wait_route_gone(HOSTA_NET_V4, timeout=5)
    assert bird.session_state("frr4") != "Established"


def test_bad_configs_are_rejected_before_start(lab: Lab) -> None:
    # FRR would log and skip a bad line, BIRD would refuse to start: both are checked first, with the reason.
    ns = lab.netns("peer")
    typo = FrrNeighbor(BIRD_V4, BIRD_AS, extra=(f"neighbor {BIRD_V4} remote-az 1",))
    bad_frr = frr_config(FRR_AS, "10.255.0.1", [typo])
    with pytest.raises(ValueError, match="No such command on config line"):
        FrrPeer(ns, FRR_AS, "10.255.0.1", bad_frr)
    bad_bird = bird_config(BIRD_AS, "10.255.0.2", [BirdNeighbor("frr4", FRR_V4, FRR_AS, extra=("bogus 1;",))])
    with pytest.raises(ValueError, match="syntax error"):
        BirdPeer(ns, bad_bird)
    frr = FrrPeer(ns, FRR_AS, "10.255.0.1", frr_config(FRR_AS, "10.255.0.1", []))
    with pytest.raises(LabCommandError):
        frr.configure(f"router bgp {FRR_AS}", f"neighbor {BIRD_V4} remote-az 1")


def test_gobgp_and_openbgpd_peers(lab: Lab) -> None:
    """GoBGP and OpenBGPD with a TCP-MD5 key: routes both ways with communities of the three kinds, run-time
    announce and withdraw, a stop by pid that the other side sees; bad configs refused before start."""
    r_go, r_ob = lab.netns("gobgp"), lab.netns("openbgpd")
    lab.link(r_go, "ob", r_ob, "go", [f"{FRR_V4}/24"], [f"{BIRD_V4}/24"])
    with pytest.raises(ValueError, match="GoBGP rejects the config"):
        GoBgpPeer(r_go, "[global.config]\n  as = \"not a number\"\n")
    with pytest.raises(ValueError, match="OpenBGPD rejects the config"):
        OpenBgpdPeer(r_ob, "AS 65002\nneighbor 192.0.2.1 { remote-az 1 }\n")
    go = GoBgpPeer(r_go, gobgp_config(65001, "10.255.0.1", [GoBgpNeighbor(BIRD_V4, 65002, password=PASSWORD)]))
    ob = OpenBgpdPeer(r_ob, openbgpd_config(
        65002, "10.255.0.2", [OpenBgpdNeighbor(FRR_V4, 65001, local_address=BIRD_V4, password=PASSWORD)],
        [OpenBgpdNetwork(HOSTB_NET_V4, ("65002:1",), ("rt 65002:1",), ("4200000001:2:1",))]))
    go.announce(HOSTA_NET_V4, med=5, communities=["65001:1"], ext_communities=["rt 65001:1"],
                large_communities=["4200000001:1:1"])
    go.wait_established(BIRD_V4)
    ob.wait_established(FRR_V4)
    at_ob = ob.wait_route(HOSTA_NET_V4)
    assert (at_ob.as_path, at_ob.next_hop, at_ob.med, at_ob.source) == ((65001,), FRR_V4, 5, FRR_V4)
    assert (at_ob.communities, at_ob.ext_communities, at_ob.large_communities) == \
        (("65001:1",), ("rt 65001:1",), ("4200000001:1:1",))
    at_go = go.wait_route(HOSTB_NET_V4)
    assert (at_go.as_path, at_go.next_hop, at_go.source) == ((65002,), BIRD_V4, BIRD_V4)
    assert (at_go.communities, at_go.ext_communities, at_go.large_communities) == \
        (("65002:1",), ("rt 65002:1",), ("4200000001:2:1",))
    ob.announce(BIRD_EXTRA_V4, communities=["65002:9"])
    assert go.wait_route(BIRD_EXTRA_V4).communities == ("65002:9",)
    ob.withdraw(BIRD_EXTRA_V4)
    go.wait_route_gone(BIRD_EXTRA_V4, timeout=5)
    go.withdraw(HOSTA_NET_V4)
    ob.wait_route_gone(HOSTA_NET_V4, timeout=5)
    ob.stop()
    go.wait_route_gone(HOSTB_NET_V4, timeout=10)
    poll(lambda: not [p for p in r_ob.pids() if pid_alive(p)], 5, "OpenBGPD's engines exit with their parent")
    go.stop()


def test_wrong_md5_password_never_establishes(lab: Lab) -> None:
    r_frr, r_bird = lab.netns("frr"), lab.netns("bird")
    lab.link(r_frr, "bird", r_bird, "frr", [f"{FRR_V4}/24"], [f"{BIRD_V4}/24"])
    frr = FrrPeer(r_frr, FRR_AS, "10.255.0.1",
                  frr_config(FRR_AS, "10.255.0.1", [FrrNeighbor(BIRD_V4, BIRD_AS, password="right")]))
    bird = BirdPeer(r_bird, bird_config(BIRD_AS, "10.255.0.2",
                                        [BirdNeighbor("frr4", FRR_V4, FRR_AS, password="wrong")], ["203.0.113.0/24"]))
    # Evidence that connections are attempted and refused for the signature: the kernel counts segments it dropped
    # for a bad TCP-MD5 signature in both namespaces (both sides try to connect, every second).
    poll(lambda: r_frr.tcp_md5_rejects() > 0 and r_bird.tcp_md5_rejects() > 0, 10,
         "no TCP-MD5 rejects counted: were connections even attempted?")
    # A non-event cannot be observed to be final, so this is a bounded check: with a matching password the session
    # is up within about a second of both daemons running (see the topology above), and both sides retry every
    # second, so 3 s without a session covers several attempts from each side, which the counters confirm.
    rejects_before = r_frr.tcp_md5_rejects() + r_bird.tcp_md5_rejects()
    assert_stays(lambda: frr.session_state(BIRD_V4) != "Established" and bird.session_state("frr4") != "Established",
                 3.0, "session established despite the wrong MD5 password")
    assert r_frr.tcp_md5_rejects() + r_bird.tcp_md5_rejects() >= rejects_before + 2
    assert frr.routes() == {}
    assert HOSTA_NET_V4 not in bird.routes()


def test_teardown_after_a_failure_leaves_nothing(lab_ready: None) -> None:
    with pytest.raises(RuntimeError, match="test body failed"), Lab("teardown") as lab:  # noqa: PT012
        ns = lab.netns("frr")
        peer = lab.netns("bird")
        lab.link(ns, "bird", peer, "frr", [f"{FRR_V4}/24"], [f"{BIRD_V4}/24"])
        frr = FrrPeer(ns, FRR_AS, "10.255.0.1", frr_config(FRR_AS, "10.255.0.1", [FrrNeighbor(BIRD_V4, BIRD_AS)]))
        bird = BirdPeer(peer, bird_config(BIRD_AS, "10.255.0.2", [BirdNeighbor("frr4", FRR_V4, FRR_AS)]))
        pids = [frr.zebra.pid, frr.bgpd.pid, bird.proc.pid, *ns.pids(), *peer.pids()]
        names = [ns.name, peer.name]
        raise RuntimeError("test body failed")
    assert not set(names) & set(list_netns())
    assert not [p for p in pids if pid_alive(p)]
    assert not lab.workdir.exists()
    assert not (REGISTRY_DIR / f"{lab.run_id}.json").exists()
    assert not [p for p in pids if Path(f"/var/tmp/frr/zebra.{p}").exists() or Path(f"/var/tmp/frr/bgpd.{p}").exists()]
    assert lab.leftovers() == []


CRASHING_RUN = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from tests.lab.harness import Lab, BirdPeer, bird_config
    lab = Lab("crash")
    ns = lab.netns("bird")
    bird = BirdPeer(ns, bird_config(12076, "10.255.0.2", []))
    print(json.dumps({"run_id": lab.run_id, "names": [ns.name], "pids": ns.pids(), "workdir": str(lab.workdir),
                      "watchdog": lab.watchdog_pid}), flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def test_watchdog_cleans_up_after_the_test_process_dies(lab_ready: None) -> None:
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, root], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    run_id = None
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        run_id = info["run_id"]
        assert info["pids"]
        assert set(info["names"]) <= set(list_netns())
        proc.send_signal(signal.SIGKILL)  # no teardown runs in the dead process: the watchdog must do it
        proc.wait(10)
        poll(lambda: not set(info["names"]) & set(list_netns()), 15, "watchdog left the namespaces")
        poll(lambda: not [p for p in info["pids"] if pid_alive(p)], 15, "watchdog left the processes")
        poll(lambda: not Path(info["workdir"]).exists(), 15, "watchdog left the run directory")
        poll(lambda: not pid_alive(info["watchdog"]), 15, "watchdog did not exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if run_id is not None:
            cleanup_run(run_id)  # only if the watchdog failed; touches nothing but this run
