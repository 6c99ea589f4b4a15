"""FibWorker (routes) and InterfaceManager (links), each with its own kernel thread, under `uvloop.run` (root only);
the worker's healing (refused routes sent again, the kernel scanned) against a real kernel in a namespace."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvloop

from mcrd.config.model import Config
from mcrd.fib.worker import FibWorker
from mcrd.iface.links import InterfaceManager
from mcrd.rib.effects import FibInstall, FibNextHop
from tests.fib.lab import NEEDS_ROOT, Lab, ip_json, our_routes, sh, unique, veth_lab
from tests.logs import RecordingLog

pytestmark = NEEDS_ROOT


async def until(fn: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `fn` (a blocking check, run in a thread) until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(fn)
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {got!r}")
        await asyncio.sleep(0.05)


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
        links = InterfaceManager(RecordingLog(), netns=lab.ns)
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
        links = InterfaceManager(RecordingLog(), netns=lab.ns)
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


async def test_a_refused_route_is_sent_again_until_the_kernel_takes_it(lab: Lab) -> None:
    """The next hop's device does not exist at install time (a real ENODEV); it is created later and the route
    arrives with nothing else asked of the worker. No scan within the test (600 s): the retry alone does it."""
    later = unique("mvl")
    hop = FibNextHop("198.51.100.2", later)
    log = RecordingLog()
    async with FibWorker(netns=lab.ns, scan_interval=600, log=log) as worker:
        await worker.reconcile({})
        errors = await worker.apply([FibInstall(hop, ("10.40.0.0/16", "10.41.0.0/16"))], [])
        assert [e.prefix for e in errors] == ["10.40.0.0/16", "10.41.0.0/16"]
        assert f"interface {later} does not exist" in errors[0].message
        assert (worker.status().pending, worker.status().errors) == (2, 2)
        task = asyncio.create_task(worker.maintain())
        try:
            # The first retry (1 s) fails too: still pending, counted, logged with the next try's delay.
            await until(lambda: worker.status().retried >= 2, "a first retry")
            assert worker.status().pending == 2
            failed = log.events("kernel_retry_failed")
            assert failed
            assert failed[0]["routes"] == 2
            assert failed[0]["next_try_in"] == 2.0  # doubled
            lab.ip("link", "add", later, "type", "veth", "peer", "name", unique("mvm"))
            lab.ip("addr", "add", "198.51.100.1/24", "dev", later)
            lab.ip("link", "set", later, "up")
            routes = await until(lambda: {p: r for p, r in our_routes(lab.ns).items() if p.startswith("10.4")},
                                 "the refused routes in the kernel")
            assert set(routes) == {"10.40.0.0/16", "10.41.0.0/16"}
            assert routes["10.40.0.0/16"]["dev"] == later
            assert routes["10.40.0.0/16"]["gateway"] == "198.51.100.2"
            await until(lambda: worker.status().pending == 0, "nothing pending")
            retried = log.events("kernel_routes_retried")
            assert retried[-1] == {"installed": 2, "still_failing": 0}
            assert worker.status().scans == 0
            # Withdrawn while pending: not sent again.
            errors = await worker.apply([FibInstall(FibNextHop("198.51.100.2", unique("mvn")), ("10.42.0.0/16",))],
                                        [])
            assert worker.status().pending == 1
            await worker.apply([], ["10.42.0.0/16"])
            assert worker.status().pending == 0
        finally:
            task.cancel()
        await worker.flush()


@pytest.fixture
def addressed() -> Iterator[Lab]:
    with veth_lab("heal") as lab:
        yield lab


async def test_the_scan_puts_back_what_was_changed_behind_its_back(addressed: Lab) -> None:
    """Every 0.5 s the worker compares the kernel's routes of protocol 252 with the wanted ones: a deleted route is
    added again, an altered one replaced, a stray one removed; routes of other protocols stay as they are."""
    lab = addressed
    v4, v6 = FibNextHop(lab.gw4, lab.near), FibNextHop(lab.gw6, lab.near)
    want = {"10.1.0.0/16": v4, "10.2.0.0/16": v4, "10.3.0.0/16": v4, "2001:db8:40::/48": v6}
    log = RecordingLog()

    def ours() -> dict[str, str]:
        return {p: r.get("gateway", "") for p, r in our_routes(lab.ns).items()}

    def static() -> list[dict[str, Any]]:
        return ip_json(lab.ns, "route", "show", "proto", "static") + ip_json(lab.ns, "-6", "route", "show", "proto",
                                                                              "static")

    expected = {"10.1.0.0/16": lab.gw4, "10.2.0.0/16": lab.gw4, "10.3.0.0/16": lab.gw4, "2001:db8:40::/48": lab.gw6}
    async with FibWorker(netns=lab.ns, scan_interval=0.5, log=log) as worker:
        # Before the first reconcile nothing is known to be wanted: a scan touches nothing.
        lab.ip("route", "add", "10.65.0.0/16", "via", lab.gw4, "proto", "252", "metric", "20")
        assert await worker.scan() is None
        assert "10.65.0.0/16" in ours()
        result = await worker.reconcile(want)
        assert (result.added, result.removed) == (4, 1)
        assert ours() == expected
        task = asyncio.create_task(worker.maintain())
        try:
            lab.ip("route", "add", "10.3.0.0/16", "via", "192.0.2.3", "proto", "static")  # beside ours (metric 0)
            lab.ip("route", "add", "10.67.0.0/16", "via", lab.gw4, "proto", "static")
            lab.ip("-6", "route", "add", "2001:db8:41::/48", "via", lab.gw6, "proto", "static")
            before = static()
            lab.ip("route", "del", "10.1.0.0/16", "proto", "252")
            lab.ip("-6", "route", "del", "2001:db8:40::/48", "proto", "252")
            lab.ip("route", "replace", "10.2.0.0/16", "via", "192.0.2.3", "dev", lab.near, "proto", "252", "metric",
                   "20")
            lab.ip("route", "add", "10.66.0.0/16", "via", lab.gw4, "proto", "252", "metric", "20")
            await until(lambda: ours() == expected, "the kernel repaired")
            status = worker.status()
            assert (status.repaired_added, status.repaired_replaced, status.repaired_removed) == (2, 1, 1)
            assert status.scans >= 1
            assert status.last_scan_seconds > 0
            repaired = log.events("kernel_repaired")
            assert sorted(p for e in repaired for p in e["added_prefixes"]) == ["10.1.0.0/16", "2001:db8:40::/48"]
            assert [p for e in repaired for p in e["replaced_prefixes"]] == ["10.2.0.0/16"]
            assert [p for e in repaired for p in e["removed_prefixes"]] == ["10.66.0.0/16"]
            # Scans go on, and leave the other protocols' routes alone: the same after two more scans.
            scans = worker.status().scans
            await until(lambda: worker.status().scans >= scans + 2, "two more scans")
            assert static() == before
            assert ours() == expected
        finally:
            task.cancel()
        await worker.flush()
    assert our_routes(lab.ns) == {}
    assert static() == before
