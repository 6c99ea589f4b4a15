"""What each VXC needs on the Linux side: a pure plan from the configuration, applied by `mcrd.iface.apply`.

A VXC rides on a Linux interface (`interface`, an mcrd extension of the MCR model):

* untagged (no `vlan`, or -1): the addresses go on the interface itself;
* `vlan` V: an 802.1Q device `{interface}.{V}`;
* `vlan` V and an inner VLAN C (the VXC's `innerVlan`, or the vrouter interface's `vlan`, which wins): Q-in-Q,
  an 802.1ad device `{interface}.{V}` (S-tag) and in it an 802.1Q device `{interface}.{V}.{C}` (C-tag);
* an inner VLAN without `vlan`: the inner tag is the only tag, an 802.1Q device `{interface}.{C}`.

Linux names have at most 15 characters: a longer name keeps the tags and as much of the interface name as fits,
with 4 hex digits of a hash of the whole interface name (`enp0s31f6x.4000.4000` -> `e4713.4000.4000`), so a
name is the same on every run. The 802.1ad device of a VLAN that another VXC uses as a plain 802.1Q VLAN on the
same interface is named `{interface}s{V}` instead, as both kinds of device can use one VLAN id on one interface.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from mcrd.config.model import Config, IPInterface, VrouterInterface, Vxc

IFNAMSIZ = 15  # Linux interface names: 15 characters + NUL
ETH_P_8021Q, ETH_P_8021AD = 0x8100, 0x88A8


@dataclass(frozen=True, slots=True)
class VlanDevice:
    name: str
    link: str  # the device it rides on
    vlan_id: int
    protocol: str  # "802.1Q" or "802.1ad"

    @property
    def ethertype(self) -> int:
        return ETH_P_8021AD if self.protocol == "802.1ad" else ETH_P_8021Q

    def describe(self) -> str:
        return f"{self.protocol} VLAN {self.vlan_id} on {self.link}"


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """One layer-3 interface of a VXC: the devices to create (outer first), then MTU and addresses."""

    vxc: str
    interface: str  # the Linux interface carrying the VXC: it must exist, mcrd does not create it
    devices: tuple[VlanDevice, ...]
    ifname: str  # where the addresses go: the last device, or `interface` when untagged
    mtu: int | None  # the vrouter interface's ipMtu (None: a VXC without vrouter interface, MTU left alone)
    addresses: tuple[IPInterface, ...]

    @property
    def chain(self) -> tuple[str, ...]:
        """Every device the traffic crosses, from the carrying interface to `ifname`."""
        return (self.interface, *(d.name for d in self.devices))


def vlan_ifname(interface: str, tags: Sequence[int], mark: str = ".") -> str:
    """`{interface}{mark}{tag}[.{tag}]`, shortened to 15 characters when needed (see the module docstring)."""
    suffix = mark + ".".join(str(t) for t in tags)
    if len(interface) + len(suffix) <= IFNAMSIZ:
        return interface + suffix
    digest = hashlib.sha256(interface.encode()).hexdigest()[:4]
    return interface[: IFNAMSIZ - len(suffix) - len(digest)] + digest + suffix


def _tag(value: int | None) -> int | None:
    return None if value is None or value == -1 else value


def _devices(vxc: Vxc, inner: int | None, single_tagged: set[tuple[str, int]]) -> tuple[VlanDevice, ...]:
    outer = _tag(vxc.vlan)
    if outer is None and inner is None:
        return ()
    if outer is None or inner is None:
        tag = outer if outer is not None else inner
        assert tag is not None
        return (VlanDevice(vlan_ifname(vxc.interface, [tag]), vxc.interface, tag, "802.1Q"),)
    mark = "s" if (vxc.interface, outer) in single_tagged else "."
    s_tag = VlanDevice(vlan_ifname(vxc.interface, [outer], mark), vxc.interface, outer, "802.1ad")
    c_tag = VlanDevice(vlan_ifname(vxc.interface, [outer, inner]), s_tag.name, inner, "802.1Q")
    return s_tag, c_tag


def _inner(vxc: Vxc, iface: VrouterInterface | None) -> int | None:
    """The C-tag: the vrouter interface's `vlan`, else the VXC's `innerVlan`."""
    own = _tag(iface.vlan) if iface is not None else None
    return own if own is not None else _tag(vxc.inner_vlan)


def _layer3(vxc: Vxc) -> tuple[VrouterInterface | None, ...]:
    return vxc.vrouter.interfaces or (None,)


def plan_links(config: Config) -> list[LinkPlan]:
    """One plan per vrouter interface of every VXC (one without addresses for a VXC that has none), in order."""
    single_tagged = {
        (vxc.interface, vlan)
        for vxc in config.vxcs
        for iface in _layer3(vxc)
        if (vlan := _tag(vxc.vlan)) is not None and _inner(vxc, iface) is None
    }
    plans: list[LinkPlan] = []
    for vxc in config.vxcs:
        for iface in _layer3(vxc):
            devices = _devices(vxc, _inner(vxc, iface), single_tagged)
            plans.append(
                LinkPlan(
                    vxc=vxc.product_name,
                    interface=vxc.interface,
                    devices=devices,
                    ifname=devices[-1].name if devices else vxc.interface,
                    mtu=iface.ip_mtu if iface is not None else None,
                    addresses=iface.ip_addresses if iface is not None else (),
                )
            )
    return plans


def layer3_ifnames(config: Config) -> dict[tuple[int, int], str]:
    """The Linux device that carries each vrouter interface, by (VXC index, vrouter interface index): where its
    addresses go and what the kernel routes through it name."""
    plans = iter(plan_links(config))
    names: dict[tuple[int, int], str] = {}
    for v, vxc in enumerate(config.vxcs):
        for i, _ in enumerate(_layer3(vxc)):
            names[v, i] = next(plans).ifname
    return names


def peer_ifnames(config: Config) -> dict[str, str]:
    """The Linux device of each BGP connection's VXC, by peer address (the session's key)."""
    ifnames = layer3_ifnames(config)
    return {str(conn.peer_ip_address): ifnames[v, i]
            for v, vxc in enumerate(config.vxcs)
            for i, iface in enumerate(vxc.vrouter.interfaces)
            for conn in iface.bgp_connections}
