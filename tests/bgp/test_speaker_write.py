"""Writing commands to ExaBGP's API (mcrd/bgp/speaker.py, `_write_loop`) when the connection dies under it, on uvloop
as the daemon runs (mcrd.daemon.main).

Found by tests/lab/test_fastpath.py: ExaBGP killed in the middle of a burst, the write loop's `drain()` failed
(ConnectionError), the acks read before the connection closed woke it again, and it wrote to the closed transport:
uvloop raises RuntimeError there ("the handler is closed"; asyncio's own loop drops the data), which ended the loop's
task. Nothing reached any later ExaBGP: every session came back and got no route and no End-of-RIB, while the
Adj-RIB-Outs said sent."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import uvloop

from mcrd.bgp.speaker import ExaBgpSpeaker
from tests.async_poll import until
from tests.logs import RecordingLog

DEADLINE = 10.0
COMMAND = "neighbor 192.0.2.1 announce route 10.0.%d.0/24 next-hop self"


@pytest.mark.parametrize("how", ["bridge gone mid-write", "transport closed"])
def test_commands_after_the_api_connection_died_reach_the_next_exabgp(tmp_path: Path, how: str) -> None:
    async def main() -> None:
        log = RecordingLog()
        speaker = ExaBgpSpeaker(tmp_path, lambda parsed: None, lambda reason: None, log)
        path = tmp_path / "api.sock"
        server = await asyncio.start_unix_server(speaker._serve, path=str(path))
        writing = asyncio.create_task(speaker._write_loop())
        try:
            # The dead ExaBGP's connection, as `_serve` left it, its reader not yet told: the write loop still has
            # it (in the lab uvloop ran the loop first).
            ours, bridge = socket.socketpair()
            _, dying = await asyncio.open_unix_connection(sock=ours)
            speaker._writer = dying
            if how == "transport closed":  # before the loop's next write
                dying.transport.abort()
                await until(lambda: "closed=True" in repr(dying.transport), "the transport is closed")
            else:  # the bridge exits with ExaBGP: this write fails (ConnectionError), the next finds it closed
                bridge.close()
                speaker.send([COMMAND % 0])
                await until(lambda: log.events("exabgp_api_write_failed") or writing.done(), "the write fails")
            speaker.send([COMMAND % 1])  # more commands wake the loop (the dead ExaBGP's last acks did in the lab)
            await until(lambda: speaker._writer is None or writing.done(), "the loop lets the dead connection go")
            assert not writing.done(), writing.exception()
            bridge.close()

            reader, new = await asyncio.open_unix_connection(str(path))  # the next ExaBGP's bridge
            new.write(b"-\n")  # its first line: no launcher report
            speaker.send([COMMAND % 2])
            got = b""
            while COMMAND.encode() % 2 not in got:
                got += await asyncio.wait_for(reader.read(65536), DEADLINE)
            assert not writing.done()
            new.close()
        finally:
            writing.cancel()
            server.close()

    uvloop.run(main())
