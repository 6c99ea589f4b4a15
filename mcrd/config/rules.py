"""The MCR config rules that span more than one field.

Each function returns problems as (path relative to the object checked, message); the model's
validators raise them together, and the loader turns each into `FILE:LINE: path: message`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from pydantic_core import PydanticCustomError

from mcrd.config.devices import layer3_ifnames

if TYPE_CHECKING:
    from mcrd.config.model import BgpConnection, Config, PrefixFilterEntry, PrefixFilterList, VrouterInterface

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

MAX_BGP_CONNECTIONS = 5  # per interface (TF vxc_schemas.go)
MAX_STATIC_ROUTES = 50  # per interface
MAX_LIST_ENTRIES = 200  # per prefix filter list

# ASNs that cannot be a local ASN. Megaport documents "2-4294967294 minus reserved values" without the
# list; these are the IANA special-purpose registrations.
_RESERVED_ASNS: tuple[tuple[int, int, str], ...] = (
    (23456, 23456, "AS_TRANS, RFC 6793"),
    (64496, 64511, "documentation, RFC 5398"),
    (65535, 65535, "last 16-bit ASN, RFC 7300"),
    (65536, 65551, "documentation, RFC 5398"),
    (65552, 131071, "IANA reserved"),
)

PROBLEMS_ERROR = "mcrd_problems"


def reserved_asn_reason(asn: int) -> str | None:
    for lo, hi, reason in _RESERVED_ASNS:
        if lo <= asn <= hi:
            return reason
    return None


def raise_problems(problems: Iterable[Problem]) -> None:
    found = tuple(problems)
    if found:
        raise PydanticCustomError(PROBLEMS_ERROR, "{count} problems", {"count": len(found), "problems": found})


def linux_ifname(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise PydanticCustomError("mcrd", "must be a Linux interface name, e.g. eth1")
    if len(value) > 15 or value in (".", "..") or any(c in value for c in "/: ") or not value.isprintable():
        raise PydanticCustomError(
            "mcrd", f"{value!r} is not a Linux interface name (1-15 printable characters, no '/', ':' or spaces)"
        )
    return value


def one_of_ints(value: object, allowed: tuple[int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise PydanticCustomError("mcrd", f"{value!r} is not one of {', '.join(map(str, allowed))}")
    return value


def host_port(value: object) -> str:
    if isinstance(value, str) and ":" in value:
        host, _, port = value.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if host and port.isdigit() and 1 <= int(port) <= 65535:
            return value
    raise PydanticCustomError("mcrd", f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8080")


def entry_problems(entry: PrefixFilterEntry) -> Iterator[Problem]:
    """`prefix length <= ge <= le <= 32 (128)`, with Terraform's defaults for an omitted ge or le."""
    ge, le = entry.effective_ge, entry.effective_le
    yield from _bound_problems("ge", ge, entry.prefix)
    yield from _bound_problems("le", le, entry.prefix)
    within = range(entry.prefix.prefixlen, entry.prefix.max_prefixlen + 1)
    if ge in within and le in within and ge > le:
        yield ("le",), f"le {le} is less than ge {ge}"


def _bound_problems(name: str, length: int, prefix: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[Problem]:
    if length < prefix.prefixlen:
        yield (name,), f"{name} {length} is shorter than the prefix length of {prefix}"
    elif length > prefix.max_prefixlen:
        yield (name,), f"{name} {length} is longer than {prefix.max_prefixlen}, the longest IPv{prefix.version} prefix"


def list_problems(plist: PrefixFilterList) -> Iterator[Problem]:
    if not plist.entries:
        yield ("entries",), "a prefix filter list needs at least one entry"
    if len(plist.entries) > MAX_LIST_ENTRIES:
        yield ("entries",), f"has {len(plist.entries)} entries, at most {MAX_LIST_ENTRIES} allowed"
    version = 4 if plist.address_family == "IPv4" else 6
    for i, entry in enumerate(plist.entries):
        if entry.prefix.version != version:
            yield ("entries", i, "prefix"), (
                f"{entry.prefix} is IPv{entry.prefix.version} in an {plist.address_family} list"
            )


def connection_problems(conn: BgpConnection) -> Iterator[Problem]:
    if conn.local_ip_address.version != conn.peer_ip_address.version:
        yield ("peerIpAddress",), (
            f"{conn.peer_ip_address} is IPv{conn.peer_ip_address.version} but the local address "
            f"{conn.local_ip_address} is IPv{conn.local_ip_address.version}"
        )
    if conn.local_ip_address == conn.peer_ip_address:
        yield ("peerIpAddress",), f"{conn.peer_ip_address} is the local address too"
    both = set(conn.permit_export_to) & set(conn.deny_export_to)
    for addr in sorted(both, key=str):
        i = conn.deny_export_to.index(addr)
        yield ("denyExportTo", i), f"{addr} is in permitExportTo too"


def interface_problems(iface: VrouterInterface) -> Iterator[Problem]:
    if len(iface.bgp_connections) > MAX_BGP_CONNECTIONS:
        yield ("bgpConnections",), (
            f"has {len(iface.bgp_connections)} BGP connections, at most {MAX_BGP_CONNECTIONS} per interface"
        )
    if len(iface.ip_routes) > MAX_STATIC_ROUTES:
        yield ("ipRoutes",), f"has {len(iface.ip_routes)} static routes, at most {MAX_STATIC_ROUTES} per interface"
    for i, count in _repeats([a.ip for a in iface.ip_addresses]):
        yield ("ipAddresses", i), f"{iface.ip_addresses[i].ip} is given {count} times"
    for i, route in enumerate(iface.ip_routes):
        if route.prefix.version != route.next_hop.version:
            yield ("ipRoutes", i, "nextHop"), f"{route.next_hop} is not IPv{route.prefix.version} like {route.prefix}"
        else:
            yield from _prefixed(("ipRoutes", i, "nextHop"), _next_hop_problems(iface, route.next_hop))
    for i, conn in enumerate(iface.bgp_connections):
        local, peer = conn.local_ip_address, conn.peer_ip_address
        owner = [a for a in iface.ip_addresses if a.ip == local]
        if not owner:
            yield ("bgpConnections", i, "localIpAddress"), (
                f"{local} is not one of this interface's ipAddresses ({_addresses(iface)})"
            )
        elif peer.version == local.version and peer != local and peer not in owner[0].network:
            # MCR sessions are single-hop: the peer sits on the interface subnet.
            yield ("bgpConnections", i, "peerIpAddress"), f"{peer} is outside the interface subnet {owner[0].network}"


def _next_hop_problems(iface: VrouterInterface, hop: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Iterator[str]:
    if any(hop == a.ip for a in iface.ip_addresses):
        yield f"{hop} is this interface's own address; the next hop must be a neighbour on its subnet"
    elif not any(hop in a.network for a in iface.ip_addresses):
        yield f"{hop} is outside the interface subnets ({_addresses(iface) or 'none configured'})"


def _addresses(iface: VrouterInterface) -> str:
    return ", ".join(str(a) for a in iface.ip_addresses)


def _prefixed(path: Path, messages: Iterable[str]) -> Iterator[Problem]:
    for message in messages:
        yield path, message


def _repeats(values: list[object]) -> Iterator[tuple[int, int]]:
    """Index of each second and later occurrence, with the total count."""
    counts = Counter(values)
    seen: set[object] = set()
    for i, value in enumerate(values):
        if value in seen:
            yield i, counts[value]
        seen.add(value)


def config_problems(cfg: Config) -> Iterator[Problem]:
    yield from _list_identity_problems(cfg)
    names = [vxc.product_name for vxc in cfg.vxcs]
    for i, count in _repeats(list(names)):
        yield ("vxcs", i, "productName"), f"{names[i]!r} names {count} VXCs"
    yield from _carrier_problems(cfg)

    peers: list[object] = []
    locals_: list[object] = []
    peer_paths: list[Path] = []
    local_paths: list[Path] = []
    ifnames = layer3_ifnames(cfg)
    for v, vxc in enumerate(cfg.vxcs):
        for n, iface in enumerate(vxc.vrouter.interfaces):
            base: Path = ("vxcs", v, "vrouter", "interfaces", n)
            for a, addr in enumerate(iface.ip_addresses):
                locals_.append(addr.ip)
                local_paths.append((*base, "ipAddresses", a))
            for r, route in enumerate(iface.ip_routes):
                yield from _scope_problems(route.next_hop, ifnames[v, n], (*base, "ipRoutes", r, "nextHop"))
            for c, conn in enumerate(iface.bgp_connections):
                path: Path = (*base, "bgpConnections", c)
                peers.append(conn.peer_ip_address)
                peer_paths.append((*path, "peerIpAddress"))
                yield from _scope_problems(conn.local_ip_address, ifnames[v, n], (*path, "localIpAddress"))
                yield from _scope_problems(conn.peer_ip_address, ifnames[v, n], (*path, "peerIpAddress"))
                yield from _connection_refs(cfg, conn, path)
    for i, count in _repeats(peers):
        why = ""
        peer = peers[i]
        if isinstance(peer, ipaddress.IPv6Address) and peer.is_link_local:
            # Link-local addresses may repeat on different links, but ExaBGP and mcrd name a session by its peer.
            why = " (on different links too: a session is named by its peer address alone)"
        yield peer_paths[i], f"{peer} is the peer of {count} BGP connections{why}"
    for i, _ in _repeats(locals_):
        yield local_paths[i], f"{locals_[i]} is already an address of another interface"
    if cfg.mcr.router_id is None and not any(isinstance(a, ipaddress.IPv4Address) for a in locals_):
        yield ("mcr", "routerId"), "no interface has an IPv4 address to take it from: set it"


def _scope_problems(address: object, ifname: str, path: Path) -> Iterator[Problem]:
    """A link-local address written with a scope (`fe80::1%eth5`) must name the interface it is used on: mcrd
    binds a link-local session, and routes a link-local next hop, through the VXC's own interface."""
    scope = getattr(address, "scope", None)
    if scope and scope != ifname:
        yield path, (f"{address}%{scope}: the scope {scope} is not this VXC's interface {ifname}; a link-local "
                     f"address here is always on {ifname}: write {address}")


def _carrier_problems(cfg: Config) -> Iterator[Problem]:
    """Two VXCs on one Linux interface need different VLAN tags (None and -1 both mean untagged)."""
    first: dict[tuple[str, int, int], str] = {}
    for i, vxc in enumerate(cfg.vxcs):
        vlan, inner = vxc.vlan or -1, vxc.inner_vlan or -1
        carrier = (vxc.interface, vlan, inner)
        if carrier in first:
            tags = "untagged" if vlan == -1 else f"VLAN {vlan}" + (f" inner VLAN {inner}" if inner != -1 else "")
            yield ("vxcs", i, "vlan"), f"{vxc.interface} {tags} already carries VXC {first[carrier]!r}"
        else:
            first[carrier] = vxc.product_name


def _list_identity_problems(cfg: Config) -> Iterator[Problem]:
    ids = [plist.id for plist in cfg.prefix_filter_lists]
    for i, count in _repeats(list(ids)):
        yield ("prefixFilterLists", i, "id"), f"{ids[i]} is the id of {count} lists"
    descriptions = [plist.description for plist in cfg.prefix_filter_lists]
    for i, count in _repeats(list(descriptions)):
        yield ("prefixFilterLists", i, "description"), f"{descriptions[i]!r} describes {count} lists"


def _connection_refs(cfg: Config, conn: BgpConnection, path: Path) -> Iterator[Problem]:
    family = f"IPv{conn.peer_ip_address.version}"
    for field in ("importWhitelist", "importBlacklist", "exportWhitelist", "exportBlacklist"):
        ref = getattr(conn, _snake(field))
        if ref is None:
            continue
        plist = cfg.find_list(ref)
        if plist is None:
            known = ", ".join(f"{p.id} ({p.description})" for p in cfg.prefix_filter_lists) or "none"
            yield (*path, field), f"no prefix filter list has id or description {ref!r} (lists: {known})"
        elif plist.address_family != family:
            yield (*path, field), (
                f"list {plist.description!r} is {plist.address_family} but this session is {family}"
            )
    all_peers = {c.peer_ip_address for _, _, c in cfg.connections()}
    for field in ("permitExportTo", "denyExportTo"):
        for i, addr in enumerate(getattr(conn, _snake(field))):
            if addr == conn.peer_ip_address:
                yield (*path, field, i), f"{addr} is this connection's own peer"
            elif addr not in all_peers:
                yield (*path, field, i), f"{addr} is not the peer address of any BGP connection"
    local_asn = cfg.local_asn(conn)
    if conn.as_override and local_asn == conn.peer_asn:
        yield (*path, "asOverride"), f"applies to eBGP only, and this session is iBGP (local AS {local_asn} = peerAsn)"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
