"""LinkMonitor against a real kernel (root only): link and address changes arrive as snapshots, at once."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from mcrd.iface.monitor import LinkMonitor
from mcrd.iface.tracking import LinkSnapshot
from tests.fib.lab import NEEDS_ROOT, Lab, veth_lab
from tests.logs import RecordingLog

pytestmark = NEEDS_ROOT


@pytest.fixture
def lab() -> Iterator[Lab]:
    with veth_lab("monitor") as lab:
        yield lab


async def until(seen: list[LinkSnapshot], check: Callable[[LinkSnapshot], bool], timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not (seen and check(seen[-1])):
        assert time.monotonic() - start < timeout, f"no such snapshot; last: {seen[-1] if seen else None}"
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def test_link_down_up_carrier_and_addresses_are_seen(lab: Lab) -> None:
    seen: list[LinkSnapshot] = []
    monitor = LinkMonitor(seen.append, RecordingLog(), netns=lab.ns)
    first = await monitor.start()
    try:
        near = first.links[lab.near]
        assert (near.admin_up, near.lower_up, near.fault()) == (True, True, "")
        assert {"192.0.2.1", "2001:db8:1::1"} <= near.addresses

        lab.ip("link", "set", lab.near, "down")
        took = await until(seen, lambda s: s.links[lab.near].fault().endswith("administratively down"))
        assert took < 2.0
        lab.ip("link", "set", lab.near, "up")
        await until(seen, lambda s: s.links[lab.near].fault() == "")

        lab.ip("link", "set", lab.far, "down")  # the other end: carrier lost here
        await until(seen, lambda s: "no carrier" in s.links[lab.near].fault())
        lab.ip("link", "set", lab.far, "up")
        await until(seen, lambda s: s.links[lab.near].fault() == "")

        lab.ip("addr", "del", "192.0.2.1/24", "dev", lab.near)
        await until(seen, lambda s: "192.0.2.1" not in s.links[lab.near].addresses)
        lab.ip("addr", "add", "192.0.2.1/24", "dev", lab.near)
        await until(seen, lambda s: "192.0.2.1" in s.links[lab.near].addresses)
        lab.ip("addr", "add", "2001:db8:2::1/64", "dev", lab.near)  # with DAD: tentative at first, then usable
        await until(seen, lambda s: "2001:db8:2::1" in s.links[lab.near].addresses)
    finally:
        await monitor.close()


async def test_a_flood_of_changes_ends_in_the_exact_state(lab: Lab) -> None:
    """A tiny socket buffer overruns (ENOBUFS): the monitor recreates it and dumps again. Whether one flood
    overruns depends on how the reader thread is scheduled, so floods of adds and deletes repeat until one has."""
    seen: list[LinkSnapshot] = []
    monitor = LinkMonitor(seen.append, RecordingLog(), netns=lab.ns, rcvbuf=256)
    await monitor.start()
    addresses = [f"198.51.100.{i}" for i in range(1, 200)]
    want = set(addresses)

    def flood(verb: str) -> None:
        batch = "".join(f"address {verb} {address}/32 dev {lab.near}\n" for address in addresses)
        subprocess.run(["ip", "-n", lab.ns, "-batch", "-"], input=batch, text=True, check=True)

    try:
        for _ in range(20):
            flood("add")
            await until(seen, lambda s: want <= s.links[lab.near].addresses)
            if monitor.overruns:
                break
            flood("del")
            await until(seen, lambda s: not want & s.links[lab.near].addresses)
        assert monitor.overruns >= 1, "20 floods into a 256-byte buffer never overran it"
        assert want <= seen[-1].links[lab.near].addresses
    finally:
        await monitor.close()
