"""Several ExaBGP processes: which process holds a session, its configuration, and where commands go."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcrd.bgp.commands import effects_commands, first_neighbor
from mcrd.bgp.pool import SpeakerPool, process_of
from mcrd.config.load import parse_config
from mcrd.log import get_logger
from mcrd.rib.effects import Announce, Effects, Withdraw
from mcrd.route.attributes import PathAttributes

PEERS = [f"169.254.{i}.2" for i in range(1, 13)] + ["2001:db8:a::2"]


def _config() -> str:
    vxcs = []
    for i, peer in enumerate(PEERS):
        local, plen = (peer[:-1] + "1", 126 if ":" in peer else 30)
        vxcs.append(
            f'{{"productName": "v{i}", "interface": "eth{i + 1}", "vrouter": {{"interfaces": [{{"ipAddresses": '
            f'["{local}/{plen}"], "bgpConnections": [{{"peerAsn": {65001 + i}, "localIpAddress": "{local}", '
            f'"peerIpAddress": "{peer}"}}]}}]}}}}'
        )
    return f'{{"vxcs": [{", ".join(vxcs)}]}}'


def _pool(tmp_path: Path, processes: int) -> SpeakerPool:
    return SpeakerPool(tmp_path, lambda parsed: None, lambda reason, holds: None, get_logger("test"),
                       processes=processes)


def test_a_session_belongs_to_one_process_always() -> None:
    for peer in PEERS:
        assert process_of(peer, 1) == 0
        assert process_of(peer, 3) == process_of(peer, 3)
        assert 0 <= process_of(peer, 3) < 3
    assert {process_of(peer, 2) for peer in PEERS} == {0, 1}, "the test's peers should cover both processes"


def test_each_process_is_configured_with_its_own_sessions_only(tmp_path: Path) -> None:
    config = parse_config(_config(), "test.json")
    pool = _pool(tmp_path, 2)
    pool.write_config(config)
    held = [{line.split()[1] for line in (tmp_path / f"exabgp{i}" / "exabgp.conf").read_text().splitlines()
             if line.startswith("neighbor ")} for i in range(2)]
    assert held[0] | held[1] == set(PEERS)
    assert not held[0] & held[1]
    assert held[1] == {peer for peer in PEERS if process_of(_local(peer), 2) == 1}


def _local(peer: str) -> str:
    return peer[:-1] + "1"


def test_sessions_sharing_a_local_address_share_a_process(tmp_path: Path) -> None:
    """Only one process can listen on an address: the sessions that share one are in the same process, the one
    their local address names, whatever their peer addresses hash to."""
    peers = [f"169.254.1.{i}" for i in range(2, 7)]
    assert len({process_of(peer, 2) for peer in peers}) == 2, "the peers should hash to both processes"
    connections = ", ".join(f'{{"peerAsn": {65001 + i}, "localIpAddress": "169.254.1.1", "peerIpAddress": "{peer}"}}'
                            for i, peer in enumerate(peers))
    config = parse_config(f'{{"vxcs": [{{"productName": "v", "interface": "eth1", "vrouter": {{"interfaces": [{{'
                          f'"ipAddresses": ["169.254.1.1/24"], "bgpConnections": [{connections}]}}]}}}}]}}',
                          "test.json")
    pool = _pool(tmp_path, 2)
    pool.write_config(config)
    assert {pool.process_of(peer) for peer in peers} == {process_of("169.254.1.1", 2)}
    owner = process_of("169.254.1.1", 2)
    text = (tmp_path / f"exabgp{owner}" / "exabgp.conf").read_text()
    assert all(f"neighbor {peer} {{" in text for peer in peers)
    assert "neighbor " not in (tmp_path / f"exabgp{1 - owner}" / "exabgp.conf").read_text()


def test_one_process_keeps_the_single_speaker_layout(tmp_path: Path) -> None:
    pool = _pool(tmp_path, 1)
    pool.write_config(parse_config(_config(), "test.json"))
    assert (tmp_path / "exabgp.conf").exists()
    assert not (tmp_path / "exabgp0").exists()


def test_a_command_names_sessions_of_one_process_and_goes_to_it(tmp_path: Path) -> None:
    attrs = PathAttributes("self", (133937, 65001))
    effects = Effects(
        withdraw=tuple(Withdraw(peer, ("10.50.0.0/16",)) for peer in PEERS),
        announce=tuple(Announce(peer, attrs, ("10.10.0.0/16", "10.11.0.0/16")) for peer in PEERS),
    )
    pool = _pool(tmp_path, 2)
    pool.write_config(parse_config(_config(), "test.json"))
    commands = list(effects_commands(effects, process_of=pool.process_of))
    assert len(commands) == 4  # a withdrawal and an announcement per process
    for command in commands:
        named = [part.split()[0].rstrip(",") for part in command.split("neighbor ")[1:]]
        assert len({process_of(_local(peer), 2) for peer in named}) == 1, command
    for speaker in pool.speakers:
        speaker._pending.clear()  # what writing the configuration queued
    pool.send(commands)
    for index, speaker in enumerate(pool.speakers):
        sent = list(speaker._pending)
        assert len(sent) == 2
        assert {process_of(_local(first_neighbor(c)), 2) for c in sent} == {index}
    # One process: the commands are those of a lone speaker, every session named once per change.
    assert list(effects_commands(effects, process_of=_pool(tmp_path / "one", 1).process_of)) == list(
        effects_commands(effects))


def test_first_neighbor() -> None:
    assert first_neighbor("neighbor 169.254.1.2, neighbor 169.254.2.2 announce attributes nlri 10.0.0.0/8") == (
        "169.254.1.2")
    assert first_neighbor("neighbor 2001:db8:a::2 withdraw attributes nlri 2001:db8::/32") == "2001:db8:a::2"


def test_a_number_of_processes_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ExaBGP processes: 0 is out of range 1\.\.16"):
        _pool(tmp_path, 0)
    out = subprocess.run([sys.executable, "-m", "mcrd", "run", "-c", "x.yaml", "--exabgp-processes", "0"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 2
    assert "--exabgp-processes: '0' is not a number of processes 1..16" in out.stderr
