"""Each BGP connection's settings, compiled once per config for the route processor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mcrd.config.model import BgpConnection, Config, PrefixFilterList, Vxc
from mcrd.policy.prefix_list import CompiledPrefixList

PeerType = Literal["NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"]


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """One BGP connection. `key` is the peer address, unique on an MCR, and names the session everywhere."""

    key: str
    vxc: str
    family: int
    local_ip: str
    peer_asn: int
    local_asn: int
    peer_type: PeerType
    shutdown: bool
    description: str
    med_in: int | None
    med_out: int | None
    prepend: int
    as_override: bool
    export_policy: Literal["permit", "deny"]
    permit_export_to: frozenset[str]
    deny_export_to: frozenset[str]
    import_whitelist: CompiledPrefixList | None
    import_blacklist: CompiledPrefixList | None
    export_whitelist: CompiledPrefixList | None
    export_blacklist: CompiledPrefixList | None

    @property
    def ibgp(self) -> bool:
        return self.local_asn == self.peer_asn

    def import_signature(self) -> tuple[object, ...]:
        """What import policy depends on: a change re-evaluates the stored routes of this peer."""
        return (self.family, self.local_asn, self.med_in, _list_key(self.import_whitelist),
                _list_key(self.import_blacklist))

    def export_signature(self) -> tuple[object, ...]:
        """What this peer's Adj-RIB-Out depends on, besides the other peers' export controls."""
        return (self.family, self.local_ip, self.local_asn, self.peer_asn, self.peer_type, self.med_out,
                self.prepend, self.as_override, _list_key(self.export_whitelist), _list_key(self.export_blacklist))


def _list_key(plist: CompiledPrefixList | None) -> object:
    return None if plist is None else plist.source


def compile_peers(config: Config) -> tuple[PeerPolicy, ...]:
    compiled: dict[int, CompiledPrefixList] = {}

    def lookup(ref: int | str | None) -> CompiledPrefixList | None:
        plist: PrefixFilterList | None = config.find_list(ref)
        if plist is None:
            return None
        if plist.id not in compiled:
            compiled[plist.id] = CompiledPrefixList(plist)
        return compiled[plist.id]

    return tuple(
        _peer(config, vxc, conn, lookup)
        for vxc in config.vxcs
        for iface in vxc.vrouter.interfaces
        for conn in iface.bgp_connections
    )


def _peer(
    config: Config,
    vxc: Vxc,
    conn: BgpConnection,
    lookup: Callable[[int | str | None], CompiledPrefixList | None],
) -> PeerPolicy:
    return PeerPolicy(
        key=str(conn.peer_ip_address),
        vxc=vxc.product_name,
        family=conn.peer_ip_address.version,
        local_ip=str(conn.local_ip_address),
        peer_asn=conn.peer_asn,
        local_asn=config.local_asn(conn),
        peer_type=conn.peer_type,
        shutdown=config.shutdown(vxc, conn),
        description=conn.description,
        med_in=conn.med_in,
        med_out=conn.med_out,
        prepend=conn.as_path_prepend_count,
        as_override=conn.as_override,
        export_policy=conn.export_policy,
        permit_export_to=frozenset(map(str, conn.permit_export_to)),
        deny_export_to=frozenset(map(str, conn.deny_export_to)),
        import_whitelist=lookup(conn.import_whitelist),
        import_blacklist=lookup(conn.import_blacklist),
        export_whitelist=lookup(conn.export_whitelist),
        export_blacklist=lookup(conn.export_blacklist),
    )
