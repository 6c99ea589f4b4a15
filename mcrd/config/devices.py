"""Which Linux device carries each vrouter interface of a VXC: names derived from the configuration alone, for the
config rules (a link-local address's scope), the route processor and the looking glass (the device a route leaves
by), BFD, interface tracking, the ExaBGP config, and `mcrd.iface.plan` (the devices to create).

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the model imports the config rules, which import this module
    from mcrd.config.model import Config, VrouterInterface, Vxc

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
class Layer3:
    """One layer-3 interface of a VXC (`iface` None: a VXC without vrouter interface) and the VLAN devices that carry
    it, outer first."""

    vxc: Vxc
    iface: VrouterInterface | None
    devices: tuple[VlanDevice, ...]

    @property
    def ifname(self) -> str:
        """Where its addresses go: the last device, or the VXC's interface when untagged."""
        return self.devices[-1].name if self.devices else self.vxc.interface


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


def _vrouter_interfaces(vxc: Vxc) -> tuple[VrouterInterface | None, ...]:
    return vxc.vrouter.interfaces or (None,)


def layer3_interfaces(config: Config) -> list[Layer3]:
    """Every vrouter interface of every VXC (one without addresses for a VXC that has none), in order."""
    single_tagged = {
        (vxc.interface, vlan)
        for vxc in config.vxcs
        for iface in _vrouter_interfaces(vxc)
        if (vlan := _tag(vxc.vlan)) is not None and _inner(vxc, iface) is None
    }
    return [Layer3(vxc, iface, _devices(vxc, _inner(vxc, iface), single_tagged))
            for vxc in config.vxcs for iface in _vrouter_interfaces(vxc)]


def layer3_ifnames(config: Config) -> dict[tuple[int, int], str]:
    """The Linux device that carries each vrouter interface, by (VXC index, vrouter interface index): where its
    addresses go and what the kernel routes through it name."""
    layer3 = iter(layer3_interfaces(config))
    return {(v, i): next(layer3).ifname
            for v, vxc in enumerate(config.vxcs) for i, _ in enumerate(_vrouter_interfaces(vxc))}


def peer_ifnames(config: Config) -> dict[str, str]:
    """The Linux device of each BGP connection's VXC, by peer address (the session's key)."""
    ifnames = layer3_ifnames(config)
    return {str(conn.peer_ip_address): ifnames[v, i]
            for v, vxc in enumerate(config.vxcs)
            for i, iface in enumerate(vxc.vrouter.interfaces)
            for conn in iface.bgp_connections}
