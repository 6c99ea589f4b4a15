"""What the daemon hears about ExaBGP's fixes: the speaker runs real ExaBGP through the launcher, and the log line
(`exabgp_fixes`) and the reactor speed ExaBGP got (read from its API process's environment, a copy of ExaBGP's own)
follow what the launcher really installed. ExaBGP runs with no neighbor: no session is needed for this."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from mcrd.bgp import exabgp_launch
from mcrd.bgp.speaker import ExaBgpSpeaker
from mcrd.config.model import Config
from tests.logs import RecordingLog

# The seam: the launcher as it would run against an ExaBGP release other than the one its fixes were read in.
OTHER_RELEASE = "9.9.9"
MISMATCHED = [sys.executable, "-c",
              f"from mcrd.bgp import exabgp_launch\nexabgp_launch.TUNED_FOR = {OTHER_RELEASE!r}\nexabgp_launch.main()"]



def _api_process_speed(pid: int) -> str:
    """`exabgp_reactor_speed` in the environment of ExaBGP's API process (the bridge), which ExaBGP copies from its
    own `os.environ` when it starts it."""
    [child] = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
    [speed] = [item.split(b"=", 1)[1].decode() for item in environ if item.startswith(b"exabgp_reactor_speed=")]
    return speed


# One neighbor that never answers (nothing listens on 127.0.0.2): its configuration shows the capabilities offered.
CONFIG = Config.model_validate({
    "mcr": {"productName": "launch", "routerId": "10.255.0.1"},
    "vxcs": [{"productName": "v", "interface": "lo", "vrouter": {"interfaces": [{
        "ipAddresses": ["127.0.0.1/8"],
        "bgpConnections": [{"peerAsn": 65000, "localIpAddress": "127.0.0.1", "peerIpAddress": "127.0.0.2"}]}]}}],
})


def _run(state_dir: Path, command: list[str] | None, *, expect_fixes: bool | None = None
         ) -> tuple[RecordingLog, str, ExaBgpSpeaker]:
    async def main() -> tuple[RecordingLog, str, ExaBgpSpeaker]:
        log = RecordingLog()
        speaker = ExaBgpSpeaker(state_dir, lambda parsed: None, lambda reason: None, log, exabgp_command=command)
        if expect_fixes is not None:  # what the daemon expected before the launcher reported
            speaker.negotiation_fixes = expect_fixes
        speaker.write_config(CONFIG)
        task = asyncio.create_task(speaker.run())
        try:
            deadline = time.monotonic() + 30
            while not log.leveled("exabgp_fixes"):
                assert time.monotonic() < deadline, f"no exabgp_fixes line: {log.lines}"
                assert not task.done(), log.lines
                await asyncio.sleep(0.05)
            assert speaker.pid is not None
            speed = _api_process_speed(speaker.pid)
        finally:
            await speaker.stop()
            await task
        return log, speed, speaker

    return asyncio.run(main())


def test_with_every_fix_installed_the_daemon_logs_them_and_exabgp_runs_at_full_speed(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(exabgp_launch.STOCK_ENV, raising=False)
    log, speed, speaker = _run(state_dir, None)
    assert log.leveled("exabgp_fixes") == [("info", {
        "pid": log.leveled("exabgp_fixes")[0][1]["pid"], "applied": True, "fixes": list(exabgp_launch.expected_fixes()),
        "reactor_speed": exabgp_launch.SPEED_WITH_FIXES, "release": exabgp_launch.TUNED_FOR,
        "reason": f"ExaBGP {exabgp_launch.TUNED_FOR}"})]
    assert speed == exabgp_launch.SPEED_WITH_FIXES
    assert speaker.fixes is not None
    assert speaker.fixes.fixes == exabgp_launch.expected_fixes()
    assert log.leveled("exabgp_stock") == []
    assert "route-refresh enable" in (state_dir / "exabgp.conf").read_text()  # fix 7 runs: offered
    assert log.leveled("exabgp_config_rewritten") == []


def test_when_the_fixes_do_not_fit_none_is_installed_and_the_daemon_says_so(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(exabgp_launch.STOCK_ENV, raising=False)
    log, speed, _ = _run(state_dir, MISMATCHED)
    [(level, fields)] = log.leveled("exabgp_fixes")
    reason = f"ExaBGP {exabgp_launch.TUNED_FOR} installed; the fixes were read in {OTHER_RELEASE}"
    assert (level, fields["applied"], fields["fixes"], fields["reactor_speed"], fields["reason"]) == (
        "info", False, [], exabgp_launch.SPEED_STOCK, reason)
    assert speed == exabgp_launch.SPEED_STOCK
    [(level, fields)] = log.leveled("exabgp_stock")
    assert (level, fields["reason"]) == ("warning", reason)


def test_mcrd_exabgp_stock_runs_exabgp_stock(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(exabgp_launch.STOCK_ENV, "1")
    log, speed, _ = _run(state_dir, None)
    [(level, fields)] = log.leveled("exabgp_fixes")
    assert (level, fields["applied"], fields["fixes"], fields["reason"]) == (
        "info", False, [], f"{exabgp_launch.STOCK_ENV}=1")
    assert speed == exabgp_launch.SPEED_STOCK
    [(level, fields)] = log.leveled("exabgp_stock")  # asked for, and still worth a warning: it has ExaBGP's bugs
    assert (level, fields["reason"]) == ("warning", f"{exabgp_launch.STOCK_ENV}=1")


def test_a_configuration_that_expected_the_fixes_is_rewritten_when_the_launcher_could_not_install_them(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Route refresh is offered only where fix 7 answers it: the report, not the expectation, decides."""
    monkeypatch.delenv(exabgp_launch.STOCK_ENV, raising=False)
    log, speed, speaker = _run(state_dir, MISMATCHED, expect_fixes=True)
    assert speed == exabgp_launch.SPEED_STOCK
    [(level, fields)] = log.leveled("exabgp_config_rewritten")
    assert (level, fields["route_refresh"]) == ("warning", False)
    assert speaker.negotiation_fixes is False
    text = (state_dir / "exabgp.conf").read_text()
    assert "route-refresh disable" in text
    assert "route-refresh enable" not in text
