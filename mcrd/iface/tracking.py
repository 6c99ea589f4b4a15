"""Interface tracking, the pure part: which BGP sessions cannot run on the links as they are now.

A VXC's sessions ride on its layer-3 device (the VXC's `interface`, or its VLAN device). When that device is
administratively down (no IFF_UP), has no carrier (no IFF_LOWER_UP, or an operstate that says down), is missing, or
no longer holds the session's local address, the session goes down at once, as FRR's fast-external-failover and
BIRD's interface tracking do (docs/MCR-SEMANTICS.md 2.7): the hold timer is the last resort, not the detector.

`LinkSnapshot` is what the monitor (mcrd.iface.monitor) reads from the kernel; `session_faults` compares it with the
config. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mcrd.config.devices import layer3_ifnames
from mcrd.config.model import Config

# Operstates (RFC 2863, IFLA_OPERSTATE) that carry traffic. UNKNOWN is what drivers without carrier reporting say
# (lo, tun, some virtual devices): their IFF_LOWER_UP decides.
_RUNNING_OPERSTATES = frozenset({"UP", "UNKNOWN"})


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    admin_up: bool  # IFF_UP
    lower_up: bool  # IFF_LOWER_UP (carrier)
    operstate: str  # "UP", "DOWN", "LOWERLAYERDOWN", "UNKNOWN", ...
    addresses: frozenset[str] = frozenset()  # usable addresses, without prefix length (not tentative, no DAD failure)

    def fault(self) -> str:
        """Why the link carries no traffic, or "" when it does."""
        if not self.admin_up:
            return f"interface {self.name} is administratively down"
        if not self.lower_up or self.operstate not in _RUNNING_OPERSTATES:
            return f"interface {self.name} has no carrier (operstate {self.operstate})"
        return ""


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    links: Mapping[str, LinkInfo] = field(default_factory=dict)  # by name


def session_faults(config: Config, snapshot: LinkSnapshot) -> dict[str, str]:
    """Peer address -> why its session cannot run, for every connection not shut down whose device is down, missing,
    or without the connection's local address. Sessions not listed are free to run."""
    names = layer3_ifnames(config)
    faults: dict[str, str] = {}
    for v, vxc in enumerate(config.vxcs):
        for i, iface in enumerate(vxc.vrouter.interfaces):
            ifname = names[v, i]
            link = snapshot.links.get(ifname)
            for conn in iface.bgp_connections:
                if config.shutdown(vxc, conn):
                    continue
                local = str(conn.local_ip_address)
                if link is None:
                    why = f"interface {ifname} does not exist"
                else:
                    why = link.fault()
                    if not why and local not in link.addresses:
                        why = f"local address {local} is not on interface {ifname}"
                if why:
                    faults[str(conn.peer_ip_address)] = f"VXC {vxc.product_name}: {why}"
    return faults


def vxc_link_states(config: Config, snapshot: LinkSnapshot) -> dict[str, tuple[str, str]]:
    """Layer-3 device -> (VXC name, fault or ""), for the devices of the config: what is logged and published when
    a device goes down or comes back."""
    names = layer3_ifnames(config)
    states: dict[str, tuple[str, str]] = {}
    for v, vxc in enumerate(config.vxcs):
        for i, _ in enumerate(vxc.vrouter.interfaces):
            ifname = names[v, i]
            link = snapshot.links.get(ifname)
            states[ifname] = (vxc.product_name, f"interface {ifname} does not exist" if link is None else link.fault())
    return states
