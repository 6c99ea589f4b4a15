"""What reaches a new ExaBGP (mcrd/bgp/speaker.py): commands queued while none ran were made from what the dead one had
reported, and are dropped; commands queued while the same ExaBGP's API bridge reconnects are delivered.

The speaker, the API bridge (mcrd.bgp.bridge) and the unix socket are real; ExaBGP is a stand-in process that starts
the bridge as ExaBGP does (its configuration's `run` line), records every command it receives, answers `done`, and
exits or restarts its bridge when told. What a real ExaBGP does with a stale stock command (`neighbor X announce
route ...` is kept for the neighbor and announced when its session comes up) is why they must not reach it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from mcrd.bgp.speaker import ExaBgpSpeaker
from mcrd.config.model import Config
from tests.async_poll import until
from tests.logs import RecordingLog

STANDIN = r"""
import os, shlex, subprocess, sys
conf, record = sys.argv[-1], os.environ["STANDIN_RECORD"]
[run] = [line.strip()[4:-1] for line in open(conf) if line.strip().startswith("run ")]
def bridge():
    return subprocess.Popen(shlex.split(run), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
api = bridge()
while True:
    line = api.stdout.readline()
    if not line:  # the bridge went: start another, as ExaBGP restarts its API process
        api.wait()
        api = bridge()
        continue
    text = line.decode().rstrip("\n")
    with open(record, "a") as out:
        out.write(f"{os.getpid()} {text}\n")
    if text == "standin exit":
        api.kill()
        sys.exit(3)
    if text == "standin new bridge":
        api.kill()
        continue
    api.stdin.write(b"done\n")
    api.stdin.flush()
"""

CONFIG = Config.model_validate({
    "mcr": {"productName": "restart", "routerId": "10.255.0.1"},
    "vxcs": [{"productName": "v", "interface": "lo", "vrouter": {"interfaces": [{
        "ipAddresses": ["127.0.0.1/8"],
        "bgpConnections": [{"peerAsn": 65000, "localIpAddress": "127.0.0.1", "peerIpAddress": "127.0.0.2"}]}]}}],
})
STALE = "neighbor 127.0.0.2 announce route 10.9.0.0/24 next-hop self"
KEPT = "neighbor 127.0.0.2 announce route 10.8.0.0/24 next-hop self"



def _received(record: Path) -> list[tuple[int, str]]:
    """(stand-in pid, command) of every command the stand-ins received, in order."""
    if not record.exists():
        return []
    return [(int(pid), text) for pid, _, text in (line.partition(" ") for line in record.read_text().splitlines())]


def test_commands_queued_while_no_exabgp_runs_do_not_reach_the_next_one(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = state_dir / "received"
    standin = state_dir / "standin.py"
    standin.write_text(STANDIN)
    monkeypatch.setenv("STANDIN_RECORD", str(record))

    async def main() -> None:
        log = RecordingLog()
        lost = asyncio.Event()
        speaker = ExaBgpSpeaker(state_dir, lambda parsed: None, lambda reason: lost.set(), log,
                                exabgp_command=[sys.executable, str(standin)])
        speaker.write_config(CONFIG)
        task = asyncio.create_task(speaker.run())
        try:
            await until(lambda: speaker.alive, "the first ExaBGP connects")
            first = speaker.pid

            # The same ExaBGP's bridge goes and comes back: what was queued meanwhile is delivered.
            speaker.send(["standin new bridge"])
            await until(lambda: not speaker.alive, "the bridge has gone")
            speaker.send([KEPT])
            await until(lambda: (first, KEPT) in _received(record), "the queued command reaches the same ExaBGP")

            # ExaBGP dies: what is queued before the next one connects is not sent to it.
            speaker.send(["standin exit"])
            await until(lost.is_set, "the first ExaBGP is lost")
            speaker.send([STALE])
            await until(lambda: speaker.alive and speaker.pid != first, "the next ExaBGP connects")
            second = speaker.pid
            speaker.send(["standin marker"])
            await until(lambda: (second, "standin marker") in _received(record), "the next ExaBGP gets commands")
            assert [text for pid, text in _received(record) if pid == second] == ["standin marker"]
            [(_, fields)] = log.leveled("exabgp_stale_commands_dropped")
            assert fields["count"] == 1
        finally:
            await speaker.stop()
            await task

    asyncio.run(main())
