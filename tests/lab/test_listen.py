"""mcrd listens for BGP on port 179 of its VXC addresses, as an MCR does: a peer that only connects gets its
session; OpenBGPD with `local-address` and a TCP MD5 password forms its session (the key is on mcrd's listening
socket); a connection from an address that is no configured peer is refused with a Cease; with two ExaBGP processes
each listens on its own sessions' addresses only; and a listening socket binds an address the namespace does not have
yet (IP_FREEBIND), accepting once it arrives. And when a session returns and both sides connect at once, the
collision is resolved before either connection is Established: exactly one UP each time, also when the hub's OPEN
reaches FRR late, while FRR's own connection waits in OpenSent.

Topology: hub (mcrd, two ExaBGP processes) -- frr (FRR 64512, whose SYNs only get through: the hub's own are dropped)
and -- obgpd (OpenBGPD 64600, `local-address`, `tcp md5sig`). The collision test builds its own: hub (mcrd) -- FRR.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import operator
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcrd.bgp.exabgp_listen import KEEPALIVE_HOLD
from mcrd.bgp.pool import process_of
from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import FrrNeighbor, FrrPeer, Lab, Netns, assert_stays, frr_config, poll

pytestmark = LAB_MARKS

MCR_AS, FRR_AS, OB_AS = 133937, 64512, 64600
FRR_HUB, FRR_PEER, STRANGER = "169.254.10.1", "169.254.10.2", "169.254.10.3"  # a /29: room for a stranger
OB_HUB, OB_PEER = "169.254.30.1", "169.254.30.2"
FRR_NET, OB_NET, STATIC = "10.10.0.0/16", "10.40.0.0/16", "10.99.0.0/16"
PASSWORD = "ob-md5-key"
PROCESSES = 2
TIMEOUT = 30.0
OPENBGPD = Path("/usr/sbin/bgpd")


def mcr_config(lab: Lab) -> str:
    def vxc(name: str, local: str, plen: int, peer: str, asn: int, **conn: Any) -> dict[str, Any]:
        connection = {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "peerType": "NON_CLOUD",
                      "holdTime": 9, **conn}
        interface = {"ipAddresses": [f"{local}/{plen}"], "bgpConnections": [connection]}
        if name == "frr":
            interface["ipRoutes"] = [{"prefix": STATIC, "nextHop": FRR_PEER}]
        return {"productName": name, "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

    config = {
        "mcr": {"productName": "listen-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "vxcs": [vxc("frr", FRR_HUB, 29, FRR_PEER, FRR_AS), vxc("obgpd", OB_HUB, 30, OB_PEER, OB_AS,
                                                                password=PASSWORD)],
    }
    return json.dumps(config, indent=2) + "\n"


def openbgpd_config(control: Path) -> str:
    return (
        # connect-retry: OpenBGPD's first attempt may come before the hub listens (the default retry is 120 s)
        f"AS {OB_AS}\nrouter-id 10.0.0.40\nfib-update no\nconnect-retry 2\nsocket \"{control}\"\nnetwork {OB_NET}\n"
        f"neighbor {OB_HUB} {{\n  remote-as {MCR_AS}\n  local-address {OB_PEER}\n"
        f"  tcp md5sig password {PASSWORD}\n  descr mcr\n}}\nallow from any\nallow to any\n"
    )


Connection = tuple[str, int, str, int]  # local address, local port, peer address, peer port


def established(ns: Netns) -> set[Connection]:
    """The namespace's established TCP connections on port 179."""
    found = set()
    for line in ns.run("ss", "-Htn", "state", "established").stdout.splitlines():
        fields = line.split()
        local, peer = fields[-2].rsplit(":", 1), fields[-1].rsplit(":", 1)
        if "179" in (local[1], peer[1]):
            found.add((local[0], int(local[1]), peer[0], int(peer[1])))
    return found


def listeners(ns: Netns) -> dict[str, set[int]]:
    """Which pids listen on port 179 of which address."""
    found: dict[str, set[int]] = {}
    for line in ns.run("ss", "-Htlnp", "sport", "= :179").stdout.splitlines():
        fields = line.split()
        address = fields[3].rsplit(":", 1)[0]
        found.setdefault(address, set()).update(int(pid) for pid in re.findall(r"pid=(\d+)", line))
    return found


@dataclass
class Listen:
    lab: Lab
    hub: Netns
    frr_ns: Netns
    ob_ns: Netns
    frr: FrrPeer
    ob_control: Path
    mcrd: Any

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.lab.log_events(self.mcrd, name)

    def kernel(self) -> dict[str, str]:
        return {r["dst"]: r.get("gateway", "") for r in self.hub.ip_json("route", "show", "proto", "252")}

    def openbgpd(self, *args: str) -> str:
        return self.ob_ns.run("/usr/sbin/bgpctl", "-s", str(self.ob_control), *args).stdout

    def openbgpd_established(self) -> bool:
        return bool(re.search(r"^mcr\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s+\d+\s*$", self.openbgpd("show"), re.M))


@pytest.fixture(scope="module")
def listen(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Listen]:
    if not OPENBGPD.exists():
        pytest.skip("OpenBGPD is not installed (apt-get install openbgpd)")
    # One session in each ExaBGP process: each must listen on its own session's address only.
    assert {process_of(FRR_HUB, PROCESSES), process_of(OB_HUB, PROCESSES)} == {0, 1}
    with module_lab("test_listen", request) as lab:
        hub, frr_ns, ob_ns = lab.netns("hub"), lab.netns("frr"), lab.netns("obgpd")
        lab.link(hub, "frr", frr_ns, "hub", [], [f"{FRR_PEER}/29", f"{STRANGER}/29"])
        lab.link(hub, "obgpd", ob_ns, "hub", [], [f"{OB_PEER}/30"])
        # The hub never gets a connection to FRR through: FRR's own attempts must be accepted.
        hub.run("nft", "-f", "-", input_text=(
            "table inet mcl_listen {\n chain out {\n  type filter hook output priority 0;\n"
            f"  ip daddr {FRR_PEER} tcp dport 179 tcp flags & (syn | ack) == syn drop\n }}\n}}\n"))
        frr = FrrPeer(frr_ns, FRR_AS, "10.0.0.10", frr_config(FRR_AS, "10.0.0.10", [FrrNeighbor(FRR_HUB, MCR_AS)],
                                                                [FRR_NET]))
        control_dir = lab.make_dir("obgpd")
        ob_conf = control_dir / "bgpd.conf"
        ob_conf.write_text(openbgpd_config(control_dir / "bgpd.sock"))
        ob_conf.chmod(0o600)  # bgpd refuses a config others can read: it holds the key
        mcrd_dir = lab.make_dir("mcrd")
        (mcrd_dir / "mcrd.yaml").write_text(mcr_config(lab))
        mcrd = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(mcrd_dir / "mcrd.yaml"), "--log-format",
                         "json", "--state-dir", str(mcrd_dir), "--exabgp-processes", str(PROCESSES), label="mcrd")
        # OpenBGPD 7.7 on Linux sets no MD5 key on its own listening socket: the hub's signed SYNs to it are dropped,
        # and only OpenBGPD's connections, which it signs, can carry the session. It starts once the hub listens.
        poll(lambda: listeners(hub), TIMEOUT, "the hub listening on OpenBGPD's session address",
             until=lambda bound: OB_HUB in bound)
        ob_ns.popen(str(OPENBGPD), "-d", "-v", "-f", str(ob_conf), label="openbgpd")
        yield Listen(lab, hub, frr_ns, ob_ns, frr, control_dir / "bgpd.sock", mcrd)


def test_a_peer_that_only_connects_gets_its_session(listen: Listen) -> None:
    listen.frr.wait_established(FRR_HUB, TIMEOUT)
    # The one connection is FRR's, accepted on the hub's port 179 (the hub's own SYNs to FRR are dropped).
    connections = {c for c in established(listen.hub) if c[2] == FRR_PEER}
    assert connections
    assert all(c[:2] == (FRR_HUB, 179) for c in connections), connections
    # Routes both ways: FRR's network in the hub's kernel, the hub's static route in FRR's RIB.
    poll(listen.kernel, TIMEOUT, "FRR's route in the hub's kernel", until=lambda got: got.get(FRR_NET) == FRR_PEER)
    listen.frr.wait_route(STATIC, TIMEOUT)


def test_openbgpd_with_local_address_and_md5_forms_its_session(listen: Listen) -> None:
    poll(listen.openbgpd_established, TIMEOUT, "OpenBGPD's session with the hub established")
    connections = {c for c in established(listen.hub) if c[2] == OB_PEER}
    assert connections
    assert all(c[:2] == (OB_HUB, 179) for c in connections), connections
    poll(listen.kernel, TIMEOUT, "OpenBGPD's route in the hub's kernel", until=lambda got: got.get(OB_NET) == OB_PEER)
    # The hub's routes in OpenBGPD's own RIB: its static route and what it learned from FRR.
    poll(lambda: listen.openbgpd("show", "rib"), TIMEOUT, "the hub's routes in OpenBGPD's RIB",
         until=lambda rib: STATIC in rib and FRR_NET in rib)
    # The key is on the listening socket: a SYN from OpenBGPD's address without it is dropped by the hub's kernel.
    before = listen.hub.netstat()["TcpExt.TCPMD5NotFound"]
    assert not listen.ob_ns.connects(OB_PEER, OB_HUB)
    assert listen.hub.netstat()["TcpExt.TCPMD5NotFound"] > before


def test_a_connection_from_no_configured_peer_is_refused_with_a_cease(listen: Listen) -> None:
    listen.frr.wait_established(FRR_HUB, TIMEOUT)  # the hub's ExaBGP is up and listening
    # From the FRR link, but from an address that is no peer: accepted by the kernel, refused by ExaBGP with a
    # Cease (6), subcode 3 "Peer De-configured" (ExaBGP's "no session configured for the peer"), then closed.
    script = (
        "import socket, sys\n"
        "s = socket.create_connection((sys.argv[2], 179), timeout=10, source_address=(sys.argv[1], 0))\n"
        "data = b''\n"
        "while chunk := s.recv(4096):\n    data += chunk\n"
        "print(data.hex())\n"
    )
    data = bytes.fromhex(listen.frr_ns.run(sys.executable, "-c", script, STRANGER, FRR_HUB).stdout.strip())
    assert data[:16] == b"\xff" * 16, data.hex()
    assert data[18:21] == bytes([3, 6, 3]), f"expected a NOTIFICATION Cease/3, got {data.hex()}"


def test_each_exabgp_process_listens_on_its_own_sessions_addresses(listen: Listen) -> None:
    listen.frr.wait_established(FRR_HUB, TIMEOUT)
    started = {int(e.get("exabgp_process", 0)): int(e["pid"]) for e in listen.events("exabgp_started")}
    assert len(started) == PROCESSES
    bound = listeners(listen.hub)
    assert bound.get(FRR_HUB) == {started[process_of(FRR_HUB, PROCESSES)]}, bound
    assert bound.get(OB_HUB) == {started[process_of(OB_HUB, PROCESSES)]}, bound
    assert set(bound) == {FRR_HUB, OB_HUB}, f"the hub listens where it has no session: {bound}"


def test_a_listening_socket_binds_an_address_before_it_arrives(lab: Lab) -> None:
    ns, other = lab.netns("fb"), lab.netns("fbpeer")
    link = lab.link(ns, "p", other, "p", [], ["192.0.2.2/24"])
    script = (
        "import socket, sys\n"
        "from mcrd.bgp.exabgp_listen import freebind\n"
        "s = socket.socket(); freebind(s); s.bind(('192.0.2.1', 179)); s.listen()\n"
        "print('bound', flush=True)\n"
        "s.settimeout(30); c, peer = s.accept(); print('accepted', peer[0], flush=True)\n"
    )
    listener = ns.popen(sys.executable, "-c", script, label="freebind")
    log = lab.log_of(listener)
    poll(lambda: "bound" in log.read_text(), TIMEOUT, "the absent address bound")
    assert "192.0.2.1" not in ns.addresses()
    ns.add_address(link.if_a, "192.0.2.1/24")  # the address arrives: the socket accepts at once, no rebind
    poll(lambda: other.connects("192.0.2.2", "192.0.2.1"), TIMEOUT, "a connection to the new address")
    poll(lambda: "accepted 192.0.2.2" in log.read_text(), TIMEOUT, "the connection accepted")
    # Without IP_FREEBIND the same bind of an absent address fails: what stopped ExaBGP at startup.
    plain = ("import socket\ntry:\n    socket.socket().bind(('192.0.2.77', 179))\n"
             "except OSError as e:\n    print(e.errno)")
    assert other.run(sys.executable, "-c", plain).stdout.strip() == str(errno.EADDRNOTAVAIL)


# --- both sides connecting when a session returns -------------------------------------------------------------------

RESTORES = 16
# Until both connections exist, the hub drops every BGP segment between it and FRR that carries no SYN: each side's
# handshake completes on the connecting side only (its SYN-ACK comes back), each sends its OPEN (dropped, sent again),
# and neither side has accepted the other's connection yet. Once both are there the filter goes: both OPENs arrive
# together, on both connections.
COLLIDE = (
    "table inet mcl_collide {\n"
    f" chain out {{ type filter hook output priority 0; ip daddr {FRR_PEER} tcp sport 179 tcp flags & syn == 0 drop;"
    f" ip daddr {FRR_PEER} tcp dport 179 tcp flags & syn == 0 drop; }}\n"
    f" chain in {{ type filter hook input priority 0; ip saddr {FRR_PEER} tcp sport 179 tcp flags & syn == 0 drop;"
    f" ip saddr {FRR_PEER} tcp dport 179 tcp flags & syn == 0 drop; }}\n"
    "}\n"
)
# FRR's answer to the hub's SYN is dropped: the hub's own connection stays in the TCP handshake (its SYN is sent again
# after 1 s) while FRR's connection arrives and is accepted.
IN_FLIGHT = (
    "table inet mcl_collide {\n"
    f" chain in {{ type filter hook input priority 0; ip saddr {FRR_PEER} tcp sport 179"
    " tcp flags & (syn | ack) == (syn | ack) drop; }\n"
    "}\n"
)

FILTERS = (COLLIDE, IN_FLIGHT)


def bgp_sockets(ns: Netns, peer: str) -> set[tuple[int, int, str]]:
    """The namespace's TCP sockets with `peer` on port 179, in any state: (local port, peer port, state)."""
    found = set()
    for line in ns.run("ss", "-Htan").stdout.splitlines():
        fields = line.split()
        local, remote = fields[-2].rsplit(":", 1), fields[-1].rsplit(":", 1)
        if remote[0] == peer and "179" in (local[1], remote[1]):
            found.add((int(local[1]), int(remote[1]), fields[0]))
    return found


def above(start: int) -> Callable[[int], bool]:
    return lambda n: n > start


def both_connecting(found: set[tuple[int, int, str]]) -> bool:
    """FRR's connection (to the hub's port 179) and the hub's own (to FRR's) are both there, neither closing."""
    live = {(local, remote) for local, remote, state in found if state in ("SYN-RECV", "SYN-SENT", "ESTAB")}
    return any(local == 179 for local, _ in live) and any(remote == 179 for _, remote in live)


@dataclass
class Collide:
    """The hub (mcrd, router ID above FRR's: at FRR, the connection mcrd initiates survives a collision) and FRR."""

    lab: Lab
    hub: Netns
    frr_ns: Netns
    link: Any
    mcrd: Any
    frr: FrrPeer

    def count(self, event: str) -> int:
        return sum(1 for e in self.lab.log_events(self.mcrd, event) if e.get("peer") == FRR_PEER)

    def frr_counters(self) -> tuple[int, int]:
        neighbor = self.frr.show_json(f"show bgp neighbors {FRR_HUB} json")[FRR_HUB]
        return int(neighbor["connectionsEstablished"]), int(neighbor["connectionsDropped"])

    def state(self) -> tuple[int, int, int, int]:
        """mcrd's ups and downs, FRR's connections established and dropped."""
        return self.count("session_up"), self.count("session_down"), *self.frr_counters()

    def take_down(self) -> tuple[int, int, int, int]:
        downs = self.count("session_down")
        self.hub.ip("link", "set", self.link.if_a, "down")  # mcrd holds the session down; FRR loses the carrier
        poll(lambda: self.count("session_down"), TIMEOUT, "the session down in mcrd", until=above(downs))
        poll(lambda: self.frr.session_state(FRR_HUB), TIMEOUT, "FRR's session down",
             until=lambda s: s != "Established")
        return self.state()

    def settle(self, before: tuple[int, int, int, int]) -> tuple[int, ...]:
        """Wait for the session back at both ends; what changed since `before`, once it stays so."""
        poll(lambda: self.count("session_up"), TIMEOUT, "the session back in mcrd", until=above(before[0]))
        self.frr.wait_established(FRR_HUB, TIMEOUT)
        # A second UP came within milliseconds of the first (ExaBGP reconnects at once when a peer drops an
        # Established connection): 2 s is far above that, and under the 9 s hold time.
        settled = self.state()
        assert_stays(lambda: self.state() == settled, 2.0, "the session changed again")
        return tuple(after - was for after, was in zip(settled, before, strict=True))


@pytest.fixture
def collide(lab: Lab) -> Collide:
    hub, frr_ns = lab.netns("hub"), lab.netns("frr")
    link = lab.link(hub, "frr", frr_ns, "hub", [], [f"{FRR_PEER}/29"])
    config = {
        "mcr": {"productName": "collide-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},  # above FRR's
        "vxcs": [{"productName": "frr", "interface": lab.ifname("frr"), "vrouter": {"interfaces": [{
            "ipAddresses": [f"{FRR_HUB}/29"], "bgpConnections": [{
                "peerAsn": FRR_AS, "localIpAddress": FRR_HUB, "peerIpAddress": FRR_PEER, "peerType": "NON_CLOUD",
                "holdTime": 9}]}]}}],
    }
    mcrd_dir = lab.make_dir("mcrd")
    (mcrd_dir / "mcrd.json").write_text(json.dumps(config))
    mcrd = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(mcrd_dir / "mcrd.json"), "--log-format", "json",
                     "--state-dir", str(mcrd_dir), label="mcrd")
    frr = FrrPeer(frr_ns, FRR_AS, "10.0.0.10", frr_config(FRR_AS, "10.0.0.10", [FrrNeighbor(FRR_HUB, MCR_AS,
                                                                                           hold_time=9)], [FRR_NET]))
    # FRR's own account of each connection (kept in its log, which the lab keeps when a test fails).
    frr.vtysh("configure terminal", "log stdout debugging", "end", "debug bgp neighbor-events")
    found = Collide(lab, hub, frr_ns, link, mcrd, frr)
    poll(lambda: found.count("session_up"), TIMEOUT, "the session up in mcrd")
    frr.wait_established(FRR_HUB, TIMEOUT)
    return found


def test_each_return_with_both_sides_connecting_gives_exactly_one_up(collide: Collide) -> None:
    """The VXC goes down and comes back RESTORES times; each time both mcrd and FRR connect, and nft filters make the
    connections collide, in turn: both handshakes held until both connections exist (COLLIDE), or the hub's own
    connection still in its handshake when FRR's is accepted (IN_FLIGHT). Each return must be exactly one UP and no
    DOWN in mcrd's log, and one connection established (none dropped) in FRR's counters."""
    hub = collide.hub
    outcomes = []
    for restore in range(RESTORES):
        before = collide.take_down()
        kind = FILTERS[restore % len(FILTERS)]
        hub.run("nft", "-f", "-", input_text=kind)
        hub.ip("link", "set", collide.link.if_a, "up")
        if kind is COLLIDE:
            poll(lambda: bgp_sockets(hub, FRR_PEER), TIMEOUT, "both sides' connections", until=both_connecting)
        else:
            # Accepted by the hub while the hub's own connection cannot complete (ExaBGP connects as soon as the
            # session returns; FRR at its next connect retry, up to 1 s later).
            poll(lambda: bgp_sockets(hub, FRR_PEER), TIMEOUT, "FRR's connection accepted by the hub",
                 until=lambda found: any(local == 179 and st == "ESTAB" for local, _, st in found))
        hub.run("nft", "delete", "table", "inet", "mcl_collide")
        outcomes.append(collide.settle(before))
    print(f"\n(ups, downs, FRR connections established, dropped) per return: {outcomes}")
    assert outcomes == [(1, 0, 1, 0)] * RESTORES


LATE_RETURNS = 4
# Every other return FRR's packets stay held once FRR has read the hub's OPEN, until the hub is Established (at most
# this long): FRR's own connection (its OPEN, then its Cease and FIN, queued behind) stays unsettled at the hub past
# KEEPALIVE_HOLD.
UNSETTLED = KEEPALIVE_HOLD + 1.5
# The hub's BGP data to FRR is dropped (its OPEN, and its KEEPALIVE if it writes one), and FRR's connection attempts
# (mcl_late_syn) until the hub's OPEN is written. Pure ACKs pass: each side's TCP handshake completes, and FRR's OPEN on
# the hub's connection reaches the hub, which goes to OpenConfirm.
LATE_OUT = (
    "table inet mcl_late_out {\n"
    f" chain out {{ type filter hook output priority 0; ip daddr {FRR_PEER} tcp dport 179"
    " tcp flags & psh == psh drop; }\n"
    "}\n"
)
LATE_SYN = (
    "table inet mcl_late_syn {\n"
    f" chain in {{ type filter hook input priority 0; ip saddr {FRR_PEER} tcp dport 179"
    " tcp flags & syn == syn drop; }\n"
    "}\n"
)
# In FRR's namespace, FRR's BGP data on its own connections to the hub goes to a traffic class that holds it in the
# queue (`hold_frr`; by its priority, 0x10020 = class 1:20: htb takes a packet whose priority names one of its
# classes). Not dropped: released, it arrives at once, with no retransmission backoff. FRR's own connection to the hub
# waits in OpenSent meanwhile.
FRR_MARK = (
    "table inet mcl_late_mark {\n"
    f" chain out {{ type filter hook output priority 0; ip daddr {FRR_HUB} tcp dport 179"
    " tcp flags & psh == psh meta priority set 0x10020; }\n"
    "}\n"
)


# FRR's connection attempts to the hub, counted.
COUNT_SYN = (
    "table inet mcl_late_count {\n"
    f" chain in {{ type filter hook input priority 0; ip saddr {FRR_PEER} tcp dport 179"
    " tcp flags & (syn | ack) == syn counter; }\n"
    "}\n"
)


def frr_syns(hub: Netns) -> int:
    listing = hub.run("nft", "list", "table", "inet", "mcl_late_count").stdout
    found = re.search(r"counter packets (\d+)", listing)
    assert found, listing
    return int(found.group(1))


def hold_frr(ns: Netns, ifname: str, held: bool) -> None:
    """FRR's marked packets queued (8 bit/s: an OPEN takes minutes) or let go (at line rate)."""
    rate = ["rate", "8bit", "ceil", "8bit"] if held else ["rate", "10gbit", "ceil", "10gbit"]
    ns.run("tc", "class", "change", "dev", ifname, "parent", "1:", "classid", "1:20", "htb", *rate)


def shape_frr(ns: Netns, ifname: str) -> None:
    ns.run("tc", "qdisc", "add", "dev", ifname, "root", "handle", "1:", "htb", "default", "10")
    for classid in ("1:10", "1:20"):
        ns.run("tc", "class", "add", "dev", ifname, "parent", "1:", "classid", classid, "htb", "rate", "10gbit")
    ns.run("nft", "-f", "-", input_text=FRR_MARK)


def send_queue(ns: Netns, peer: str, *, outgoing: bool) -> int | None:
    """Bytes not yet acknowledged on the namespace's established BGP connection with `peer` that this side opened
    (`outgoing`: to the peer's port 179) or accepted; None when there is none."""
    for line in ns.run("ss", "-Htn", "state", "established").stdout.splitlines():
        fields = line.split()
        local, remote = fields[-2].rsplit(":", 1), fields[-1].rsplit(":", 1)
        if remote[0] == peer and (remote[1] == "179") == outgoing and (local[1] == "179") != outgoing:
            return int(fields[1])
    return None


def test_a_return_whose_open_reaches_frr_late_gives_exactly_one_up(collide: Collide) -> None:
    """FRR's own connection to the hub is in OpenSent when the hub's OPEN on the hub's connection reaches FRR, held
    long enough in the network that the hub may have written its KEEPALIVE behind it (past KEEPALIVE_HOLD). FRR 8.4,
    reading OPEN and KEEPALIVE in one pass, queues a BGP_Stop for its own connection, takes the hub's to Established on
    the KEEPALIVE, then runs the stop on it: a DOWN and a second UP (every return before the fix; 3 returns in 12 when
    the hub only waited for FRR's KEEPALIVE, which FRR writes before that pass ends, measured with FRR's OPEN dropped
    rather than queued). Every other return FRR's own connection then stays unsettled at the hub (FRR's packets held
    until the hub is Established), and the hub must not wait for it past FRR's start timer. Each return must be one
    UP, no DOWN, and one connection established (none dropped) in FRR's counters."""
    hub, frr_ns, frr_if = collide.hub, collide.frr_ns, collide.link.if_b
    shape_frr(frr_ns, frr_if)
    outcomes = []
    for restore in range(LATE_RETURNS):
        before = collide.take_down()
        for table in (LATE_OUT, LATE_SYN):
            hub.run("nft", "-f", "-", input_text=table)
        hold_frr(frr_ns, frr_if, held=True)
        hub.ip("link", "set", collide.link.if_a, "up")
        opened = poll(lambda: send_queue(hub, FRR_PEER, outgoing=True), TIMEOUT, "the hub's OPEN held on its way")
        hub.run("nft", "delete", "table", "inet", "mcl_late_syn")
        # FRR's own connection accepted by the hub, its OPEN held: FRR's connection is in OpenSent.
        poll(lambda: send_queue(frr_ns, FRR_HUB, outgoing=True), TIMEOUT, "FRR's OPEN held on its way")
        # The hub holds its KEEPALIVE while FRR's connection is being decided and until FRR answers its OPEN: at
        # most KEEPALIVE_HOLD (2 s) before the fix; a KEEPALIVE written is queued behind the OPEN. 4 s is well above
        # that hold and under the 9 s hold time.
        with contextlib.suppress(AssertionError):
            poll(lambda: send_queue(hub, FRR_PEER, outgoing=True), 4.0, "the hub's KEEPALIVE written",
                 until=functools.partial(operator.ne, opened))
        hub.run("nft", "delete", "table", "inet", "mcl_late_out")  # the hub's OPEN (and KEEPALIVE) go, together
        poll(lambda: send_queue(hub, FRR_PEER, outgoing=True), TIMEOUT, "the hub's OPEN received by FRR",
             until=lambda queued: not queued)
        if restore % 2:
            # FRR has answered the hub's OPEN (its KEEPALIVE is not held) and stopped its own connection, whose Cease
            # and FIN stay held: the hub must not wait for them past FRR's start timer (1 or 2 s), which starts a new
            # connection. With a 2-s hold the hub's KEEPALIVE reached FRR as it did, and FRR ran that connection's
            # open event on the session it had just made Established: a DOWN and a second UP (1 return in 4 in CI).
            hub.run("nft", "-f", "-", input_text=COUNT_SYN)
            poll(lambda: collide.count("session_up"), UNSETTLED, "the session up while FRR's packets are held",
                 until=above(before[0]))
            assert frr_syns(hub) == 0, "FRR started a new connection before its session with the hub was Established"
            hub.run("nft", "delete", "table", "inet", "mcl_late_count")
        hold_frr(frr_ns, frr_if, held=False)
        outcomes.append(collide.settle(before))
    print(f"\n(ups, downs, FRR connections established, dropped) per return: {outcomes}")
    assert outcomes == [(1, 0, 1, 0)] * LATE_RETURNS
