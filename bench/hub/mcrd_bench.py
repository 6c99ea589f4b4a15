"""`python -m bench.hub.mcrd_bench run -c CONFIG ...`: mcrd with a measurement switch mcrd itself does not have.

(FIB-off runs need none: the benchmark's config sets mcrd's own `mcr.kernelRoutes: false`.)

- `MCRD_BENCH_EXABGP=poll,copy` (a subset of mcrd.bgp.exabgp_launch.FIXES): ExaBGP is started through
  bench/hub/exabgp_fixes.py with only those fixes, at the stock `reactor.speed` mcrd uses without them (0.1).
  (ExaBGP with none of the fixes: `MCRD_EXABGP_STOCK=1`, which mcrd itself understands.)
- `MCRD_BENCH_CPROFILE=DIR`: SIGUSR2 starts cProfile (thread CPU time) in the daemon's main thread, the next
  SIGUSR2 stops it and writes DIR/main-N.prof (bench/hub/run.py sends both around the withdrawal; the garbage
  collections are timed by MCRD_BENCH_PARTS). The profiler's own cost is counted per call, builtins included: read
  it for shares, not for times.
- `MCRD_BENCH_PARTS=DIR`: the same signals time a few parts of the daemon's main thread (thread CPU time), its
  garbage collections by generation, and the whole of it, into DIR/parts-PID-N.json.
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

if os.environ.get("MCRD_BENCH_CPROFILE"):
    import cProfile
    import signal
    import time

    _profiles: dict[str, Any] = {"n": 0, "on": None}

    def _toggle(*_: Any) -> None:
        running = _profiles["on"]
        if running is None:
            profiler = cProfile.Profile(time.thread_time)  # this thread's CPU: not the time others ran meanwhile
            _profiles["on"] = profiler
            profiler.enable()
            return
        running.disable()
        _profiles["n"] += 1
        out = Path(os.environ["MCRD_BENCH_CPROFILE"])
        out.mkdir(parents=True, exist_ok=True)
        running.dump_stats(str(out / f"main-{_profiles['n']}.prof"))
        _profiles["on"] = None

    signal.signal(signal.SIGUSR2, _toggle)

if os.environ.get("MCRD_BENCH_PARTS"):
    import gc
    import json
    import signal
    import time

    from mcrd import daemon
    from mcrd.bgp import messages, pool
    from mcrd.events import sink

    _parts: dict[str, float] = {}
    _on: dict[str, Any] = {"since": None, "n": 0, "gc": 0.0}

    def _gc_part(phase: str, info: dict[str, int]) -> None:  # the collections while on, as a part of their own
        if _on["since"] is None:
            return
        if phase == "start":
            _on["gc"] = time.thread_time()
            return
        label = f"gc, generation {info['generation']}"
        _parts[label] = _parts.get(label, 0.0) + time.thread_time() - _on["gc"]

    gc.callbacks.append(_gc_part)

    def _timed(owner: Any, name: str, label: str, listed: bool = False) -> None:
        """`owner.name` with the main thread's CPU time in it added up while on (`listed`: a generator, consumed)."""
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if _on["since"] is None:
                return original(*args, **kwargs)
            start = time.thread_time()
            try:
                result = original(*args, **kwargs)
                return list(result) if listed else result
            finally:
                _parts[label] = _parts.get(label, 0.0) + time.thread_time() - start

        setattr(owner, name, timed)

    _timed(messages.Decoder, "decode", "decode")
    _timed(daemon.Daemon, "_handle", "processor")
    _timed(daemon, "fast_effects_commands", "commands", listed=True)
    _timed(pool.SpeakerPool, "send", "send")
    _timed(sink.Events, "emit_effects", "events")

    def _toggle_parts(*_: Any) -> None:
        if _on["since"] is None:
            _parts.clear()
            _on["since"] = time.thread_time()
            return
        _parts["main thread, all"] = time.thread_time() - _on["since"]
        _on["since"] = None
        _on["n"] += 1
        out = Path(os.environ["MCRD_BENCH_PARTS"])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"parts-{os.getpid()}-{_on['n']}.json").write_text(json.dumps(_parts))

    signal.signal(signal.SIGUSR2, _toggle_parts)

if __name__ == "__main__":
    sys.exit(main())
