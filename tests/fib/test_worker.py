"""FibWorker (routes) and InterfaceManager (links), each with its own kernel thread, under `uvloop.run` (root only)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

from mcrd.config.model import Config
from mcrd.fib.worker import FibWorker
from mcrd.iface.links import InterfaceManager
from mcrd.rib.effects import FibInstall, FibNextHop
from tests.fib.lab import NEEDS_ROOT, Lab, our_routes, sh, unique, veth_lab

pytestmark = NEEDS_ROOT


class Log:
    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: None


@pytest.fixture
def lab() -> Iterator[Lab]:
    with veth_lab("worker", addresses=False) as lab:
        yield lab


def test_everything_through_the_worker_under_uvloop_run(lab: Lab) -> None:
    config = Config.model_validate({"mcr": {"productName": "t"}, "vxcs": [{
        "productName": "dc", "interface": lab.near,
        "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/24", "2001:db8:1::1/64"]}]},
    }]})
    v4, v6 = FibNextHop(lab.gw4, lab.near), FibNextHop(lab.gw6, lab.near)
    seen: dict[str, Any] = {}

    async def main() -> None:
        seen["loop"] = type(asyncio.get_running_loop())
        # The links first, as the daemon does: pyroute2's IPRoute in the links thread, under uvloop.
        links = InterfaceManager(Log(), netns=lab.ns)
        try:
            seen["links"] = await links.apply(config)
        finally:
            await links.close()
        async with FibWorker(netns=lab.ns) as worker:
            # The heartbeat shows the loop stays free while the thread works.
            beats = 0

            async def heartbeat() -> None:
                nonlocal beats
                while True:
                    beats += 1
                    await asyncio.sleep(0)

            beat = asyncio.create_task(heartbeat())
            prefixes = tuple(f"10.{n >> 8}.{n & 255}.0/24" for n in range(20_000))
            seen["apply"] = await worker.apply([FibInstall(v4, prefixes), FibInstall(v6, ("2001:db8:30::/48",))], [])
            beat.cancel()
            seen["beats"] = beats
            seen["count"] = len(await worker.dump())
            seen["reconcile"] = await worker.reconcile({"10.0.0.0/24": v4, "2001:db8:30::/48": v6})
            seen["routes"] = set(our_routes(lab.ns))
            seen["threads"] = await worker.run(lambda: threading.current_thread().name)
            seen["flush"] = await worker.flush()
        seen["after"] = our_routes(lab.ns)

    uvloop.run(main())
    assert seen["loop"] is uvloop.Loop
    assert seen["links"].errors == ()
    assert seen["links"].ready == (lab.near,)
    assert seen["apply"] == []
    assert seen["count"] == 20_001
    assert seen["beats"] > 1
    result = seen["reconcile"]
    assert (result.kept, result.removed, result.added, result.errors) == (2, 19_999, 0, ())
    assert seen["routes"] == {"10.0.0.0/24", "2001:db8:30::/48"}
    assert seen["threads"].startswith("mcrd-kernel")
    assert seen["flush"].removed == 2
    assert seen["after"] == {}


def test_even_with_the_uvloop_policy_installed_globally(lab: Lab) -> None:
    """What `uvloop.install()` does; mcrd uses `uvloop.run`, but neither side of the worker depends on that."""
    config = Config.model_validate({"mcr": {"productName": "t"}, "vxcs": [{
        "productName": "dc", "interface": lab.near, "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/24"]}]},
    }]})
    seen: dict[str, Any] = {}

    async def main() -> None:
        seen["loop"] = type(asyncio.get_running_loop())
        links = InterfaceManager(Log(), netns=lab.ns)
        try:
            seen["links"] = await links.apply(config)
        finally:
            await links.close()
        async with FibWorker(netns=lab.ns) as worker:
            seen["apply"] = await worker.apply([FibInstall(FibNextHop(lab.gw4, lab.near), ("10.1.0.0/16",))], [])

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(main())
    finally:
        asyncio.set_event_loop_policy(old)
    assert seen["loop"] is uvloop.Loop
    assert seen["links"].errors == ()
    assert seen["links"].ready == (lab.near,)
    assert seen["apply"] == []
    assert set(our_routes(lab.ns)) == {"10.1.0.0/16"}


def test_a_missing_namespace_fails_at_start_and_is_not_created() -> None:
    name = unique("mcrdt-absent-")

    async def main() -> None:
        worker = FibWorker(netns=name)
        with pytest.raises(FileNotFoundError):
            await worker.start()
        with pytest.raises(RuntimeError, match="not started"):
            await worker.flush()

    uvloop.run(main())
    assert name not in sh("ip", "netns", "list").stdout


async def test_also_on_the_default_asyncio_loop(lab: Lab) -> None:
    async with FibWorker(netns=lab.ns) as worker:
        assert await worker.dump() == {}
