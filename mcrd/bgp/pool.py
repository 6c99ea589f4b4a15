"""Several ExaBGP processes, each with its share of the sessions: `mcrd run --exabgp-processes N`.

ExaBGP sends at most ~75,000 routes/s on one core (docs/BENCHMARK-HUB.md); a hub with many sessions or large tables
on a machine with cores to spare goes faster with the sessions split over several processes (1.55x with two in the
option study). Each process costs ~37 MiB, so the default is one, which behaves exactly like a lone speaker.

A session belongs to process `crc32(local address) % N`, its local address being `localIpAddress`: every process
listens on port 179 of its sessions' local addresses (exabgp_listen.py), and only one process can listen on an
address, so the sessions that share one are in the same process. Stable across reloads and restarts: a reload moves
a session only when it changes the session's own local address (ExaBGP re-establishes that session anyway). Commands
are built per process (`effects_commands(..., process_of)`) and routed by their first neighbor. When one process dies
only its sessions are lost; the others keep running.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mcrd.bgp.commands import first_neighbor
from mcrd.bgp.messages import Parsed
from mcrd.bgp.speaker import ExaBgpSpeaker
from mcrd.config.model import Config

MAX_PROCESSES = 16


def process_of(local: str, processes: int) -> int:
    """The ExaBGP process (0..processes-1) that holds the sessions whose local address is `local`."""
    return 0 if processes == 1 else zlib.crc32(local.encode()) % processes


def local_addresses(config: Config) -> dict[str, str]:
    """Each session's local address, by peer address."""
    return {str(conn.peer_ip_address): str(conn.local_ip_address) for _, _, conn in config.connections()}


class SpeakerPool:
    def __init__(
        self,
        state_dir: Path,
        on_message: Callable[[Parsed], None],
        on_lost: Callable[[str, Callable[[str], bool]], None],
        log: Any,
        *,
        processes: int = 1,
        **speaker_options: Any,
    ) -> None:
        """`on_lost(reason, holds)`: an ExaBGP process died; `holds(peer address)` tells its sessions."""
        if not 1 <= processes <= MAX_PROCESSES:
            raise ValueError(f"ExaBGP processes: {processes} is out of range 1..{MAX_PROCESSES}")
        self.processes = processes
        self._local: dict[str, str] = {}  # peer address -> local address, from the config last applied
        self.speakers: list[ExaBgpSpeaker] = []
        for index in range(processes):
            if processes == 1:  # exactly a lone speaker: its files, its log lines, every session
                directory, process_log, holds = state_dir, log, None
            else:
                directory, process_log = state_dir / f"exabgp{index}", log.bind(exabgp_process=index)
                holds = self._holder(index)
            directory.mkdir(mode=0o700, exist_ok=True)
            self.speakers.append(ExaBgpSpeaker(directory, on_message, self._lost_handler(on_lost, holds), process_log,
                                               holds=holds, **speaker_options))

    def process_of(self, peer: str) -> int:
        """The process that holds the session to `peer` (its address)."""
        return process_of(self._local.get(peer, peer), self.processes)

    def _holder(self, index: int) -> Callable[[str], bool]:
        return lambda peer: self.process_of(peer) == index

    @staticmethod
    def _lost_handler(on_lost: Callable[[str, Callable[[str], bool]], None],
                      holds: Callable[[str], bool] | None) -> Callable[[str], None]:
        return lambda reason: on_lost(reason, holds or (lambda peer: True))

    # --- what the daemon uses, as on one speaker ---------------------------------------------------------------

    def write_config(self, config: Config, held_down: frozenset[str] | None = None) -> None:
        self._local = local_addresses(config)
        for speaker in self.speakers:
            if held_down is not None:
                speaker.held_down = held_down
            speaker.write_config(config)

    def reconfigure(self, config: Config, held_down: frozenset[str] | None = None) -> None:
        """Apply `config`; `held_down`, when given, replaces the peers left out (only the processes whose
        configuration changed reload)."""
        self._local = local_addresses(config)
        for speaker in self.speakers:
            if held_down is not None:
                speaker.held_down = held_down
            speaker.reconfigure(config)

    def send(self, commands: Iterable[str]) -> None:
        if self.processes == 1:
            self.speakers[0].send(commands)
            return
        routed: list[list[str]] = [[] for _ in self.speakers]
        for command in commands:
            routed[self.process_of(first_neighbor(command))].append(command)
        for speaker, share in zip(self.speakers, routed, strict=True):
            if share:
                speaker.send(share)

    @property
    def alive(self) -> bool:
        return all(speaker.alive for speaker in self.speakers)

    @property
    def restarts(self) -> int:
        return sum(speaker.restarts for speaker in self.speakers)

    @property
    def lines_dropped(self) -> int:
        return sum(speaker.lines_dropped for speaker in self.speakers)

    @property
    def sessions_reset(self) -> int:
        return sum(speaker.sessions_reset for speaker in self.speakers)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for index, speaker in enumerate(self.speakers):
                group.create_task(speaker.run(), name=f"exabgp{index}")

    async def stop(self, timeout: float = 10.0) -> None:
        await asyncio.gather(*(speaker.stop(timeout) for speaker in self.speakers))
