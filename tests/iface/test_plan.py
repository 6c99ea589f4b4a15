"""plan_links: which devices each VXC needs, their names, MTU and addresses (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from mcrd.config.devices import VlanDevice, vlan_ifname
from mcrd.config.model import Config
from mcrd.iface.plan import LinkPlan, plan_links


def config(*vxcs: dict[str, Any]) -> Config:
    return Config.model_validate({"mcr": {"productName": "t", "routerId": "192.0.2.255"}, "vxcs": list(vxcs)})


def vxc(name: str, interface: str, *, interfaces: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    layer3 = interfaces if interfaces is not None else [{"ipAddresses": ["192.0.2.1/30"]}]
    return {"productName": name, "interface": interface, **fields, "vrouter": {"interfaces": layer3}}


def test_untagged_vxc_uses_the_interface_itself() -> None:
    (plan,) = plan_links(config(vxc("dc", "eth1", interfaces=[{"ipAddresses": ["192.0.2.1/30", "2001:db8::1/64"],
                                                                "ipMtu": 9000}])))
    assert plan == LinkPlan(
        vxc="dc", interface="eth1", devices=(), ifname="eth1", mtu=9000,
        addresses=(ipaddress.ip_interface("192.0.2.1/30"), ipaddress.ip_interface("2001:db8::1/64")),
    )
    (explicit,) = plan_links(config(vxc("dc", "eth1", vlan=-1)))
    assert explicit.devices == ()
    assert explicit.ifname == "eth1"


def test_vlan_gives_an_8021q_subinterface() -> None:
    (plan,) = plan_links(config(vxc("aws-vxc", "eth1", vlan=100)))
    assert plan.devices == (VlanDevice("eth1.100", "eth1", 100, "802.1Q"),)
    assert plan.ifname == "eth1.100"
    assert plan.mtu == 1500
    assert plan.chain == ("eth1", "eth1.100")
    assert plan.devices[0].ethertype == 0x8100


def test_inner_vlan_gives_qinq_8021ad_outside_8021q_inside() -> None:
    (plan,) = plan_links(config(vxc("azure", "eth2", vlan=200, innerVlan=300)))
    assert plan.devices == (
        VlanDevice("eth2.200", "eth2", 200, "802.1ad"),
        VlanDevice("eth2.200.300", "eth2.200", 300, "802.1Q"),
    )
    assert plan.ifname == "eth2.200.300"
    assert [d.ethertype for d in plan.devices] == [0x88A8, 0x8100]


def test_the_vrouter_interface_vlan_is_the_inner_tag_and_wins_over_inner_vlan() -> None:
    plans = plan_links(config(vxc("azure", "eth2", vlan=200, innerVlan=300, interfaces=[
        {"ipAddresses": ["192.168.30.1/30"], "vlan": 301},
        {"ipAddresses": ["192.168.31.1/30"]},  # falls back to the VXC's innerVlan
    ])))
    assert [p.ifname for p in plans] == ["eth2.200.301", "eth2.200.300"]
    assert {p.devices[0] for p in plans} == {VlanDevice("eth2.200", "eth2", 200, "802.1ad")}  # one S-tag device


def test_inner_vlan_without_outer_vlan_is_the_only_tag() -> None:
    (plan,) = plan_links(config(vxc("x", "eth3", interfaces=[{"ipAddresses": ["192.0.2.1/30"], "vlan": 42}])))
    assert plan.devices == (VlanDevice("eth3.42", "eth3", 42, "802.1Q"),)


def test_vxc_without_vrouter_interface_still_gets_its_device() -> None:
    (plan,) = plan_links(config(vxc("bare", "eth1", vlan=10, interfaces=[])))
    assert plan.devices == (VlanDevice("eth1.10", "eth1", 10, "802.1Q"),)
    assert plan.mtu is None
    assert plan.addresses == ()


def test_an_s_tag_that_is_also_a_plain_vlan_gets_another_name() -> None:
    plans = plan_links(config(
        vxc("plain", "eth2", vlan=200, interfaces=[{"ipAddresses": ["192.0.2.1/30"]}]),
        vxc("qinq", "eth2", vlan=200, innerVlan=300, interfaces=[{"ipAddresses": ["192.0.2.5/30"]}]),
    ))
    assert plans[0].devices == (VlanDevice("eth2.200", "eth2", 200, "802.1Q"),)
    assert plans[1].devices == (
        VlanDevice("eth2s200", "eth2", 200, "802.1ad"),
        VlanDevice("eth2.200.300", "eth2s200", 300, "802.1Q"),
    )


@pytest.mark.parametrize(("interface", "tags"), [
    ("enp0s31f6", [4093]), ("enp0s31f6", [4093, 4093]), ("enx0123456789ab", [2]), ("enx0123456789ab", [4093, 4093]),
    ("e", [4093, 4093]),
])
def test_names_fit_in_15_characters_and_keep_the_tags(interface: str, tags: list[int]) -> None:
    name = vlan_ifname(interface, tags)
    assert len(name) <= 15
    assert name.endswith("." + ".".join(map(str, tags)))
    assert name == vlan_ifname(interface, tags)  # the same on every run
    if len(interface) + len(name) - len(name.split(".", 1)[0]) <= 15:
        assert name.startswith(interface + ".")


def test_long_names_differ_when_the_interfaces_differ() -> None:
    a, b = vlan_ifname("enx0123456789ab", [4093, 4093]), vlan_ifname("enx0123456789ac", [4093, 4093])
    assert a != b
    assert len(a) == len(b) == 15
    assert vlan_ifname("eth1", [100]) == "eth1.100"
    assert vlan_ifname("enp0s31f6", [4000, 5]) == "enp01631.4000.5"


def test_the_example_hub_config() -> None:
    from pathlib import Path

    from mcrd.config.load import load_config

    path = Path(__file__).parents[2] / "config" / "aws-azure-hub.yaml"
    plans = plan_links(load_config(path))
    assert [(p.vxc, p.ifname, [d.protocol for d in p.devices]) for p in plans][:2] == [
        ("aws-hosted-vif", "eth1.100", ["802.1Q"]),
        ("azure-expressroute-primary", "eth2.200.300", ["802.1ad", "802.1Q"]),
    ]
