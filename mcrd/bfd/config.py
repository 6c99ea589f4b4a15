"""Which BFD sessions a configuration asks for."""

from __future__ import annotations

from mcrd.bfd.manager import BfdPeerConfig
from mcrd.config.devices import layer3_ifnames
from mcrd.config.model import Config


def bfd_peers(config: Config) -> list[BfdPeerConfig]:
    """Every BGP connection with `bfdEnabled: true` that is not shut down, with its vrouter interface's `bfd` timers
    and the Linux device carrying that interface (the VLAN device when the VXC is tagged)."""
    ifnames = layer3_ifnames(config)
    peers: list[BfdPeerConfig] = []
    for v, vxc in enumerate(config.vxcs):
        for i, iface in enumerate(vxc.vrouter.interfaces):
            for conn in iface.bgp_connections:
                if not conn.bfd_enabled or config.shutdown(vxc, conn):
                    continue
                peers.append(
                    BfdPeerConfig(
                        peer=conn.peer_ip_address,
                        local=conn.local_ip_address,
                        interface=ifnames[v, i],
                        tx_interval_ms=iface.bfd.tx_interval,
                        rx_interval_ms=iface.bfd.rx_interval,
                        multiplier=iface.bfd.multiplier,
                    )
                )
    return peers
