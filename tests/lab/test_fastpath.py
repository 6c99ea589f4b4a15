"""The send fast path (issue 14, mcrd/bgp/exabgp_fastpath.py) with real daemons: bursts that meet a session flap, an
ExaBGP restart or reload, and slow readers, and every table exact afterwards.

The hub's mcrd runs with `MCRD_FAST_PATH=1` whatever the default (the module checks the launcher reports the send
fast path on; `MCRD_FAST_PATH=1` also turns on the receive fast path, exabgp_receive.py).

Topology (namespaces of this module)::

    src (BIRD 65001) ---+                +--- frr (FRR 64512, hold time 3)
                        +-- hub (mcrd) --+
                                         +--- bird (BIRD 12076, hold time 3)

Each spoke originates a /16 of its own. `src` also has two bursts, static protocols it enables and disables: `plain`,
6,000 /24s with the same attributes (a few UPDATEs of up to 65,535 octets per session), and `fat`, 3,500 /24s each
with a community of its own (3,500 UPDATEs per session: the hub keeps sending for longer, ~200 KB). After every
step the state is exact: each peer holds exactly what mcrd's looking glass says it sends it (its Adj-RIB-Out), that
is what the hub should send it (the other spokes' routes), and the hub's kernel holds every route via its origin.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    bird_config,
    frr_config,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS = 133937
SPOKES = {  # name: (AS, hub address, spoke address, own prefix, hold time)
    "src": (65001, "169.254.1.1", "169.254.1.2", "10.1.0.0/16", 9),
    "frr": (64512, "169.254.2.1", "169.254.2.2", "10.2.0.0/16", 3),
    "bird": (12076, "169.254.3.1", "169.254.3.2", "10.3.0.0/16", 3),
}
# Both at once stay below the MCR's limit of 10,000 routes (MCR-SEMANTICS.md; beyond it routes are refused).
PLAIN = [f"100.{64 + i // 256}.{i % 256}.0/24" for i in range(6000)]
FAT = [f"100.{128 + i // 256}.{i % 256}.0/24" for i in range(3500)]
BURSTS = {"plain": PLAIN, "fat": FAT}
API = "http://127.0.0.1:8080"
LG = f"{API}/v2/product/mcr2/lab-mcr/lookingGlass"
NSCLIENT = str(Path(__file__).parents[1] / "lg" / "nsclient.py")
TIMEOUT = 60.0


def mcr_config(lab: Lab, extra_vxc: bool = False) -> str:
    """`extra_vxc`: one more VXC whose peer never answers (a reload that adds or removes an ExaBGP neighbor and keeps
    the other sessions)."""
    def vxc(name: str, asn: int, hub: str, peer: str, hold: int) -> dict[str, Any]:
        conn = {"peerAsn": asn, "localIpAddress": hub, "peerIpAddress": peer, "holdTime": hold}
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name),
                "vrouter": {"interfaces": [{"ipAddresses": [f"{hub}/30"], "bgpConnections": [conn]}]}}

    vxcs = [vxc(name, asn, hub, peer, hold) for name, (asn, hub, peer, _, hold) in SPOKES.items()]
    if extra_vxc:
        vxcs.append(vxc("extra", 65333, "169.254.9.1", "169.254.9.2", 90))
    config = {"mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
              "api": {"listen": "127.0.0.1:8080"}, "vxcs": vxcs}
    return json.dumps(config, indent=2) + "\n"


def src_bursts() -> str:
    """The two bursts of `src`, disabled until a test enables them."""
    fat = "\n".join(f"  route {prefix} blackhole {{ bgp_community.add((65001, {i})); }};"
                    for i, prefix in enumerate(FAT))
    plain = "\n".join(f"  route {prefix} blackhole;" for prefix in PLAIN)
    return (f"protocol static plain {{\n  disabled;\n  ipv4;\n{plain}\n}}\n"
            f"protocol static fat {{\n  disabled;\n  ipv4;\n{fat}\n}}\n")


@dataclass
class Hub:
    lab: Lab
    ns: Netns
    proc: Any
    config: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.lab.log_events(self.proc, name)

    def exabgp_pid(self) -> int:
        return int(self.events("exabgp_started")[-1]["pid"])

    def data(self, path: str) -> Any:
        out = self.ns.run(sys.executable, NSCLIENT, "GET", LG + path, timeout=60).stdout
        answer = json.loads(out.strip().splitlines()[-1])
        assert answer["status"] == 200, answer
        return json.loads(answer["body"])["data"]

    def advertised(self, peer: str) -> set[str]:
        """The prefixes mcrd's looking glass says it sends `peer` (its Adj-RIB-Out)."""
        return {row["prefix"] for row in self.data(f"/bgpSessions/{peer}/advertised")}

    def kernel(self) -> dict[str, str]:
        return {r["dst"]: r.get("gateway", "") for r in self.ns.ip_json("-4", "route", "show", "proto", "252")}

    def send_queue(self, peer: str) -> int:
        """Octets the hub's sockets to `peer` have not had acknowledged yet (Send-Q; 0 without a session; summed
        when a collision leaves two connections for a moment)."""
        lines = self.ns.run("ss", "-tnH", "state", "established", "dst", peer).stdout.splitlines()
        return sum(int(line.split()[1]) for line in lines if line.strip())

    def ups(self, peer: str) -> int:
        return sum(1 for e in self.events("session_up") if e.get("peer") == peer)

    def downs(self, peer: str) -> int:
        return sum(1 for e in self.events("session_down") if e.get("peer") == peer)

    def wait_more(self, count: Callable[[], int], than: int, what: str) -> None:
        """Poll until `count()` (of log events) is above `than`."""
        poll(count, TIMEOUT, what, until=functools.partial(operator.lt, than))


@dataclass
class Topology:
    lab: Lab
    hub: Hub
    src: BirdPeer
    frr: FrrPeer
    bird: BirdPeer
    bursts: set[str] = field(default_factory=set)  # the bursts `src` announces now

    def peer(self, name: str) -> BirdPeer | FrrPeer:
        peers: dict[str, BirdPeer | FrrPeer] = {"src": self.src, "frr": self.frr, "bird": self.bird}
        return peers[name]

    def bird_of(self, name: str) -> BirdPeer:
        peer = self.peer(name)
        assert isinstance(peer, BirdPeer)
        return peer

    def burst(self, name: str, on: bool) -> None:
        self.src.birdc("enable" if on else "disable", name)
        (self.bursts.add if on else self.bursts.discard)(name)

    def from_hub(self, name: str) -> set[str]:
        """The prefixes spoke `name` holds from the hub."""
        peer = self.peer(name)
        if isinstance(peer, FrrPeer):
            return set(peer.routes("ipv4", neighbor=SPOKES[name][1]))
        return set(peer.routes("master4", protocol="mcr"))

    def held(self, name: str) -> int:
        """How many routes spoke `name` holds from the hub, read cheaply (a summary, not the table)."""
        peer = self.peer(name)
        if isinstance(peer, FrrPeer):
            summary = peer.show_json("show bgp ipv4 unicast summary")
            return int(summary.get("peers", {}).get(SPOKES[name][1], {}).get("pfxRcd", 0))
        found = re.search(r"Routes:\s+(\d+) imported", peer.birdc("show", "protocols", "all", "mcr").stdout)
        return int(found.group(1)) if found else 0

    def expected(self) -> tuple[dict[str, set[str]], dict[str, str]]:
        """What the hub should send each spoke, and hold in its kernel (prefix -> next hop)."""
        origin = {own: name for name, (_, _, _, own, _) in SPOKES.items()}
        for burst in self.bursts:
            origin.update(dict.fromkeys(BURSTS[burst], "src"))
        out = {name: {p for p, o in origin.items() if o != name} for name in SPOKES}
        return out, {p: SPOKES[o][2] for p, o in origin.items()}

    def assert_exact(self, what: str) -> None:
        out, kernel = self.expected()
        for name in SPOKES:
            advertised = functools.partial(self.hub.advertised, SPOKES[name][2])
            poll(functools.partial(_diff, advertised, out[name]), TIMEOUT,
                 f"{what}: the hub's Adj-RIB-Out for {name} is what it should send", until=_same,
                 ignore=(AssertionError,))
        for name in SPOKES:
            poll(functools.partial(_diff, functools.partial(self.from_hub, name), out[name]), TIMEOUT,
                 f"{what}: {name} holds exactly its Adj-RIB-Out", until=_same)
        poll(functools.partial(_diff, lambda: set(self.hub.kernel().items()), set(kernel.items())), TIMEOUT,
             f"{what}: the hub's kernel holds every best route", until=_same)
        assert not self.hub.events("exabgp_command_failed"), self.hub.events("exabgp_command_failed")[:3]


def _diff(read: Callable[[], set[Any]], want: set[Any]) -> tuple[int, int, list[Any], list[Any]]:
    """(missing, unexpected, a few of each) in what `read()` gives: short enough for a failure message."""
    got = read()
    missing, extra = want - got, got - want
    return len(missing), len(extra), sorted(missing)[:3], sorted(extra)[:3]


def _same(diff: tuple[int, int, list[Any], list[Any]]) -> bool:
    return diff[:2] == (0, 0)


@pytest.fixture(scope="module")
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    with module_lab("test_fastpath", request) as lab:
        hub_ns = lab.netns("hub")
        spokes = {name: lab.netns(name) for name in SPOKES}
        for name, (_, _, spoke_ip, _, _) in SPOKES.items():
            lab.link(hub_ns, name, spokes[name], "hub", [], [f"{spoke_ip}/30"])
        config = lab.make_dir("mcrd") / "mcrd.json"
        config.write_text(mcr_config(lab))
        # `env` execs mcrd: the pid is mcrd's. The fast path explicitly, whatever the default.
        proc = hub_ns.popen("env", "MCRD_FAST_PATH=1", sys.executable, "-m", "mcrd", "run", "-c", str(config),
                            "--log-format", "json", "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
        hub = Hub(lab, hub_ns, proc, config)

        def bird(name: str, extra: str = "") -> BirdPeer:
            asn, hub_ip, _, own, hold = SPOKES[name]
            return BirdPeer(spokes[name], bird_config(asn, "10.0.0.2", [BirdNeighbor("mcr", hub_ip, MCR_AS,
                            hold_time=hold)], [own], kernel_export=False, extra=extra))

        src = bird("src", src_bursts())
        asn, hub_ip, _, own, hold = SPOKES["frr"]
        frr = FrrPeer(spokes["frr"], asn, "10.0.0.1", frr_config(
            asn, "10.0.0.1", [FrrNeighbor(hub_ip, MCR_AS, hold_time=hold)], [own], hostname="frr",
            graceful_restart=False))
        topology = Topology(lab, hub, src, frr, bird("bird"))
        topology.frr.wait_established(hub_ip, TIMEOUT)
        for peer in (topology.src, topology.bird):
            peer.wait_established("mcr", TIMEOUT)
        poll(lambda: hub.events("exabgp_fixes"), TIMEOUT, "the launcher's report")
        assert "fastpath" in hub.events("exabgp_fixes")[-1]["fixes"], hub.events("exabgp_fixes")[-1]
        topology.assert_exact("start")
        yield topology


def _after(start: float, delay: float) -> None:
    """Wait until `delay` s after `start`: the moment a flap is made at (the experiment's parameter, not a
    synchronisation: the state the flap met is recorded)."""
    while time.monotonic() < start + delay:
        time.sleep(0.005)


def _reset(t: Topology, name: str, how: str) -> None:
    _, hub_ip, spoke_ip, _, _ = SPOKES[name]
    if how == "clear":  # FRR resets the session (Cease) and connects again
        t.frr.vtysh(f"clear bgp {hub_ip}")
    elif how == "restart":  # BIRD the same
        t.bird_of(name).birdc("restart", "mcr")
    elif how == "link":  # the VXC's link goes down (mcrd takes the session down) and comes back
        ifname, downs = t.lab.ifname(name), t.hub.downs(spoke_ip)
        t.hub.ns.ip("link", "set", ifname, "down")
        t.hub.wait_more(functools.partial(t.hub.downs, spoke_ip), downs, f"mcrd takes {name}'s session down")
        t.hub.ns.ip("link", "set", ifname, "up")
    else:
        raise ValueError(how)


# (spoke, how, burst, delay in s after the burst starts)
FLAPS = [("frr", "clear", "fat", 0.3), ("frr", "clear", "plain", 0.15), ("bird", "restart", "fat", 0.6),
         ("frr", "link", "fat", 0.9), ("bird", "restart", "plain", 0.05), ("frr", "clear", "fat", 1.5)]


def test_a_session_flap_in_the_middle_of_a_burst_ends_exact(topo: Topology) -> None:
    """For each flap: a burst starts (announced, then withdrawn), the spoke's session is reset `delay` s later, and
    every table ends exact. What the flap met is recorded: routes the spoke held from the hub (out of how many
    before and after the burst) and the hub's Send-Q to it; at least one flap must have met the hub still sending."""
    met = []
    for name, how, burst, delay in FLAPS:
        for on in (True, False):
            before = len(topo.expected()[0][name])
            ups = topo.hub.ups(SPOKES[name][2])
            start = time.monotonic()
            topo.burst(burst, on)
            _after(start, delay)
            queue = topo.hub.send_queue(SPOKES[name][2])
            held = topo.held(name)
            _reset(topo, name, how)
            after = len(topo.expected()[0][name])
            met.append((name, how, burst, "announce" if on else "withdraw", delay, held, before, after, queue))
            topo.hub.wait_more(functools.partial(topo.hub.ups, SPOKES[name][2]), ups, f"{name}'s session comes back")
            topo.assert_exact(f"{how} {name} {delay} s into the {burst} burst ({'announce' if on else 'withdraw'})")
    print("\nflap, burst, what it met (routes held by the spoke: got, before, after; hub Send-Q):")
    for row in met:
        print("  ", row)
    mid = [row for row in met if min(row[6], row[7]) < row[5] < max(row[6], row[7]) or row[8] > 0]
    assert mid, f"no flap met a burst in progress: {met}"


def test_exabgp_killed_or_reloaded_during_a_burst_ends_exact(topo: Topology) -> None:
    """ExaBGP killed by pid (the daemon starts a new one: every session comes back, the new ExaBGP runs the fast
    path too), and a reload (SIGHUP: a VXC added, then removed; ExaBGP reloads with SIGUSR1 and keeps the other
    sessions), each in the middle of a burst."""
    for burst, on in (("plain", True), ("fat", True), ("plain", False), ("fat", False)):
        pid = topo.hub.exabgp_pid()
        ups = {name: topo.hub.ups(SPOKES[name][2]) for name in SPOKES}
        started, reports = len(topo.hub.events("exabgp_started")), len(topo.hub.events("exabgp_fixes"))
        start = time.monotonic()
        topo.burst(burst, on)
        _after(start, 0.3)
        os.kill(pid, signal.SIGKILL)
        topo.hub.wait_more(functools.partial(_count, topo.hub.events, "exabgp_started"), started,
                           "the daemon starts ExaBGP again")
        for name in SPOKES:
            topo.hub.wait_more(functools.partial(topo.hub.ups, SPOKES[name][2]), ups[name],
                               f"{name}'s session comes back")
        topo.hub.wait_more(functools.partial(_count, topo.hub.events, "exabgp_fixes"), reports,
                           "the new ExaBGP's report")
        assert topo.hub.exabgp_pid() != pid
        assert "fastpath" in topo.hub.events("exabgp_fixes")[-1]["fixes"]
        topo.assert_exact(f"ExaBGP killed 0.3 s into the {burst} burst ({'announce' if on else 'withdraw'})")

    for burst, on, extra in (("fat", True, True), ("plain", True, False), ("fat", False, True),
                             ("plain", False, False)):
        pid = topo.hub.exabgp_pid()
        ups = {name: topo.hub.ups(SPOKES[name][2]) for name in SPOKES}
        downs_before = {name: topo.hub.downs(SPOKES[name][2]) for name in SPOKES}
        applied = len(topo.hub.events("config_reloaded"))
        topo.hub.config.write_text(mcr_config(topo.lab, extra_vxc=extra))
        start = time.monotonic()
        topo.burst(burst, on)
        _after(start, 0.3)
        topo.hub.proc.send_signal(signal.SIGHUP)
        topo.hub.wait_more(functools.partial(_count, topo.hub.events, "config_reloaded"), applied,
                           "the daemon reloads its config")
        topo.assert_exact(f"reload 0.3 s into the {burst} burst ({'announce' if on else 'withdraw'})")
        assert topo.hub.exabgp_pid() == pid, "ExaBGP was restarted, not reloaded"
        for name in SPOKES:  # the sessions stayed up through the reload
            assert topo.hub.ups(SPOKES[name][2]) == ups[name], name
            assert topo.hub.downs(SPOKES[name][2]) == downs_before[name], name


def _stopped(t: Topology, name: str, seconds: float, burst: str, on: bool) -> None:
    """Stop spoke `name`'s BIRD (SIGSTOP by pid) 0.2 s into a burst, for `seconds`, then let it go on."""
    proc = t.bird_of(name).proc
    start = time.monotonic()
    t.burst(burst, on)
    _after(start, 0.2)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        _after(start, 0.2 + seconds)
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_a_spoke_stopped_below_its_hold_time_keeps_its_session_and_ends_exact(topo: Topology) -> None:
    bird_ip = SPOKES["bird"][2]
    for burst, on in (("fat", True), ("fat", False)):
        ups, downs_before = topo.hub.ups(bird_ip), topo.hub.downs(bird_ip)
        _stopped(topo, "bird", 1.5, burst, on)  # hold time 3
        topo.assert_exact(f"BIRD stopped 1.5 s in the {burst} burst ({'announce' if on else 'withdraw'})")
        assert (topo.hub.ups(bird_ip), topo.hub.downs(bird_ip)) == (ups, downs_before), "BIRD's session was reset"


def test_a_spoke_stopped_past_its_hold_time_is_reset_and_comes_back_exact(topo: Topology) -> None:
    """BIRD stopped for 8 s (hold time 3) during a burst: the hub's hold timer expires; its NOTIFICATION waits on a
    full socket (the hub gives up on it after 5 s) or goes; the session is reset and comes back exact. ExaBGP does
    not spin meanwhile."""
    bird_ip = SPOKES["bird"][2]
    for burst, on in (("fat", True), ("fat", False)):
        ups, downs_before = topo.hub.ups(bird_ip), topo.hub.downs(bird_ip)
        exabgp = topo.hub.exabgp_pid()
        cpu_before = _cpu_seconds(exabgp)
        _stopped(topo, "bird", 8, burst, on)
        cpu = _cpu_seconds(exabgp) - cpu_before
        assert cpu < 4, f"ExaBGP used {cpu:.1f} CPU s in the 8 s BIRD was stopped"
        topo.hub.wait_more(functools.partial(topo.hub.downs, bird_ip), downs_before, "the hub resets BIRD's session")
        topo.hub.wait_more(functools.partial(topo.hub.ups, bird_ip), ups, "BIRD's session comes back")
        topo.assert_exact(f"BIRD stopped 8 s in the {burst} burst ({'announce' if on else 'withdraw'})")


def test_a_spoke_behind_a_slow_link_keeps_its_session_and_ends_exact(topo: Topology) -> None:
    """FRR (hold time 3) behind a 256 kbit/s token bucket on the hub's side of its link: the fat burst (~200 KB of
    UPDATEs) takes seconds to reach it, the hub's socket fills (Send-Q seen) and the rest waits in the launcher's
    queue, KEEPALIVEs behind UPDATEs; the session stays up and FRR ends exact. (Each of these UPDATEs is small: at
    this rate one of 65,535 octets would take 2 s, close to the hold time.)"""
    frr_ip, ifname = SPOKES["frr"][2], topo.lab.ifname("frr")
    topo.hub.ns.run("tc", "qdisc", "add", "dev", ifname, "root", "tbf", "rate", "256kbit", "burst", "16kb",
                    "latency", "50ms")
    try:
        for on in (True, False):
            ups, downs_before = topo.hub.ups(frr_ip), topo.hub.downs(frr_ip)
            # Send-Q is sampled all the while the burst is delivered (not polled for before): how high it gets
            # depends on TCP's pacing, and a burst that never reaches FRR fails below as a missing route, by name.
            with SendQueueSampler(topo.hub, frr_ip) as queued:
                topo.burst("fat", on)
                topo.assert_exact(f"FRR behind 256 kbit/s, fat burst ({'announce' if on else 'withdraw'})")
            assert (topo.hub.ups(frr_ip), topo.hub.downs(frr_ip)) == (ups, downs_before), "FRR's session was reset"
            if on:
                print(f"\nSend-Q to FRR behind the token bucket: up to {max(queued)} octets")
                # 16 KiB is the token bucket's burst: above it, the link (not the hub) held the data back.
                assert max(queued) > 16 * 1024, f"the hub's socket to FRR never filled: {queued[-20:]}"
    finally:
        topo.hub.ns.run("tc", "qdisc", "del", "dev", ifname, "root")


class SendQueueSampler:
    """The hub's Send-Q to `peer`, read every 20 ms on a thread while the `with` block runs (a list of samples)."""

    def __init__(self, hub: Hub, peer: str) -> None:
        self.hub, self.peer = hub, peer
        self.samples: list[int] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(0.02):
            self.samples.append(self.hub.send_queue(self.peer))

    def __enter__(self) -> list[int]:
        self.thread.start()
        return self.samples

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)


def _count(events: Callable[[str], list[Any]], name: str) -> int:
    return len(events(name))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

