"""The daemon's failover wiring with fakes around it (no root, no ExaBGP, no kernel): interface and BFD holds take
sessions down through the route processor, keep them out of ExaBGP's configuration, survive late ExaBGP messages
and reloads, and let go at the right moment."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mcrd.bfd import BfdDiag, BfdState, BfdTransition
from mcrd.config.model import Config
from mcrd.daemon import BATCH, ROUND_ROUTES, BfdChanged, Daemon, LinksChanged, Reload, take_round
from mcrd.iface.tracking import LinkInfo, LinkSnapshot
from mcrd.rib.effects import Effects, SessionChanged
from mcrd.rib.inputs import ConfigChanged, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import PathAttributes
from tests.core.helpers import peer_config
from tests.lg.fixtures import bfd_status
from tests.logs import RecordingLog

AWS, AZURE = "10.0.1.2", "10.0.2.2"


class FakeSpeaker:
    def __init__(self) -> None:
        self.held_down: list[frozenset[str]] = []
        self.sent: list[str] = []

    def reconfigure(self, config: Config, held_down: frozenset[str] | None = None) -> None:
        assert held_down is not None
        self.held_down.append(held_down)

    def send(self, commands: list[str]) -> None:
        self.sent.extend(commands)

    def process_of(self, peer: str) -> int:
        return 0


class FakeBfd:
    def __init__(self) -> None:
        self.configured: list[list[str]] = []
        self.statuses: dict[str, Any] = {}

    def configure(self, peers: Any) -> None:
        self.configured.append([str(p.peer) for p in peers])

    def status(self) -> dict[str, Any]:
        return self.statuses


def config(*, bfd: bool = True) -> Config:
    return peer_config([{"bfdEnabled": bfd}, {}])


def up(name: str, address: str) -> LinkInfo:
    return LinkInfo(name, True, True, "UP", frozenset({address}))


LINKS_UP = LinkSnapshot({"eth1": up("eth1", "10.0.1.1"), "eth2": up("eth2", "10.0.2.1")})


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    d = Daemon(tmp_path / "mcrd.yaml", config(), state_dir=tmp_path)
    d.log = RecordingLog()
    d.speaker_pool = FakeSpeaker()  # type: ignore[assignment]
    d.bfd = FakeBfd()  # type: ignore[assignment]
    d.links = LINKS_UP
    d.processor.handle(ConfigChanged(d.config), 0.0)
    feed(d, PeerUp(AWS, "10.0.0.1"), PeerUp(AZURE, "10.0.0.2"),
         RoutesAnnounced(AWS, PathAttributes(AWS, (64601,)), ("10.10.0.0/16",)))
    return d


def feed(d: Daemon, *items: Any) -> list[Effects]:
    """Items through the one consumer's handling, as one round each."""
    out: list[Effects] = []
    for item in items:
        out.extend(d._handle(item))
        d._apply_holds()
    return out


def log_of(d: Daemon) -> RecordingLog:
    assert isinstance(d.log, RecordingLog)
    return d.log


def speaker(d: Daemon) -> FakeSpeaker:
    assert isinstance(d.speaker_pool, FakeSpeaker)
    return d.speaker_pool


def transition(old: str, new: str, diag: BfdDiag = BfdDiag.NONE, remote: str = "DOWN") -> BfdChanged:
    return BfdChanged(BfdTransition(AWS, BfdState[old], BfdState[new], diag, 1.0, BfdState[remote]))


def downs(effects: list[Effects]) -> list[tuple[str, str]]:
    return [(r.peer, r.reason) for e in effects for r in e.records if isinstance(r, SessionChanged)
            and r.state == "DOWN"]


def test_bfd_down_from_up_takes_bgp_down_and_holds_it_until_bfd_is_up(daemon: Daemon) -> None:
    feed(daemon, transition("DOWN", "UP"))
    effects = feed(daemon, transition("UP", "DOWN", BfdDiag.CONTROL_DETECTION_TIME_EXPIRED))
    assert downs(effects) == [(AWS, "BFD down (CONTROL_DETECTION_TIME_EXPIRED)")]
    assert [w.prefixes for e in effects for w in e.withdraw] == [("10.10.0.0/16",)]  # withdrawn from azure
    assert "10.10.0.0/16" in [p for e in effects for p in e.fib_remove]
    assert speaker(daemon).held_down[-1] == {AWS}
    # A late `up` from ExaBGP (before its reload removed the neighbor) and its routes change nothing.
    late = RoutesAnnounced(AWS, PathAttributes(AWS, (64601,)), ("10.9.0.0/16",))
    assert feed(daemon, PeerUp(AWS, "10.0.0.1"), late) == []
    assert not daemon.processor.peer(AWS).up  # type: ignore[union-attr]
    # BFD Up again: released, but ExaBGP still had the session up: left out until ExaBGP reports it down.
    feed(daemon, transition("DOWN", "UP"))
    assert speaker(daemon).held_down[-1] == {AWS}
    feed(daemon, PeerDown(AWS, "removed"))
    assert speaker(daemon).held_down[-1] == frozenset()
    feed(daemon, PeerUp(AWS, "10.0.0.1"))
    assert daemon.processor.peer(AWS).up  # type: ignore[union-attr]


def test_bfd_that_never_came_up_keeps_bgp_and_says_so_once(daemon: Daemon) -> None:
    daemon.bfd.statuses = {AWS: bfd_status(AWS, "DOWN", None)}  # type: ignore[attr-defined]
    feed(daemon, transition("ADMIN_DOWN", "DOWN"))
    for _ in range(2):
        feed(daemon, PeerDown(AWS, "hold timer"))
        for effects in feed(daemon, PeerUp(AWS, "10.0.0.1")):
            daemon._note_bfd_not_up(effects)
    assert daemon.processor.peer(AWS).up  # type: ignore[union-attr]
    assert speaker(daemon).held_down == []
    assert [f["peer"] for f in log_of(daemon).events("bfd_not_up")] == [AWS]


def test_a_peer_signalling_admin_down_is_no_failure(daemon: Daemon) -> None:
    feed(daemon, transition("DOWN", "UP"))
    effects = feed(daemon, transition("UP", "DOWN", BfdDiag.NEIGHBOR_SIGNALED_DOWN, remote="ADMIN_DOWN"))
    assert downs(effects) == []
    assert daemon.processor.peer(AWS).up  # type: ignore[union-attr]


def test_interface_down_holds_its_sessions_only_and_up_releases_them(daemon: Daemon) -> None:
    down = LinkSnapshot({**LINKS_UP.links, "eth1": LinkInfo("eth1", False, False, "DOWN", frozenset({"10.0.1.1"}))})
    effects = feed(daemon, LinksChanged(down))
    assert downs(effects) == [(AWS, "VXC vxc1: interface eth1 is administratively down")]
    assert speaker(daemon).held_down[-1] == {AWS}
    assert daemon.processor.peer(AZURE).up  # type: ignore[union-attr]
    assert log_of(daemon).events("interface_down")[-1]["interface"] == "eth1"
    feed(daemon, PeerDown(AWS, "removed"), LinksChanged(LINKS_UP))
    assert speaker(daemon).held_down[-1] == frozenset()
    assert log_of(daemon).events("interface_up")[-1]["interface"] == "eth1"
    assert daemon._kernel_resync  # the kernel dropped the routes through eth1 while it was down


def test_a_reload_keeps_holds_and_releases_bfd_holds_of_connections_without_bfd(daemon: Daemon) -> None:
    feed(daemon, transition("DOWN", "UP"), transition("UP", "DOWN", BfdDiag.CONTROL_DETECTION_TIME_EXPIRED),
         PeerDown(AWS, "removed"))
    daemon.config_path.write_text("")  # unused: the reload carries its config
    feed(daemon, Reload(config()))
    assert speaker(daemon).held_down[-1] == {AWS}  # the same config: still held
    assert daemon.bfd.configured[-1] == [AWS]  # type: ignore[attr-defined]
    feed(daemon, Reload(config(bfd=False)))
    assert daemon.bfd.configured[-1] == []  # type: ignore[attr-defined]
    assert speaker(daemon).held_down[-1] == frozenset()


def test_a_round_stops_taking_routes_at_round_routes() -> None:
    # A burst of UPDATEs goes out in rounds of about ROUND_ROUTES announced or withdrawn prefixes (each round's
    # routes reach the peers and the kernel before the next is handled); other items do not count, and nothing
    # queued is lost or reordered between rounds.
    attrs = PathAttributes(next_hop=AWS, as_path=(64512,))
    per = ROUND_ROUTES // 2 + 1
    announced = [RoutesAnnounced(AWS, attrs, tuple(f"10.{n}.{k}.0/24" for k in range(per))) for n in range(3)]
    withdrawn = [RoutesWithdrawn(AWS, tuple(f"10.{n}.{k}.0/24" for k in range(per))) for n in range(3)]
    down = PeerDown(AWS, "x")
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in [down, withdrawn[0], announced[0], announced[1], withdrawn[1], withdrawn[2], announced[2], down]:
        queue.put_nowait(item)
    rounds = []
    while not queue.empty():
        rounds.append(take_round(queue.get_nowait(), queue))
    assert rounds == [[down, withdrawn[0], announced[0]], [announced[1], withdrawn[1]], [withdrawn[2], announced[2]],
                      [down]]
    for _ in range(BATCH + 5):
        queue.put_nowait(down)
    assert len(take_round(queue.get_nowait(), queue)) == BATCH
    assert queue.qsize() == 5
