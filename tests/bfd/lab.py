"""Helpers for the BFD engine's lab tests and measurements: the engine as a process in a namespace
(tests/bfd/driver.py), one hub and one peer namespace joined by a veth, FRR bfdd and BIRD configs, silent failures
with nft."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.harness import BirdPeer, Lab, Netns, poll

HUB4, PEER4 = "192.0.2.1", "192.0.2.2"
HUB6, PEER6 = "2001:db8::1", "2001:db8::2"
GENEROUS = 1.5  # seconds: the bound asserted on a 3 x 300 ms detection; the measured figure is printed
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class Engine:
    """The driver process: peers written as JSON (SIGHUP re-reads them), status read back, transitions from its log."""

    def __init__(self, lab: Lab, ns: Netns, peers: list[dict[str, Any]]) -> None:
        self.lab = lab
        self.dir = lab.make_dir("bfd-engine")
        self.peers_path = self.dir / "peers.json"
        self.status_path = self.dir / "status.json"
        self.peers_path.write_text(json.dumps(peers))
        self.proc = ns.popen("env", f"PYTHONPATH={SOURCE_ROOT}", sys.executable, "-m", "tests.bfd.driver",
                             str(self.peers_path), str(self.status_path), label="bfd-engine")
        poll(lambda: self._alive() and self.status_path.exists(), 15, "BFD engine did not start")

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"BFD engine exited: {self.lab.log_of(self.proc).read_text()[-3000:]}")
        return True

    def status(self) -> dict[str, dict[str, Any]]:
        self._alive()
        data: dict[str, dict[str, Any]] = json.loads(self.status_path.read_text())
        return data

    def state(self, peer: str) -> str:
        return str(self.status().get(peer, {}).get("state", ""))

    def wait_state(self, peer: str, state: str, timeout: float = 15.0) -> None:
        """Until the status says ``state`` and the transition log agrees: the BFD thread changes the state before the
        driver's loop prints the transition, so a status written in between is ahead of the log."""
        def agreed() -> bool:
            if self.state(peer) != state:
                return False
            seen = self.transitions(peer)
            return seen[-1]["new"] == state if seen else state == "Down"

        poll(agreed, timeout, f"engine: session {peer} not {state}")

    def transitions(self, peer: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.lab.log_of(self.proc).read_text().splitlines():
            if line.startswith('{"transition"'):
                t = json.loads(line)["transition"]
                if peer is None or t["peer"] == peer:
                    out.append(t)
        return out

    def block_loop(self) -> None:
        """Hold the engine's asyncio loop (time.sleep in it) for 2.5 s; returns when it is free again."""
        def said(what: str) -> int:
            return self.lab.log_of(self.proc).read_text().count(f'{{"{what}":')

        before = said("busy_done")
        self.proc.send_signal(10)  # SIGUSR1
        poll(lambda: said("busy_done"), 15, "engine loop not released", until=lambda n: n > before)

    def reconfigure(self, peers: list[dict[str, Any]]) -> None:
        self.peers_path.write_text(json.dumps(peers))
        self.proc.send_signal(1)  # SIGHUP

    def close(self) -> None:
        """SIGTERM: the driver runs close() (AdminDown to every peer) and exits."""
        self.proc.terminate()
        assert self.proc.wait(15) == 0, self.lab.log_of(self.proc).read_text()[-3000:]


@dataclass
class Setup:
    lab: Lab
    hub: Netns
    peer_ns: Netns
    hub_if: str


def setup(lab: Lab) -> Setup:
    hub = lab.netns("hub")
    peer_ns = lab.netns("peer")
    link = lab.link(hub, "h0", peer_ns, "p0", [f"{HUB4}/30", f"{HUB6}/64"], [f"{PEER4}/30", f"{PEER6}/64"])
    return Setup(lab, hub, peer_ns, link.if_a)


def peer_config(s: Setup, peer: str, local: str, **timers: int) -> dict[str, Any]:
    return {"peer": peer, "local": local, "interface": s.hub_if, **timers}


def drop_bfd(ns: Netns) -> float:
    """Drop every BFD packet the namespace sends (a silent failure: the link stays up); the time just before."""
    ns.run("nft", "add", "table", "inet", "mclbfd")
    ns.run("nft", "add", "chain", "inet", "mclbfd", "out", "{ type filter hook output priority 0; }")
    t0 = time.monotonic()
    ns.run("nft", "add", "rule", "inet", "mclbfd", "out", "udp", "dport", "3784", "drop")
    return t0


def undrop_bfd(ns: Netns) -> None:
    ns.run("nft", "delete", "table", "inet", "mclbfd")


def silent_failure(engine: Engine, peer_ns: Netns, peers: list[str], label: str) -> dict[str, float]:
    """Drop the peer's packets; every session goes Down with diag 1; returns the time from the rule to Down."""
    before = {p: len(engine.transitions(p)) for p in peers}
    t0 = drop_bfd(peer_ns)
    for p in peers:
        engine.wait_state(p, "Down", timeout=10)
    took = {}
    for p in peers:
        new = engine.transitions(p)[before[p]:]
        assert new[0]["new"] == "Down", new
        assert new[0]["diag"] == "CONTROL_DETECTION_TIME_EXPIRED", new
        took[p] = new[0]["at"] - t0
        detection = engine.status()[p]["detection_time_ms"] / 1000
        print(f"\n[bfd] {label} {p}: rule -> Down {took[p] * 1000:.0f} ms (detection time {detection * 1000:.0f} ms)")
        assert 0 < took[p] < GENEROUS, f"{p}: Down {took[p]:.3f} s after the rule"
    return took


FRR_BFDD = f"""bfd
 peer {HUB4}
  receive-interval 300
  transmit-interval 300
 !
 peer {HUB6}
  receive-interval 300
  transmit-interval 300
 !
!
"""


BIRD_CONF = f"""log stderr all;
router id {PEER4};
protocol device {{ scan time 10; }}
protocol bfd {{
  interface "*" {{ interval 300 ms; multiplier 3; }};
  neighbor {HUB4};
  neighbor {HUB6};
}}
"""


def bird_sessions(bird: BirdPeer) -> dict[str, dict[str, Any]]:
    """``birdc show bfd sessions``: address -> state, tx interval and detection timeout (seconds, BIRD's view)."""
    out = {}
    for line in bird.birdc("show", "bfd", "sessions").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0] not in ("IP", "bfd1:"):
            out[parts[0]] = {"state": parts[2], "interval": float(parts[-2]), "timeout": float(parts[-1])}
    return out


