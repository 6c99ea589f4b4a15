"""`FibWorker`: the asyncio face of the kernel side, with one dedicated thread behind it.

The netlink socket of `KernelFib` is created and used only in that thread: a plain socket, no pyroute2 and no
event loop involved, so it works under `uvloop.run(main())` and even after `uvloop.install()` (pyroute2's
asyncio API fails on a uvloop loop, svinota/pyroute2#1335). The links have a thread of their own in the same
way (`mcrd.iface.links.InterfaceManager`). The thread runs one job at a time, in the order they were submitted;
the event loop only awaits. A job whose awaiting task is cancelled still runs to its end.

With `netns`, the thread (only it) enters that network namespace before it opens anything: sockets and
/proc/sys/net writes then act on that namespace, the rest of the process stays where it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mcrd.fib.kernel import FibError, KernelFib, ReconcileResult
from mcrd.fib.netlink import MCRD_METRIC
from mcrd.fib.netns import enter_netns
from mcrd.rib.effects import FibInstall, FibNextHop

T = TypeVar("T")


class FibWorker:
    """Kernel routes from asyncio. Use `async with FibWorker(...) as worker:`, or `start()` and `close()`."""

    def __init__(self, *, netns: str | None = None, metric: int = MCRD_METRIC) -> None:
        self.netns = netns
        self.metric = metric
        self._executor: ThreadPoolExecutor | None = None
        self._fib: KernelFib | None = None  # belongs to the worker thread

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

    # --- routes ------------------------------------------------------------------------------------------------

    async def apply(self, installs: Sequence[FibInstall], removes: Sequence[str]) -> list[FibError]:
        return await self._call(lambda: self._kernel().apply(installs, removes))

    async def reconcile(self, desired: Mapping[str, FibNextHop]) -> ReconcileResult:
        return await self._call(lambda: self._kernel().reconcile(desired))

    async def dump(self) -> dict[str, FibNextHop]:
        return await self._call(lambda: self._kernel().dump())

    async def flush(self) -> ReconcileResult:
        return await self._call(lambda: self._kernel().flush())
