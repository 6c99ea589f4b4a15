"""Polling with a deadline inside a running event loop (tests/lab/harness.py `poll` is the blocking one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0, interval: float = 0.01) -> float:
    """Await until `condition()` is true; the seconds it took. AssertionError naming `what` after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start
