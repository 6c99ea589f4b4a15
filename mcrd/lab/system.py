"""Commands, namespaces and processes for `mcrd lab`: small wrappers over `ip`, `/proc` and signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mcrd.lab.state import proc_start_time

STOP_TIMEOUT = 8.0
FRR_SBIN = Path("/usr/lib/frr")
FRR_TMP = Path("/var/tmp/frr")
"""FRR 8.x keeps per-process crash-log buffers in `/var/tmp/frr/<daemon>.<pid>`, removed on a clean exit only."""


class LabError(Exception):
    """`mcrd lab` cannot go on; the message says what and, where it helps, what to do."""


def run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0, env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False,
                              env=dict(env) if env is not None else None)
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]}: not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(cmd)}: no answer within {timeout:g}s") from exc
    if check and proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise LabError(f"{' '.join(cmd)} failed ({proc.returncode}): {out}")
    return proc


def list_netns() -> set[str]:
    out = run(["ip", "-j", "netns", "list"]).stdout.strip()
    return {str(entry["name"]) for entry in json.loads(out)} if out else set()


def netns_pids(name: str) -> list[int]:
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(tok) for tok in proc.stdout.split()] if proc.returncode == 0 else []


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/*/stat)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def stop_pids(targets: Mapping[int, int | None], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM each pid (only while it still has the start time given, None: any), wait up to `timeout`, SIGKILL
    what is left.  Returns the pids that had to be killed."""

    def alive(pid: int) -> bool:
        now = proc_start_time(pid)
        want = targets[pid]
        return now is not None and (want is None or now == want)

    pending = [p for p in targets if alive(p)]
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [p for p in pending if alive(p)]
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while [p for p in pending if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.02)
    return pending


def frr_tmp_dirs(pids: Iterable[tuple[int, str]]) -> list[Path]:
    """FRR's crash-log directories (`/var/tmp/frr/<daemon>.<pid>`) of these (pid, daemon name) pairs."""
    return [p for pid, name in pids if (p := FRR_TMP / f"{name}.{pid}").exists()]


def tail(path: Path | str, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
