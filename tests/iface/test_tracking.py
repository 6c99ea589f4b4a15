"""Interface tracking, the pure part: which sessions cannot run on the links as they are."""

from __future__ import annotations

from mcrd.iface.tracking import LinkInfo, LinkSnapshot, session_faults, vxc_link_states
from tests.core.helpers import peer_config

CONFIG = peer_config([{}, {}, {"shutdown": True}])  # eth1: 10.0.1.1 <-> .2, eth2: 10.0.2.x, eth3 shut down


def up(name: str, *addresses: str) -> LinkInfo:
    return LinkInfo(name, True, True, "UP", frozenset(addresses))


def snapshot(*links: LinkInfo) -> LinkSnapshot:
    return LinkSnapshot({link.name: link for link in links})


def test_links_up_with_their_addresses_hold_nothing() -> None:
    assert session_faults(CONFIG, snapshot(up("eth1", "10.0.1.1"), up("eth2", "10.0.2.1", "fe80::1"))) == {}


def test_admin_down_no_carrier_missing_and_lost_address_each_fault_their_sessions_only() -> None:
    cases = {
        LinkInfo("eth1", False, False, "DOWN", frozenset({"10.0.1.1"})): "interface eth1 is administratively down",
        LinkInfo("eth1", True, False, "LOWERLAYERDOWN", frozenset({"10.0.1.1"})):
            "interface eth1 has no carrier (operstate LOWERLAYERDOWN)",
        LinkInfo("eth1", True, True, "DOWN", frozenset({"10.0.1.1"})):
            "interface eth1 has no carrier (operstate DOWN)",
        up("eth1"): "local address 10.0.1.1 is not on interface eth1",
        up("eth9", "10.0.1.1"): "interface eth1 does not exist",
    }
    for link, why in cases.items():
        faults = session_faults(CONFIG, snapshot(link, up("eth2", "10.0.2.1")))
        assert faults == {"10.0.1.2": f"VXC vxc1: {why}"}


def test_operstate_unknown_follows_the_carrier_flag() -> None:
    unknown = LinkInfo("eth1", True, True, "UNKNOWN", frozenset({"10.0.1.1"}))
    assert session_faults(CONFIG, snapshot(unknown, up("eth2", "10.0.2.1"))) == {}


def test_a_shut_down_connection_is_never_held() -> None:
    assert "10.0.3.2" not in session_faults(CONFIG, snapshot())
    assert set(session_faults(CONFIG, snapshot())) == {"10.0.1.2", "10.0.2.2"}


def test_vxc_link_states_name_each_device_and_its_fault() -> None:
    states = vxc_link_states(CONFIG, snapshot(up("eth1"), LinkInfo("eth2", False, False, "DOWN")))
    assert states == {
        "eth1": ("vxc1", ""),  # the address does not matter here: the device itself is up
        "eth2": ("vxc2", "interface eth2 is administratively down"),
        "eth3": ("vxc3", "interface eth3 does not exist"),
    }
