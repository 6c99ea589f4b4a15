"""`python -m bench.hub.mcrd_bench run -c CONFIG ...`: mcrd with measurement switches mcrd itself does not have.

- `MCRD_BENCH_FIB=off`: no kernel FIB (for `--fib off` runs). The one method that programs the kernel is replaced;
  ExaBGP, the route processor and the commands run unchanged. (Proposal: an mcrd extension `mcr.fib: false`.)
- `MCRD_BENCH_EXABGP=poll,copy` (a subset of mcrd.bgp.exabgp_launch.FIXES): ExaBGP is started through
  bench/hub/exabgp_fixes.py with only those fixes, at the stock `reactor.speed` mcrd uses without them (0.1).
  (ExaBGP with none of the fixes: `MCRD_EXABGP_STOCK=1`, which mcrd itself understands.)
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

if os.environ.get("MCRD_BENCH_EXABGP"):
    os.environ["EXABGP_BENCH_FIXES"] = os.environ["MCRD_BENCH_EXABGP"]  # inherited by ExaBGP
    _init = speaker.ExaBgpSpeaker.__init__
    _launcher = [sys.executable, str(Path(__file__).with_name("exabgp_fixes.py"))]

    def _patched_init(self: speaker.ExaBgpSpeaker, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exabgp_command", _launcher)
        _init(self, *args, **kwargs)

    speaker.ExaBgpSpeaker.__init__ = _patched_init  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
