"""How mcrd's sessions end, read from the peers' own counters: a Cease when a reload removes a session (subcode 3,
Peer De-configured) and on SIGTERM (subcode 2, Administrative Shutdown); after a `kill -9` of mcrd every ExaBGP
process is gone and the peers see the session close at once; a new mcrd reconciles the routes the dead one left in
the kernel.

Topology: hub (mcrd, two ExaBGP processes: one session each) -- frr (FRR 64512) and -- bird (BIRD 12076).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
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
    bird_config,
    frr_config,
    pid_alive,
    poll,
)

pytestmark = LAB_MARKS

MCR_AS, FRR_AS, BIRD_AS = 133937, 64512, 12076
FRR_HUB, FRR_PEER = "169.254.10.1", "169.254.10.2"
BIRD_HUB, BIRD_PEER = "169.254.32.1", "169.254.32.2"
FRR_NET, BIRD_NET, STATIC = "10.10.0.0/16", "10.30.0.0/16", "10.99.0.0/16"
STALE = "10.77.0.0/16"  # a route of mcrd's protocol no config or peer wants: what a reconcile removes
TIMEOUT = 30.0
PROCESSES = 2


def mcr_config(lab: Lab, *, shut: bool = False) -> str:
    """Both sessions, or (`shut`) both shut down: ExaBGP's configuration then has no neighbor left."""
    def vxc(name: str, local: str, peer: str, asn: int, **extra: Any) -> dict[str, Any]:
        conn = {"peerAsn": asn, "localIpAddress": local, "peerIpAddress": peer, "holdTime": 9, "shutdown": shut}
        interface = {"ipAddresses": [f"{local}/30"], "bgpConnections": [conn], **extra}
        return {"productName": name, "interface": lab.ifname(name), "vrouter": {"interfaces": [interface]}}

    config = {
        "mcr": {"productName": "stop-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "vxcs": [vxc("frr", FRR_HUB, FRR_PEER, FRR_AS, ipRoutes=[{"prefix": STATIC, "nextHop": FRR_PEER}]),
                 vxc("bird", BIRD_HUB, BIRD_PEER, BIRD_AS)],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class Stop:
    lab: Lab
    hub: Netns
    config: Path
    state: Path
    frr: FrrPeer
    bird: BirdPeer
    mcrd: Any = None

    def start_mcrd(self) -> None:
        self.mcrd = self.hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(self.config), "--log-format",
                                   "json", "--state-dir", str(self.state), "--exabgp-processes", str(PROCESSES),
                                   label="mcrd")

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.lab.log_events(self.mcrd, name)

    def exabgp_pids(self) -> list[int]:
        return [int(e["pid"]) for e in self.events("exabgp_started")]

    def kernel(self) -> dict[str, str]:
        return {r["dst"]: r.get("gateway", "") for r in self.hub.ip_json("route", "show", "proto", "252")}

    def wait_up(self) -> None:
        self.frr.wait_established(FRR_HUB, TIMEOUT)
        self.bird.wait_established("mcr", TIMEOUT)
        poll(self.kernel, TIMEOUT, "hub kernel with both peers' routes", until=lambda got: got == EXPECTED_KERNEL)

    def reload(self, text: str) -> None:
        before = len(self.events("config_applied"))
        self.config.write_text(text)
        self.mcrd.send_signal(signal.SIGHUP)
        poll(lambda: len(self.events("config_applied")), TIMEOUT, "the reload applied", until=lambda n: n > before)


EXPECTED_KERNEL = {FRR_NET: FRR_PEER, BIRD_NET: BIRD_PEER, STATIC: FRR_PEER}


@pytest.fixture(scope="module")
def lab_stop(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Stop]:
    # One session in each ExaBGP process, so that "every process dies with mcrd" is about two processes.
    assert {process_of(FRR_PEER, PROCESSES), process_of(BIRD_PEER, PROCESSES)} == {0, 1}
    with module_lab("test_stop", request) as lab:
        hub, frr_ns, bird_ns = lab.netns("hub"), lab.netns("frr"), lab.netns("bird")
        lab.link(hub, "frr", frr_ns, "hub", [], [f"{FRR_PEER}/30"])
        lab.link(hub, "bird", bird_ns, "hub", [], [f"{BIRD_PEER}/30"])
        config = lab.make_dir("mcrd") / "mcrd.yaml"
        config.write_text(mcr_config(lab))
        frr = FrrPeer(frr_ns, FRR_AS, "10.0.0.1", frr_config(
            FRR_AS, "10.0.0.1", [FrrNeighbor(FRR_HUB, MCR_AS, hold_time=9)], [FRR_NET], hostname="frr",
            graceful_restart=False))
        bird = BirdPeer(bird_ns, bird_config(BIRD_AS, "10.0.0.2", [BirdNeighbor("mcr", BIRD_HUB, MCR_AS, hold_time=9)],
                                             [BIRD_NET]))
        stop = Stop(lab, hub, config, lab.make_dir("mcrd-state"), frr, bird)
        stop.start_mcrd()
        stop.wait_up()
        yield stop


def bird_received(t: Stop) -> list[str]:
    """The NOTIFICATIONs BIRD logged receiving on the session ("Received: Peer de-configured", ...). BIRD's `Last
    error` would do, but a reconnect attempt that is refused overwrites it within a second. The data BIRD prints in
    hex after the reason (ExaBGP sends the reason's text) is left out, and so are the Ceases "Connection collision
    resolution" that close the extra connection when BIRD and the hub connect at once (RFC 4271 6.8, mcrd listens):
    they are about how a session starts, not how it ends."""
    lines = t.lab.log_of(t.bird.proc).read_text(errors="replace").splitlines()
    received = [": ".join(line.split("mcr: ", 1)[1].split(": ")[:2]) for line in lines if "mcr: Received: " in line]
    return [reason for reason in received if reason != "Received: Connection collision resolution"]


# --- tests, in order: the module's topology is shared ---------------------------------------------------------------


def test_a_reload_that_removes_the_sessions_sends_each_peer_a_cease_peer_deconfigured(lab_stop: Stop) -> None:
    t = lab_stop
    before = t.frr.last_notification(FRR_HUB)
    t.reload(mcr_config(t.lab, shut=True))
    got = t.frr.wait_notification(FRR_HUB, before[0], TIMEOUT)
    print(f"FRR after the reload: {got}")
    assert got[1:] == ("0603", "Cease/Peer De-configured")
    seen = poll(lambda: bird_received(t), TIMEOUT, "BIRD logs a NOTIFICATION from the hub")
    print(f"BIRD after the reload: {seen}")
    assert seen == ["Received: Peer de-configured"]
    assert t.frr.session_state(FRR_HUB) != "Established"
    # Put back: new sessions, the same routes again.
    t.reload(mcr_config(t.lab))
    t.wait_up()


def test_kill_9_of_mcrd_takes_every_exabgp_and_every_session_down_at_once(lab_stop: Stop) -> None:
    t = lab_stop
    exabgp = t.exabgp_pids()
    assert len(exabgp) == PROCESSES
    assert all(pid_alive(pid) for pid in exabgp)
    killed = time.monotonic()
    t.lab.kill_processes([t.mcrd])
    poll(lambda: [pid for pid in exabgp if pid_alive(pid)], 10.0, "every ExaBGP process gone", until=lambda x: not x)
    poll(lambda: t.frr.session_state(FRR_HUB), 10.0, "FRR sees the session down",
         until=lambda state: state != "Established")
    frr_down = time.monotonic() - killed
    poll(lambda: t.bird.session_state("mcr"), 10.0, "BIRD sees the session down",
         until=lambda state: state != "Established")
    bird_down = time.monotonic() - killed
    print(f"kill -9 of mcrd: ExaBGP gone and FRR's session down after {frr_down:.2f} s, BIRD's after "
          f"{bird_down:.2f} s (hold time 9 s)")
    # Well under the 9 s hold time: the connection was closed, not left to time out.
    assert frr_down < 5.0
    assert bird_down < 5.0
    # A dead mcrd removes nothing: its routes are still in the kernel.
    assert t.kernel() == EXPECTED_KERNEL


def test_a_new_mcrd_reconciles_the_routes_the_dead_one_left(lab_stop: Stop) -> None:
    t = lab_stop
    left = t.kernel()
    assert left == EXPECTED_KERNEL
    # Meanwhile BIRD's route goes away, and a route of mcrd's protocol appears that nothing wants.
    t.bird.withdraw(BIRD_NET)
    t.hub.ip("route", "add", STALE, "via", FRR_PEER, "proto", "252", "metric", "20")
    t.start_mcrd()
    poll(lambda: t.events("kernel_reconciled"), TIMEOUT, "the start's reconcile", until=bool)
    first = t.events("kernel_reconciled")[0]
    # At start only the config's static route is best (no session yet): it stays, the rest goes.
    assert (first["kept"], first["removed"], first["added"]) == (1, 3, 0)
    t.frr.wait_established(FRR_HUB, TIMEOUT)
    t.bird.wait_established("mcr", TIMEOUT)
    want = {FRR_NET: FRR_PEER, STATIC: FRR_PEER}
    poll(t.kernel, TIMEOUT, "hub kernel: the best routes, nothing stale", until=lambda got: got == want)
    t.bird.announce(BIRD_NET)
    t.wait_up()


def test_sigterm_sends_each_peer_a_cease_administrative_shutdown(lab_stop: Stop) -> None:
    t = lab_stop
    before = t.frr.last_notification(FRR_HUB)
    exabgp = t.exabgp_pids()[-PROCESSES:]
    t.mcrd.terminate()
    assert t.mcrd.wait(timeout=TIMEOUT) == 0
    assert not [pid for pid in exabgp if pid_alive(pid)]
    got = t.frr.wait_notification(FRR_HUB, before[0], TIMEOUT)
    print(f"FRR after SIGTERM: {got}")
    assert got[1:] == ("0602", "Cease/Administrative Shutdown")
    seen = poll(lambda: bird_received(t), TIMEOUT, "BIRD logs a second NOTIFICATION", until=lambda x: len(x) > 1)
    print(f"BIRD after SIGTERM: {seen}")
    assert seen[1:] == ["Received: Administrative shutdown"]
    assert t.kernel() == {}
