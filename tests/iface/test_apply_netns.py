"""LinkApplier against a real kernel, in a namespace of its own (root only)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from mcrd.config.model import Config
from mcrd.iface.apply import LinkApplier, LinkReport
from mcrd.iface.plan import LinkPlan, plan_links
from tests.fib.lab import NEEDS_ROOT, NO_VLAN_REASON, Lab, in_netns, ip_json, kernel_has_8021q, sh, unique, veth_lab

pytestmark = NEEDS_ROOT
has_8021q = functools.cache(kernel_has_8021q)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with veth_lab("iface", addresses=False) as lab:
        yield lab


def lab_config(*vxcs: dict[str, Any]) -> Config:
    return Config.model_validate({"mcr": {"productName": "t", "routerId": "192.0.2.255"}, "vxcs": list(vxcs)})


def apply_in(lab: Lab, plans: list[LinkPlan]) -> LinkReport:
    """Apply in a thread inside the lab namespace, with an IPRoute made (and closed) in that thread."""

    def job() -> LinkReport:
        applier = LinkApplier()
        try:
            return applier.apply(plans)
        finally:
            applier.close()

    return in_netns(lab.ns, job)


def sysctl(lab: Lab, name: str) -> str:
    return sh("ip", "netns", "exec", lab.ns, "sysctl", "-n", name).stdout.strip()


def addresses(lab: Lab, dev: str) -> set[str]:
    (link,) = ip_json(lab.ns, "addr", "show", "dev", dev)
    return {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") == "global"}


def test_untagged_vxc_mtu_up_addresses_sysctls_idempotent(lab: Lab) -> None:
    lab.ip("link", "set", lab.near, "down")
    plans = plan_links(lab_config({
        "productName": "dc", "interface": lab.near,
        "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/30", "2001:db8:a::1/64"], "ipMtu": 9000}]},
    }))
    report = apply_in(lab, plans)
    assert (report.errors, report.waiting, report.ready, report.addresses_added) == ((), (), (lab.near,), 2)
    (link,) = ip_json(lab.ns, "link", "show", "dev", lab.near)
    assert link["mtu"] == 9000
    assert "UP" in link["flags"]
    assert addresses(lab, lab.near) == {"192.0.2.1/30", "2001:db8:a::1/64"}
    assert sysctl(lab, "net.ipv4.ip_forward") == "1"
    assert sysctl(lab, "net.ipv6.conf.all.forwarding") == "1"
    for scope in ("all", "default", lab.near):
        assert sysctl(lab, f"net.ipv4.conf.{scope}.rp_filter") == "0"

    lab.ip("addr", "add", "198.51.100.1/24", "dev", lab.near)  # someone else's address: kept
    again = apply_in(lab, plans)
    assert (again.errors, again.created, again.addresses_added) == ((), (), 0)
    assert addresses(lab, lab.near) == {"192.0.2.1/30", "2001:db8:a::1/64", "198.51.100.1/24"}


def test_missing_interface_is_reported_and_awaited(lab: Lab) -> None:
    late, peer = unique("mvl"), unique("mvp")
    plans = plan_links(lab_config({"productName": "aws-vxc", "interface": late,
                                   "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/30"]}]}}))
    report = apply_in(lab, plans)
    assert [str(p) for p in report.waiting] == [f"waiting for interface {late} (VXC aws-vxc)"]

    def wait(timeout: float) -> set[str]:
        applier = LinkApplier()
        try:
            return applier.wait_for_links([late, lab.near], timeout=timeout, interval=0.02)
        finally:
            applier.close()

    try:
        assert in_netns(lab.ns, lambda: wait(0.1)) == {late}
        lab.ip("link", "add", late, "type", "veth", "peer", "name", peer)
        assert in_netns(lab.ns, lambda: wait(10)) == set()
        assert apply_in(lab, plans).ready == (late,)
    finally:
        lab.ip("link", "del", late, check=False)


def test_vlan_creation_without_8021q_is_a_clear_error(lab: Lab) -> None:
    if has_8021q():
        pytest.skip("this kernel has 802.1Q VLAN support: the missing-support message is checked where it lacks it")
    plans = plan_links(lab_config({"productName": "aws-vxc", "interface": lab.near, "vlan": 100,
                                   "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/30"]}]}}))
    report = apply_in(lab, plans)
    assert [str(p) for p in report.errors] == [
        f"VXC 'aws-vxc': cannot create VLAN device {lab.near}.100: this kernel has no 802.1Q support "
        "(Unknown device type)"
    ]


def test_vlan_and_qinq_devices(lab: Lab) -> None:
    if not has_8021q():
        pytest.skip(NO_VLAN_REASON)
    plans = plan_links(lab_config(
        {"productName": "aws", "interface": lab.near, "vlan": 100,
         "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.1/30"], "ipMtu": 1400}]}},
        {"productName": "azure", "interface": lab.near, "vlan": 200, "innerVlan": 300,
         "vrouter": {"interfaces": [{"ipAddresses": ["192.0.2.5/30", "2001:db8:b::1/64"]}]}},
    ))
    report = apply_in(lab, plans)
    assert report.errors == ()
    assert set(report.created) == {p.ifname for p in plans} | {plans[1].devices[0].name}
    for plan in plans:
        for device in plan.devices:
            (link,) = ip_json(lab.ns, "-d", "link", "show", "dev", device.name)
            info = link["linkinfo"]["info_data"]
            assert (info["protocol"], info["id"], link["link"]) == (device.protocol, device.vlan_id, device.link)
            assert "UP" in link["flags"]
    assert addresses(lab, plans[0].ifname) == {"192.0.2.1/30"}
    assert addresses(lab, plans[1].ifname) == {"192.0.2.5/30", "2001:db8:b::1/64"}
    assert ip_json(lab.ns, "link", "show", "dev", plans[0].ifname)[0]["mtu"] == 1400
    again = apply_in(lab, plans)
    assert (again.errors, again.created, again.addresses_added) == ((), (), 0)
