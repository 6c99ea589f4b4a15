"""What each VXC needs on the Linux side: a pure plan from the configuration, applied by `mcrd.iface.apply`.

The devices and their names come from `mcrd.config.devices` (the config's rules and the route processor name them
too); a plan adds the carrying interface, the MTU and the addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcrd.config.devices import VlanDevice, layer3_interfaces
from mcrd.config.model import Config, IPInterface


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


def plan_links(config: Config) -> list[LinkPlan]:
    """One plan per vrouter interface of every VXC (one without addresses for a VXC that has none), in order."""
    return [
        LinkPlan(
            vxc=layer3.vxc.product_name,
            interface=layer3.vxc.interface,
            devices=layer3.devices,
            ifname=layer3.ifname,
            mtu=layer3.iface.ip_mtu if layer3.iface is not None else None,
            addresses=layer3.iface.ip_addresses if layer3.iface is not None else (),
        )
        for layer3 in layer3_interfaces(config)
    ]
