"""`InterfaceManager`: keeps the VXC interfaces configured from asyncio, waiting for the ones not there yet.

It plans (`plan_links`) and applies (`LinkApplier`) in one dedicated thread of its own, where pyroute2's
`IPRoute` is created and used (the same thread model as `FibWorker`, see mcrd/fib/worker.py). Problems are
logged, one line each: "waiting for interface eth1 (VXC aws-vxc)" while an interface is missing (once, until
it appears), and "VXC 'aws-vxc': cannot create VLAN device eth1.100: ..." for errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mcrd.config.model import Config
from mcrd.fib.netns import enter_netns
from mcrd.iface.apply import LinkApplier, LinkReport
from mcrd.iface.plan import LinkPlan, plan_links

T = TypeVar("T")


class InterfaceManager:
    """`await apply(config)` at start, `update(config)` on reload, `run()` as a task (it re-applies after an
    update and when a missing interface appears, polling every `interval` seconds while one is missing)."""

    def __init__(self, log: Any, *, netns: str | None = None, interval: float = 1.0) -> None:
        self.log = log
        self.netns = netns
        self.interval = interval
        self.report = LinkReport()
        self.polls = 0  # looks for missing interfaces, so far
        self._plans: list[LinkPlan] = []
        self._changed = asyncio.Event()
        self._logged: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcrd-links")
        self._applier: LinkApplier | None = None  # belongs to the thread
        self._closed = False

    async def _call(self, fn: Callable[[LinkApplier], T]) -> T:
        def job() -> T:
            if self._applier is None:
                if self.netns is not None:
                    enter_netns(self.netns)
                self._applier = LinkApplier()
            return fn(self._applier)

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def apply(self, config: Config) -> LinkReport:
        self._plans = plan_links(config)
        return await self._apply()

    def update(self, config: Config) -> None:
        """A new configuration (from a reload): `run()` applies it."""
        self._plans = plan_links(config)
        self._changed.set()

    async def run(self) -> None:
        try:
            while True:
                if self.report.waiting:
                    missing = {p.ifname for p in self.report.waiting}
                    try:
                        await asyncio.wait_for(self._changed.wait(), self.interval)
                    except TimeoutError:
                        if await self._missing(missing) == missing:
                            continue
                else:
                    await self._changed.wait()
                self._changed.clear()
                await self._apply()
        finally:
            await self.close()

    async def _missing(self, names: set[str]) -> set[str]:
        self.polls += 1
        return await self._call(lambda applier: applier.missing(names))

    async def close(self) -> None:
        """Close the pyroute2 socket in its thread and let the thread end (`run()` does it when it stops)."""

        def shut(applier: LinkApplier) -> None:
            applier.close()
            self._applier = None

        if not self._closed:
            self._closed = True
            if self._applier is not None:
                await self._call(shut)
            self._executor.shutdown(wait=False)

    async def _apply(self) -> LinkReport:
        plans = list(self._plans)
        report = await self._call(lambda a: a.apply(plans))
        self.report = report
        problems = [*report.waiting, *report.errors]
        for problem in problems:
            if str(problem) not in self._logged:
                level = self.log.warning if problem in report.waiting else self.log.error
                level(str(problem), vxc=problem.vxc, interface=problem.ifname)
        self._logged = {str(p) for p in problems}
        if report.created or report.addresses_added:
            self.log.info("interfaces_configured", created=list(report.created), addresses=report.addresses_added,
                          ready=list(report.ready))
        return report
