"""`python -m bench.hub.mcrd_bench run -c CONFIG ...`: mcrd with measurement switches mcrd itself does not have.

- `MCRD_BENCH_FIB=off`: no kernel FIB (for `--fib off` runs). The one method that programs the kernel is replaced;
  ExaBGP, the route processor and the commands run unchanged. (Proposal: an mcrd extension `mcr.fib: false`.)
- `MCRD_BENCH_EXABGP=nosleep`: ExaBGP is started through bench/hub/exabgp_nosleep.py (its reactor does not sleep
  while API commands are still being applied); `nosleep+shallow` adds its cheaper `Neighbor.remove_self`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mcrd import daemon
from mcrd.bgp import speaker
from mcrd.cli import main


async def _no_kernel(self: daemon.Daemon, kernel: dict[str, object]) -> None:
    return None


if os.environ.get("MCRD_BENCH_FIB") == "off":
    daemon.Daemon._program_kernel = _no_kernel  # type: ignore[method-assign,assignment]

if os.environ.get("MCRD_BENCH_EXABGP") in ("nosleep", "nosleep+shallow"):
    if os.environ["MCRD_BENCH_EXABGP"] == "nosleep+shallow":
        os.environ["EXABGP_BENCH_SHALLOW"] = "1"  # inherited by ExaBGP
    _init = speaker.ExaBgpSpeaker.__init__
    _launcher = [sys.executable, str(Path(__file__).with_name("exabgp_nosleep.py"))]

    def _patched_init(self: speaker.ExaBgpSpeaker, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exabgp_command", _launcher)
        _init(self, *args, **kwargs)

    speaker.ExaBgpSpeaker.__init__ = _patched_init  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
