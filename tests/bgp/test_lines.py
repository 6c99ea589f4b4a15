"""Reading ExaBGP's API: no single line stops mcrd (issue 13, item 1). The splitter is pure; the speaker's read path
is driven through a real unix socket, as the bridge feeds it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.bgp.lines import LineSplitter, Oversized
from mcrd.bgp.messages import Parsed, received_update_peer
from mcrd.bgp.speaker import ExaBgpSpeaker
from mcrd.rib.inputs import RoutesAnnounced, RoutesWithdrawn
from tests.logs import RecordingLog


@settings(max_examples=300)
@given(lines=st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=12),
       cuts=st.lists(st.integers(1, 40), max_size=30))
def test_lines_come_out_whole_or_flagged_however_the_stream_is_cut(lines: list[bytes], cuts: list[int]) -> None:
    limit = 30
    stream = b"".join(line + b"\n" for line in lines)
    splitter, out, start = LineSplitter(limit, head=8), [], 0
    for size in [*cuts, len(stream)]:
        out += splitter.feed(stream[start : start + size])
        start += size
    assert out == [line if len(line) <= limit else Oversized(line[:8], len(line)) for line in lines]
    assert splitter.pending == 0


def _update_line(peer: str, prefixes: list[str], withdraw: list[str] | None = None) -> bytes:
    update: dict[str, Any] = {"attribute": {"origin": "igp", "as-path": {"0": {"element": "as-sequence",
                                                                               "value": [65099]}}},
                              "announce": {"ipv4 unicast": {peer: [{"nlri": p} for p in prefixes]}}}
    if withdraw:
        update["withdraw"] = {"ipv4 unicast": [{"nlri": p} for p in withdraw]}
    message = {"exabgp": "5.0.0", "type": "update", "neighbor": {
        "address": {"local": "10.0.0.1", "peer": peer}, "asn": {"local": 133937, "peer": 65099},
        "direction": "receive", "message": {"update": update}}}
    return json.dumps(message).encode() + b"\n"


def _prefixes(count: int) -> list[str]:
    return [f"{20 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24" for i in range(count)]


async def _serve(tmp: Path, payload: bytes, **options: Any) -> tuple[ExaBgpSpeaker, list[Parsed]]:
    got: list[Parsed] = []
    speaker = ExaBgpSpeaker(tmp, got.append, lambda reason: None, RecordingLog(), **options)
    server = await asyncio.start_unix_server(speaker._serve, path=str(tmp / "api.sock"))
    _, writer = await asyncio.open_unix_connection(str(tmp / "api.sock"))
    for start in range(0, len(payload), 65536):  # the bridge copies 64 KiB at a time
        writer.write(payload[start : start + 65536])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    for _ in range(200):
        if not speaker.alive and got:
            break
        await asyncio.sleep(0.01)
    return speaker, got


def test_an_update_line_far_over_64_kib_is_read_whole_and_the_next_line_too(tmp_path: Path) -> None:
    # 20,000 prefixes: ~600 KB of JSON, what one Extended Message UPDATE gives; asyncio's readline stopped at 64 KiB.
    big = _prefixes(20_000)
    payload = _update_line("10.0.0.2", big) + _update_line("10.0.0.2", ["9.9.9.0/24"], withdraw=["8.8.8.0/24"])
    assert len(payload) > 500_000
    speaker, got = asyncio.run(_serve(tmp_path, payload))
    announced = [p for p in got if isinstance(p, RoutesAnnounced)]
    assert [len(p.prefixes) for p in announced] == [20_000, 1]
    assert set(announced[0].prefixes) == set(big)
    assert RoutesWithdrawn("10.0.0.2", ("8.8.8.0/24",)) in got
    assert speaker.lines_dropped == 0


def test_a_line_beyond_the_limit_is_skipped_counted_and_its_session_reset(tmp_path: Path) -> None:
    payload = (_update_line("10.0.0.2", _prefixes(5_000)) + _update_line("10.0.0.3", ["9.9.9.0/24"])
               + _update_line("10.0.0.2", ["7.7.7.0/24"]))
    speaker, got = asyncio.run(_serve(tmp_path, payload, line_limit=50_000))
    # The oversized UPDATE is not used; the lines after it are (resynchronised on the newline).
    assert [(p.peer, p.prefixes) for p in got if isinstance(p, RoutesAnnounced)] == [
        ("10.0.0.3", ("9.9.9.0/24",)), ("10.0.0.2", ("7.7.7.0/24",))]
    assert speaker.lines_dropped == 1
    assert speaker.sessions_reset == 1
    # The peer is asked to send its table again (Cease, Out of Resources) instead of mcrd keeping stale routes.
    assert list(speaker._pending) == ["neighbor 10.0.0.2 teardown 8"]


def test_a_received_update_that_cannot_be_decoded_resets_its_session(tmp_path: Path) -> None:
    bad = _update_line("10.0.0.2", ["10.0.0.0/99"])
    speaker, _ = asyncio.run(_serve(tmp_path, bad + _update_line("10.0.0.3", ["9.9.9.0/24"])))
    assert list(speaker._pending) == ["neighbor 10.0.0.2 teardown 8"]
    assert speaker.lines_dropped == 1


def test_the_peer_of_an_oversized_line_is_read_from_its_head() -> None:
    head = _update_line("2001:db8::2", ["10.0.0.0/8"])[:300].decode()
    assert received_update_peer(head) == "2001:db8::2"
    assert received_update_peer(head.replace('"receive"', '"send"')) is None
    assert received_update_peer('{"type": "state", "neighbor": {"address": {"peer": "10.0.0.2"}}}') is None


def test_commands_stay_under_exabgps_1_mib_line_limit_for_the_largest_update() -> None:
    """The other direction: ExaBGP drops its API process for a command line over 1 MiB (processes.py
    MAX_COMMAND_SIZE). The largest attributes one 65,535-byte UPDATE can carry (all of it AS path, 4-byte ASNs of 10
    digits, or all communities), 500 IPv6 /128s per command and 200 sessions named in one command stay far below."""
    from mcrd.bgp.commands import effects_commands
    from mcrd.rib.effects import Announce, Effects
    from mcrd.route.attributes import PathAttributes

    peers = [f"2001:db8:ffff:ffff:ffff:ffff:ffff:{n:x}" for n in range(200)]
    prefixes = tuple(f"2001:db8:ffff:ffff:ffff:ffff:{n // 65536:x}:{n % 65536:x}/128" for n in range(1000))
    for attrs in (PathAttributes("self", as_path=(4_294_967_295,) * (65_535 // 4)),
                  PathAttributes("self", as_path=(4_200_000_000,), communities=("65535:65535",) * (65_535 // 4))):
        effects = Effects(announce=tuple(Announce(peer, attrs, prefixes) for peer in peers))
        commands = list(effects_commands(effects))
        assert commands
        assert max(len(command.encode()) for command in commands) < 1024 * 1024 // 2
