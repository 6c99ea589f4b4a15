"""Rules for changing a running config (docs/MCR-SEMANTICS.md 2.6), checked before a reload is applied."""

from __future__ import annotations

from collections.abc import Iterator

from mcrd.config.model import BgpConnection, Config
from mcrd.config.rules import Path, Problem


def change_problems(running: Config, new: Config) -> Iterator[Problem]:
    """What makes `new` unacceptable as a replacement for `running` (each config is valid on its own)."""
    if running.mcr.mcr_asn != new.mcr.mcr_asn and running.vxcs and new.vxcs:
        yield ("mcr", "mcrAsn"), (
            f"cannot change from {running.mcr.mcr_asn} to {new.mcr.mcr_asn} while VXCs are attached"
        )
    before = {conn.peer_ip_address: running.local_asn(conn) == conn.peer_asn for _, _, conn in running.connections()}
    for path, conn in _connection_paths(new):
        was_ibgp = before.get(conn.peer_ip_address)
        is_ibgp = new.local_asn(conn) == conn.peer_asn
        if was_ibgp is not None and was_ibgp != is_ibgp:
            change = "iBGP into eBGP" if was_ibgp else "eBGP into iBGP"
            yield (*path, "localAsn"), (
                f"would turn the session with {conn.peer_ip_address} from {change}: delete the connection and "
                "add it again"
            )


def _connection_paths(config: Config) -> Iterator[tuple[Path, BgpConnection]]:
    for v, vxc in enumerate(config.vxcs):
        for i, iface in enumerate(vxc.vrouter.interfaces):
            for c, conn in enumerate(iface.bgp_connections):
                yield ("vxcs", v, "vrouter", "interfaces", i, "bgpConnections", c), conn
