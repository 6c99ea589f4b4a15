"""InterfaceManager, the asyncio face the daemon uses: waiting for a missing interface, reloads (root only)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from mcrd.iface.links import InterfaceManager
from tests.async_poll import until
from tests.fib.lab import NEEDS_ROOT, Lab, in_netns, sh, unique, veth_lab
from tests.iface.test_apply_netns import addresses, lab_config
from tests.logs import RecordingLog

pytestmark = NEEDS_ROOT


@pytest.fixture
def lab() -> Iterator[Lab]:
    with veth_lab("links", addresses=False) as lab:
        yield lab


async def test_waits_for_the_interface_then_configures_it_and_follows_reloads(lab: Lab) -> None:
    late, peer = unique("mvl"), unique("mvp")

    def config(*late_addresses: str) -> Any:
        return lab_config(
            {"productName": "dc", "interface": lab.near,
             "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/30"]}]}},
            {"productName": "aws-vxc", "interface": late,
             "vrouter": {"interfaces": [{"ipAddresses": list(late_addresses)}]}},
        )

    log = RecordingLog()
    manager = InterfaceManager(log, netns=lab.ns, interval=0.02)
    try:
        report = await manager.apply(config("192.0.2.5/30"))
        assert report.ready == (lab.near,)
        assert log.lines == [
            ("warning", f"waiting for interface {late} (VXC aws-vxc)", {"vxc": "aws-vxc", "interface": late}),
            ("info", "interfaces_configured", {"created": [], "addresses": 1, "ready": [lab.near]}),
        ]
        task = asyncio.create_task(manager.run())
        # A few polls while it is missing: the message is not repeated.
        await until(lambda: manager.polls >= 3, "three polls")
        await asyncio.to_thread(sh, "ip", "-n", lab.ns, "link", "add", late, "type", "veth", "peer", "name", peer)
        await until(lambda: late in manager.report.ready, f"{late} ready")
        assert addresses(lab, late) == {"192.0.2.5/30"}
        assert [line[1] for line in log.lines].count(f"waiting for interface {late} (VXC aws-vxc)") == 1

        before = manager.report
        manager.update(config("192.0.2.5/30", "2001:db8:c::1/64"))  # a reload adds an address
        await until(lambda: manager.report is not before, "a new report")
        assert manager.report.addresses_added == 1
        assert addresses(lab, late) == {"192.0.2.5/30", "2001:db8:c::1/64"}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await manager.close()
        lab.ip("link", "del", late, check=False)
    assert in_netns(lab.ns, lambda: sh("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()) == "1"
