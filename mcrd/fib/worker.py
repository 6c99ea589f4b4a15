"""`FibWorker`: the asyncio face of the kernel side, with one dedicated thread behind it.

The netlink socket of `KernelFib` is created and used only in that thread: a plain socket, no pyroute2 and no
event loop involved, so it works under `uvloop.run(main())` and even after `uvloop.install()` (pyroute2's
asyncio API fails on a uvloop loop, svinota/pyroute2#1335). The links have a thread of their own in the same
way (`mcrd.iface.links.InterfaceManager`). The thread runs one job at a time, in the order they were submitted;
the event loop only awaits. A job whose awaiting task is cancelled still runs to its end.

With `netns`, the thread (only it) enters that network namespace before it opens anything: sockets and
/proc/sys/net writes then act on that namespace, the rest of the process stays where it is.

The worker keeps the kernel healed, as BIRD's kernel protocol does with its periodic scan (sysdep/unix/krt.c):
it holds the routes it was asked for (`apply`, `reconcile`), and which of them the kernel refused. `maintain()`
(a task of the daemon) sends refused routes again with a backoff (1 s doubling to 30 s), and every `scan_interval`
seconds compares the kernel's routes of protocol 252 with the wanted ones and fixes the difference: missing routes
added, altered ones replaced, stray ones removed. Routes of other protocols are never read nor written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from mcrd.fib.kernel import FibError, KernelFib, ReconcileResult
from mcrd.fib.netlink import MCRD_METRIC
from mcrd.fib.netns import enter_netns
from mcrd.rib.effects import FibInstall, FibNextHop

T = TypeVar("T")
# BIRD's kernel protocol scans every 60 s by default. A scan of 100,000 routes costs ~0.7 s of this thread (see
# docs/PERFORMANCE.md), ~1 % of a core; failed installs and interfaces coming back are handled at once, not by it.
DEFAULT_SCAN_INTERVAL = 60.0
MIN_SCAN_INTERVAL = 0.5
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds before a refused route is sent again, doubling
LOGGED = 20  # prefixes named in one log line


@dataclass(frozen=True, slots=True)
class KernelStatus:
    """The kernel side at a glance (for the metrics)."""

    wanted: int = 0  # routes the kernel should hold
    pending: int = 0  # of them, refused by the kernel and waiting to be sent again
    errors: int = 0  # route changes the kernel refused, every attempt counted
    retried: int = 0  # routes sent again after a failure
    scans: int = 0
    repaired_added: int = 0  # routes a scan found missing, altered or not wanted, and fixed
    repaired_replaced: int = 0
    repaired_removed: int = 0
    last_scan_seconds: float = 0.0


class _NoLog:
    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **fields: None


class FibWorker:
    """Kernel routes from asyncio. Use `async with FibWorker(...) as worker:`, or `start()` and `close()`; run
    `maintain()` as a task to retry refused routes and scan the kernel."""

    def __init__(self, *, netns: str | None = None, metric: int = MCRD_METRIC,
                 scan_interval: float = DEFAULT_SCAN_INTERVAL, log: Any = None) -> None:
        if not scan_interval >= MIN_SCAN_INTERVAL:
            raise ValueError(f"scan interval {scan_interval!r} s: at least {MIN_SCAN_INTERVAL} s")
        self.netns = netns
        self.metric = metric
        self.scan_interval = scan_interval
        self.log = log if log is not None else _NoLog()
        self._executor: ThreadPoolExecutor | None = None
        self._fib: KernelFib | None = None  # belongs to the worker thread
        # Written by the worker thread only (read by the loop for the status and the schedule):
        self._want: dict[str, FibNextHop] = {}
        self._failed: dict[str, FibNextHop] = {}  # wanted, refused by the kernel: sent again by `retry`
        self._stale = False  # a change failed that only a scan can fix (a remove, an unexpected spelling)
        self._synced = False  # a first `reconcile` said what is wanted: until then a scan would remove everything
        self._status = KernelStatus()
        # The loop's schedule:
        self._retry_at: float | None = None
        self._backoff = RETRY_FIRST
        self._wake: asyncio.Event | None = None

    async def __aenter__(self) -> FibWorker:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the thread and open the netlink socket in it (raises here if the namespace does not exist)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcrd-kernel")
            try:
                await self._call(self._open)
            except BaseException:
                self._executor.shutdown(wait=False)
                self._executor = None
                raise

    async def close(self) -> None:
        """Close the sockets in their thread, then stop the thread. Routes stay: `flush()` first to remove them."""
        if self._executor is not None:
            try:
                await self._call(self._shut)
            finally:
                executor, self._executor = self._executor, None
                await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("FibWorker is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run any other kernel job in the worker thread (after the jobs already submitted)."""
        return await self._call(fn)

    def status(self) -> KernelStatus:
        return self._status

    # --- in the worker thread ----------------------------------------------------------------------------------

    def _open(self) -> None:
        if self.netns is not None:
            enter_netns(self.netns)
        self._fib = KernelFib(metric=self.metric)

    def _shut(self) -> None:
        if self._fib is not None:
            self._fib.close()
        self._fib = None

    def _kernel(self) -> KernelFib:
        assert self._fib is not None
        return self._fib

    def _set(self, last_scan_seconds: float | None = None, **added: int) -> None:
        """A new status: the sizes of now, `added` to the counters of that name."""
        status = self._status
        counters = {name: getattr(status, name) + n for name, n in added.items()}
        if last_scan_seconds is not None:
            counters["last_scan_seconds"] = last_scan_seconds
        self._status = replace(status, wanted=len(self._want), pending=len(self._failed), **counters)

    def _note_errors(self, errors: Sequence[FibError]) -> None:
        """Remember the installs the kernel refused (to send them again); a failed remove leaves a route that is
        no longer wanted: the next scan removes it."""
        for error in errors:
            if error.op == "remove":
                self._stale = True
            elif error.next_hop is not None and self._want.get(error.prefix) == error.next_hop:
                self._failed[error.prefix] = error.next_hop
        self._set(errors=len(errors))

    def _apply_job(self, installs: Sequence[FibInstall], removes: Sequence[str]) -> list[FibError]:
        want, failed = self._want, self._failed
        collections.deque(map(want.pop, removes, itertools.repeat(None)), maxlen=0)  # C loops: once per route
        if failed:
            collections.deque(map(failed.pop, removes, itertools.repeat(None)), maxlen=0)
        for install in installs:
            want.update(dict.fromkeys(install.prefixes, install.next_hop))  # one C loop, not one per route
            if failed:
                for prefix in install.prefixes:
                    failed.pop(prefix, None)
        errors = self._kernel().apply(installs, removes)
        self._note_errors(errors)
        return errors

    def _reconcile_job(self, desired: Mapping[str, FibNextHop] | None) -> ReconcileResult:
        """Make the kernel hold `desired` (from now on the wanted routes), or, with None, the wanted routes."""
        if desired is not None:
            self._want = dict(desired)
            self._synced = True
        self._failed, self._stale = {}, False
        result = self._kernel().reconcile(self._want)
        self._note_errors(result.errors)
        return result

    def _scan_job(self) -> ReconcileResult | None:
        if not self._synced:
            return None
        started = time.perf_counter()
        result = self._reconcile_job(None)
        self._set(scans=1, repaired_added=result.added, repaired_replaced=result.replaced,
                  repaired_removed=result.removed, last_scan_seconds=time.perf_counter() - started)
        return result

    def _retry_job(self) -> tuple[int, list[FibError]]:
        """Send the refused routes again: (how many were sent, the failures)."""
        groups: dict[FibNextHop, list[str]] = {}
        for prefix, hop in self._failed.items():
            groups.setdefault(hop, []).append(prefix)
        sent = len(self._failed)
        self._failed = {}
        errors = self._kernel().apply([FibInstall(hop, tuple(prefixes)) for hop, prefixes in groups.items()], [])
        self._note_errors(errors)
        self._set(retried=sent)
        return sent, errors

    # --- routes ------------------------------------------------------------------------------------------------

    async def apply(self, installs: Sequence[FibInstall], removes: Sequence[str]) -> list[FibError]:
        """Install and remove routes; what the kernel refuses is remembered and sent again by `maintain()`."""
        try:
            return await self._call(lambda: self._apply_job(installs, removes))
        finally:
            self._reschedule()

    async def reconcile(self, desired: Mapping[str, FibNextHop]) -> ReconcileResult:
        """Make the kernel's routes of ours equal `desired`, which becomes what the scans keep there."""
        try:
            return await self._call(lambda: self._reconcile_job(desired))
        finally:
            self._reschedule()

    async def dump(self) -> dict[str, FibNextHop]:
        return await self._call(lambda: self._kernel().dump())

    async def flush(self) -> ReconcileResult:
        """Remove every route of ours (at shutdown): nothing is wanted any more."""
        return await self.reconcile({})

    async def scan(self, *, after_retry: bool = False) -> ReconcileResult | None:
        """Compare the kernel with the wanted routes and fix the difference (None before the first `reconcile`).
        Repairs are logged (`kernel_repaired`) and counted."""
        try:
            result = await self._call(self._scan_job)
        finally:
            self._reschedule(after_retry=after_retry)
        if result is not None and result.changed:
            self.log.info("kernel_repaired", added=result.added, replaced=result.replaced, removed=result.removed,
                          added_prefixes=list(result.added_prefixes[:LOGGED]),
                          replaced_prefixes=list(result.replaced_prefixes[:LOGGED]),
                          removed_prefixes=list(result.removed_prefixes[:LOGGED]),
                          why="the kernel's routes of protocol 252 differed from the best routes")
        if result is not None and result.errors:
            self._log_failures("kernel_scan_failed", result.errors)
        return result

    async def retry(self) -> None:
        """Send the routes the kernel refused again (a scan when a failed remove needs one)."""
        if self._stale:
            await self.scan(after_retry=True)
            return
        try:
            sent, errors = await self._call(self._retry_job)
        finally:
            self._reschedule(after_retry=True)
        if sent and len(errors) < sent:
            self.log.info("kernel_routes_retried", installed=sent - len(errors), still_failing=len(errors))
        if errors:
            self._log_failures("kernel_retry_failed", errors)

    def _log_failures(self, event: str, errors: Sequence[FibError]) -> None:
        self.log.warning(event, routes=len(errors), errors=[str(e) for e in errors[:LOGGED]],
                         next_try_in=self._backoff if self._retry_at is not None else None)

    # --- healing -----------------------------------------------------------------------------------------------

    def _reschedule(self, *, after_retry: bool = False) -> None:
        """After a job: a retry is due while routes are refused, sooner after a success, later after each failure."""
        if not (self._failed or self._stale):
            self._retry_at, self._backoff = None, RETRY_FIRST
            return
        now = time.monotonic()
        if after_retry:
            self._backoff = min(self._backoff * 2, RETRY_MAX)
        if after_retry or self._retry_at is None:
            self._retry_at = now + self._backoff
            if self._wake is not None:
                self._wake.set()

    async def maintain(self) -> None:
        """Retry refused routes and scan the kernel every `scan_interval` seconds, until cancelled. Start it after
        the first `reconcile`; a failing job is logged and tried again later, it does not end the task."""
        self._wake = asyncio.Event()
        next_scan = time.monotonic() + self.scan_interval
        while True:
            due = next_scan if self._retry_at is None else min(next_scan, self._retry_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, due - time.monotonic()))
            self._wake.clear()
            now = time.monotonic()
            try:
                if now >= next_scan:
                    try:
                        await self.scan()
                    finally:  # from the scan's end: a slow scan never runs back to back with the next one
                        next_scan = time.monotonic() + self.scan_interval
                elif self._retry_at is not None and now >= self._retry_at:
                    await self.retry()
            except OSError as exc:  # the netlink socket itself failed: say so, keep the schedule
                self.log.error("kernel_scan_error", error=str(exc))
