"""`python -m bench.hub.mcrd_bench run -c CONFIG ...`: mcrd with a measurement switch mcrd itself does not have.

(FIB-off runs need none: the benchmark's config sets mcrd's own `mcr.kernelRoutes: false`.)

- `MCRD_BENCH_EXABGP=poll,copy` (a subset of mcrd.bgp.exabgp_launch.FIXES): ExaBGP is started through
  bench/hub/exabgp_fixes.py with only those fixes, at the stock `reactor.speed` mcrd uses without them (0.1).
  (ExaBGP with none of the fixes: `MCRD_EXABGP_STOCK=1`, which mcrd itself understands.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mcrd.bgp import speaker
from mcrd.cli import main

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
