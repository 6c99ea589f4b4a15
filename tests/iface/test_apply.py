"""LinkApplier without a kernel: the exact pyroute2 requests it makes (recording fake), their bytes (pyroute2's
own encoder over its mock socket), idempotence, and the messages for missing interfaces and missing 802.1Q."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.iproute.ipmock import IPEngine  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # type: ignore[import-untyped]

from mcrd.config.devices import VlanDevice
from mcrd.iface.apply import GLOBAL_SYSCTLS, LinkApplier, vlan_request
from mcrd.iface.plan import plan_links
from tests.iface.test_plan import config, vxc


class Msg(dict[str, Any]):
    """Enough of a pyroute2 message: `get` takes a key or a path of keys."""

    def get(self, key: Any, default: Any = None) -> Any:
        value: Any = self
        for part in key if isinstance(key, tuple) else (key,):
            if not isinstance(value, dict) or part not in value:
                return default
            value = dict.__getitem__(value, part)
        return value


class FakeIPRoute:
    """Links and addresses in memory; every change is recorded as (method, command, kwargs)."""

    def __init__(self, *names: str, vlan_error: NetlinkError | None = None) -> None:
        self.links: dict[str, Msg] = {}
        self.addrs: list[Msg] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.vlan_error = vlan_error
        for name in names:
            self._new(name, up=True)

    def _new(self, name: str, up: bool = False, **extra: Any) -> None:
        self.links[name] = Msg(index=len(self.links) + 2, ifname=name, mtu=1500, flags=int(up), **extra)

    def by_index(self, index: int) -> Msg:
        return next(link for link in self.links.values() if link["index"] == index)

    def link(self, command: str, **kwargs: Any) -> Any:
        if command == "dump":
            return list(self.links.values())
        self.calls.append(("link", command, kwargs))
        if command == "add":
            if self.vlan_error is not None:
                raise self.vlan_error
            data = {"vlan_id": kwargs["vlan_id"], "vlan_protocol": kwargs["vlan_protocol"]}
            self._new(kwargs["ifname"], link=kwargs["link"], linkinfo=Msg(kind=kwargs["kind"], data=Msg(data)))
        elif command == "set":
            link = self.by_index(kwargs["index"])
            if "mtu" in kwargs:
                link["mtu"] = kwargs["mtu"]
            if kwargs.get("state") == "up":
                link["flags"] |= 1
        return ()

    def addr(self, command: str, **kwargs: Any) -> Any:
        if command == "dump":
            return list(self.addrs)
        self.calls.append(("addr", command, kwargs))
        self.addrs.append(Msg(index=kwargs["index"], address=kwargs["address"], prefixlen=kwargs["prefixlen"]))
        return ()

    def close(self) -> None:
        pass


DC_ON_ETH2 = vxc("dc", "eth2", interfaces=[{"ipAddresses": ["192.0.2.5/30"]}])


@pytest.fixture
def proc_sys(tmp_path: Path) -> Path:
    for path, _ in GLOBAL_SYSCTLS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("0\n" if path.endswith("forward") or "forwarding" in path else "1\n")
    for name in ("eth1", "eth1.100", "eth2", "eth2.200", "eth2.200.300"):
        (tmp_path / "net/ipv4/conf" / name).mkdir(parents=True)
        (tmp_path / "net/ipv4/conf" / name / "rp_filter").write_text("2\n")
    return tmp_path


def test_qinq_requests_in_order(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth2")
    plans = plan_links(config(vxc("azure", "eth2", vlan=200, innerVlan=300,
                                  interfaces=[{"ipAddresses": ["192.168.30.1/30", "2001:db8:ff30::1/126"],
                                               "ipMtu": 9000}])))
    report = LinkApplier(ipr, proc_sys).apply(plans)
    assert (report.errors, report.waiting) == ((), ())
    assert report.created == ("eth2.200", "eth2.200.300")
    assert report.ready == ("eth2.200.300",)
    eth2, outer, inner = (ipr.links[n]["index"] for n in ("eth2", "eth2.200", "eth2.200.300"))
    assert ipr.calls == [
        ("link", "add", {"ifname": "eth2.200", "kind": "vlan", "link": eth2, "vlan_id": 200, "vlan_protocol": 0x88A8}),
        ("link", "add", {"ifname": "eth2.200.300", "kind": "vlan", "link": outer, "vlan_id": 300,
                         "vlan_protocol": 0x8100}),
        ("link", "set", {"index": eth2, "mtu": 9000}),
        ("link", "set", {"index": outer, "mtu": 9000}),
        ("link", "set", {"index": inner, "mtu": 9000}),
        ("link", "set", {"index": outer, "state": "up"}),
        ("link", "set", {"index": inner, "state": "up"}),
        ("addr", "add", {"index": inner, "address": "192.168.30.1", "prefixlen": 30}),
        ("addr", "add", {"index": inner, "address": "2001:db8:ff30::1", "prefixlen": 126, "flags": 0x02}),  # nodad
    ]
    assert report.addresses_added == 2
    values = {path: (proc_sys / path).read_text().strip() for path, _ in GLOBAL_SYSCTLS}
    assert values == dict(GLOBAL_SYSCTLS)
    for name in ("eth2", "eth2.200", "eth2.200.300"):
        assert (proc_sys / "net/ipv4/conf" / name / "rp_filter").read_text().strip() == "0"

    again = LinkApplier(ipr, proc_sys).apply(plans)
    assert ipr.calls[9:] == []  # everything is already right: no request at all
    assert (again.created, again.addresses_added, again.errors, again.ready) == ((), 0, (), ("eth2.200.300",))


def test_parents_mtu_is_raised_never_lowered(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth1")
    ipr.links["eth1"]["mtu"] = 9100
    plans = plan_links(config(vxc("aws", "eth1", vlan=100, interfaces=[{"ipAddresses": ["192.0.2.1/30"],
                                                                         "ipMtu": 1400}])))
    LinkApplier(ipr, proc_sys).apply(plans)
    sets = [kw for what, cmd, kw in ipr.calls if cmd == "set" and "mtu" in kw]
    assert sets == [{"index": ipr.links["eth1.100"]["index"], "mtu": 1400}]
    assert ipr.links["eth1"]["mtu"] == 9100


def test_missing_interface_is_waited_for(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth2")
    plans = plan_links(config(vxc("aws-vxc", "eth1", vlan=100), DC_ON_ETH2))
    report = LinkApplier(ipr, proc_sys).apply(plans)
    assert [str(p) for p in report.waiting] == ["waiting for interface eth1 (VXC aws-vxc)"]
    assert report.waiting[0].vxc == "aws-vxc"
    assert report.waiting[0].ifname == "eth1"
    assert report.ready == ("eth2",)
    assert report.errors == ()


def test_no_8021q_support_is_a_clear_error_naming_the_vxc(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth1", "eth2", vlan_error=NetlinkError(95, "Unknown device type"))
    plans = plan_links(config(vxc("aws-vxc", "eth1", vlan=100), DC_ON_ETH2))
    report = LinkApplier(ipr, proc_sys).apply(plans)
    assert [str(p) for p in report.errors] == [
        "VXC 'aws-vxc': cannot create VLAN device eth1.100: this kernel has no 802.1Q support (Unknown device type)"
    ]
    assert report.ready == ("eth2",)  # the other VXC is configured all the same


def test_other_creation_failures_say_what_was_asked(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth1", vlan_error=NetlinkError(34, "Numerical result out of range"))
    report = LinkApplier(ipr, proc_sys).apply(plan_links(config(vxc("aws-vxc", "eth1", vlan=100))))
    assert [str(p) for p in report.errors] == [
        "VXC 'aws-vxc': cannot create VLAN device eth1.100 (802.1Q VLAN 100 on eth1): Numerical result out of range"
    ]


def test_a_device_that_exists_with_other_tags_is_reported_not_touched(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth1")
    ipr._new("eth1.100", link=ipr.links["eth1"]["index"],
             linkinfo=Msg(kind="vlan", data=Msg(vlan_id=101, vlan_protocol=0x8100)))
    report = LinkApplier(ipr, proc_sys).apply(plan_links(config(vxc("aws-vxc", "eth1", vlan=100))))
    assert [str(p) for p in report.errors] == [
        "VXC 'aws-vxc': eth1.100 exists but is not 802.1Q VLAN 100 on eth1: remove or rename it"
    ]
    assert ipr.calls == []


def test_existing_addresses_are_kept(proc_sys: Path) -> None:
    ipr = FakeIPRoute("eth1")
    ipr.addrs.append(Msg(index=ipr.links["eth1"]["index"], address="192.0.2.1", prefixlen=30))
    ipr.addrs.append(Msg(index=ipr.links["eth1"]["index"], address="10.9.9.9", prefixlen=8))  # not ours: stays
    report = LinkApplier(ipr, proc_sys).apply(plan_links(config(vxc("dc", "eth1"))))
    assert report.addresses_added == 0
    assert ipr.calls == []


def test_sysctls_that_cannot_be_written_are_reported(tmp_path: Path) -> None:
    report = LinkApplier(FakeIPRoute("eth1"), tmp_path / "nowhere").apply(plan_links(config(vxc("dc", "eth1"))))
    messages = [str(p) for p in report.errors]
    assert messages[0] == f"cannot set {tmp_path}/nowhere/net/ipv4/ip_forward to 1: No such file or directory"
    assert messages[-1].endswith("(VXC 'dc')")
    assert report.ready == ("eth1",)


def test_wait_for_links_polls_until_the_deadline() -> None:
    ipr = FakeIPRoute("eth1")
    applier = LinkApplier(ipr, Path("/nonexistent"))
    assert applier.wait_for_links(["eth1"], timeout=5) == set()
    assert applier.wait_for_links(["eth1", "eth9"], timeout=0.05, interval=0.01) == {"eth9"}


class RecordingEngine(IPEngine):  # type: ignore[misc]
    """pyroute2's mock netlink socket, keeping the bytes pyroute2 sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def nl_handle(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        result: int = super().nl_handle(data)
        return result


def test_vlan_request_bytes_through_pyroute2() -> None:
    engine = RecordingEngine()
    ipr = IPRoute(use_socket=engine)
    try:
        (eth0,) = ipr.link_lookup(ifname="eth0")
        device = VlanDevice("eth0.200", "eth0", 200, "802.1ad")
        ipr.link("add", **vlan_request(device, eth0))
    finally:
        ipr.close()
    msg = ifinfmsg(engine.sent[-1])
    msg.decode()
    assert msg["header"]["type"] == 16  # RTM_NEWLINK
    assert msg["header"]["flags"] & 0x400
    assert msg["header"]["flags"] & 0x200
    assert msg.get("ifname") == "eth0.200"
    assert msg.get("link") == eth0
    assert msg.get(("linkinfo", "kind")) == "vlan"
    assert msg.get(("linkinfo", "data", "vlan_id")) == 200
    assert msg.get(("linkinfo", "data", "vlan_protocol")) == 0x88A8
