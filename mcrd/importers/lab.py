"""An imported design as a containerlab topology (the shape of containerlab/hub-spoke) that `mcrd lab up` runs as is.

mcrd is the MCR; each VXC's far end is an FRR router with the ASN, addresses and MD5 key the design gives; a host
sits behind each router that has prefixes. The prefixes a router announces come from `--prefixes FILE` (a mapping of
VXC product name or Terraform address to prefixes) or, failing that, from the design: the permit entries of the
connection's import permit list (a starting point, said so in frr.conf). Prefixes the MCR routes statically to a
router (`ipRoutes`) are placed behind it without BGP. A router with nothing is a warning: nothing is invented.
Pure: config and far ends in, file texts and warnings out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mcrd.config.model import Config, IPNetwork, PrefixFilterList, Vxc
from mcrd.importers.terraform import FarEnd

FRR_IMAGE = "frrouting/frr:v8.4.1"
HOST_IMAGE = "alpine:3.20"
MCRD_IMAGE = "mcrd:latest"
_DAEMONS = ("bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "pimd", "ldpd", "nhrpd", "eigrpd", "babeld",
            "sharpd", "pbrd", "bfdd", "fabricd", "vrrpd", "pathd")
_WHAT = {"aws": "AWS (private or transit VIF)", "aws-public": "AWS (public VIF)", "azure": "Azure ExpressRoute",
         "google": "a Google Cloud Router", "oracle": "Oracle FastConnect", "ibm": "IBM Direct Link",
         "transit": "Megaport Internet (transit)", "port": "the router on a Megaport port", "mcr": "another MCR",
         "mve": "an MVE"}


@dataclass
class _Neighbor:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    remote_as: int
    local_as: int
    password: str | None
    bfd: bool
    aws_limit: bool


@dataclass
class _Router:
    name: str
    vxc: Vxc
    far: FarEnd
    mcr_if: str
    addresses: list[str] = field(default_factory=list)  # on eth1, the link to the MCR
    neighbors: list[_Neighbor] = field(default_factory=list)
    announced: list[tuple[IPNetwork, str]] = field(default_factory=list)  # (prefix, where it comes from)
    behind: list[tuple[IPNetwork, str]] = field(default_factory=list)  # statically routed by the MCR
    host: tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface] | None = None  # (router side, host side)

    def prefixes(self) -> list[IPNetwork]:
        return [p for p, _ in self.announced + self.behind]


def node_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_").lower()[:20]
    return name or "lab"


def write_lab(config: Config, far_ends: Sequence[FarEnd], mcr_config_text: str, name: str, source: str,
              prefixes: Mapping[str, Sequence[str]] | None = None) -> tuple[dict[str, str], list[str]]:
    """The lab's files (relative path -> text) and warnings. `config` is the lab's mcrd config (`mcr_config_text`
    parsed), whose VXCs are in the order of `far_ends`."""
    warnings: list[str] = []
    given = {k: [ipaddress.ip_network(p) for p in v] for k, v in (prefixes or {}).items()}
    used_keys: set[str] = set()
    routers: list[_Router] = []
    taken = {"mcr"}
    for vxc, far in zip(config.vxcs, far_ends, strict=True):
        base = node_name(far.label)
        label, n = base, 2
        while label in taken or f"{label}-host" in taken:
            label, n = f"{base}{n}", n + 1
        taken |= {label, f"{label}-host"}
        router = _Router(label, vxc, far, vxc.interface)
        _links(config, router)
        for key in (vxc.product_name, far.address):
            if key in given:
                used_keys.add(key)
                router.announced = [(p, f"--prefixes ({key})") for p in given[key]]
                break
        else:
            router.announced = _from_permits(config, vxc, warnings, far.address)
        _behind(config, router)
        if not router.prefixes():
            warnings.append(f"{far.address}: lab: no prefixes for {label}: its router announces nothing (give them "
                            "with --prefixes FILE)")
        routers.append(router)
    for key in sorted(set(given) - used_keys):
        warnings.append(f"--prefixes: {key}: no imported VXC has this product name or address")
    _hosts(routers)
    files = {"mcr/mcrd.yaml": mcr_config_text, f"{name}.clab.yml": _topology(config, routers, name, source)}
    for r in routers:
        files[f"{r.name}/frr.conf"] = _frr_conf(config, r)
        files[f"{r.name}/daemons"] = _daemons(any(n.bfd for n in r.neighbors))
    return files, warnings


def _links(config: Config, router: _Router) -> None:
    addresses = router.addresses
    for iface in router.vxc.vrouter.interfaces:
        for conn in iface.bgp_connections:
            net = next((a.network for a in iface.ip_addresses if conn.peer_ip_address in a.network), None)
            length = net.prefixlen if net else conn.peer_ip_address.max_prefixlen
            text = f"{conn.peer_ip_address}/{length}"
            if text not in addresses:
                addresses.append(text)
            if config.shutdown(router.vxc, conn):
                continue  # no neighbor: `mcrd lab up` waits for every neighbor a router has
            router.neighbors.append(_Neighbor(
                conn.local_ip_address, config.local_asn(conn), conn.peer_asn, conn.password, conn.bfd_enabled,
                router.far.kind == "aws"))
        for route in iface.ip_routes:  # a next hop on the link is the far end's address
            if any(route.next_hop in a.network for a in iface.ip_addresses):
                length = next(a.network.prefixlen for a in iface.ip_addresses if route.next_hop in a.network)
                text = f"{route.next_hop}/{length}"
                if text not in addresses:
                    addresses.append(text)


def _from_permits(config: Config, vxc: Vxc, warnings: list[str], address: str) -> list[tuple[IPNetwork, str]]:
    out: list[tuple[IPNetwork, str]] = []
    for iface in vxc.vrouter.interfaces:
        for conn in iface.bgp_connections:
            plist = config.find_list(conn.import_whitelist)
            if plist is not None:
                out += [(p, f"import permit list {plist.description!r}") for p in _permits(plist, warnings, address)
                        if p not in [q for q, _ in out]]
    return out


def _permits(plist: PrefixFilterList, warnings: list[str], address: str) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for entry in plist.entries:
        if entry.action != "permit":
            continue
        if entry.prefix.prefixlen == 0:
            warnings.append(f"{address}: lab: {plist.description}: {entry.prefix} is not announced (a default route "
                            "is not a starting point)")
            continue
        # The entry's own prefix when it matches, else its first subnet of the shortest length it permits.
        length = entry.effective_ge
        net = entry.prefix
        first = ipaddress.ip_network(f"{net.network_address}/{length}")
        out.append(net if length == net.prefixlen else first)
    return out


def _behind(config: Config, router: _Router) -> None:
    for iface in router.vxc.vrouter.interfaces:
        for route in iface.ip_routes:
            if route.prefix not in router.prefixes():
                router.behind.append((route.prefix, f"the MCR's static route via {route.next_hop}"))


def _hosts(routers: list[_Router]) -> None:
    """A host in the first IPv4 prefix of each router that has one: a /24 at its start (the router .1, the host .10),
    or the first two addresses of a smaller prefix."""
    for r in routers:
        net = next((p for p in r.prefixes() if isinstance(p, ipaddress.IPv4Network) and p.prefixlen <= 30), None)
        if net is None:
            continue
        sub = net if net.prefixlen >= 24 else next(net.subnets(new_prefix=24))
        hosts = list(sub.hosts())
        host = hosts[9] if len(hosts) > 9 else hosts[1]
        r.host = (ipaddress.IPv4Interface(f"{hosts[0]}/{sub.prefixlen}"),
                  ipaddress.IPv4Interface(f"{host}/{sub.prefixlen}"))


def _frr_conf(config: Config, r: _Router) -> str:
    lines = [f"! {r.far.address}: {_WHAT.get(r.far.kind, r.far.kind)}, the far end of VXC {r.vxc.product_name} "
             f"(the MCR's {r.mcr_if}).",
             "! Written by `mcrd import terraform --lab`: addresses, ASNs and keys come from the design.",
             "frr version 8.4", "frr defaults traditional", f"hostname {r.name}", "log stdout informational",
             "service integrated-vtysh-config", "!", "ip forwarding", "!"]
    if r.addresses:
        lines += ["interface eth1", f" description VXC {r.vxc.product_name} to the MCR"]
        lines += [f" {'ip' if ':' not in a else 'ipv6'} address {a}" for a in r.addresses]
        lines += ["exit", "!"]
    if r.host:
        lines += ["interface eth2", " description the subnet with the host", f" ip address {r.host[0]}", "exit", "!"]
    for prefix, origin in r.announced + r.behind:  # FRR takes no comment at the end of a line
        lines += [f"! {prefix}: {origin}", f"{'ip' if prefix.version == 4 else 'ipv6'} route {prefix} blackhole"]
    if r.announced or r.behind:
        lines.append("!")
    if r.neighbors:
        asn = r.neighbors[0].local_as
        v4 = [a for a in r.addresses if ":" not in a]
        router_id = v4[0].split("/")[0] if v4 else "10.255.255.1"
        lines += [f"router bgp {asn}", f" bgp router-id {router_id}", " no bgp ebgp-requires-policy",
                  " no bgp default ipv4-unicast"]
        for n in r.neighbors:
            lines += [f" neighbor {n.address} remote-as {n.remote_as}",
                      f" neighbor {n.address} description MCR {config.mcr.product_name}",
                      f" neighbor {n.address} timers connect 5"]
            if n.local_as != asn:
                lines.append(f" neighbor {n.address} local-as {n.local_as} no-prepend replace-as")
            if n.password:
                lines.append(f" neighbor {n.address} password {n.password}")
            if n.bfd:
                lines.append(f" neighbor {n.address} bfd")
        for version, family in ((4, "ipv4"), (6, "ipv6")):
            peers = [n for n in r.neighbors if n.address.version == version]
            if not peers:
                continue
            lines.append(f" address-family {family} unicast")
            for prefix, _ in r.announced:
                if prefix.version == version:
                    lines.append(f"  network {prefix}")
            for n in peers:
                lines.append(f"  neighbor {n.address} activate")
                if n.aws_limit:  # AWS drops a private VIF's session above 100 prefixes
                    lines.append(f"  neighbor {n.address} maximum-prefix 100")
            lines.append(" exit-address-family")
        lines += ["exit", "!"]
    if any(origin.startswith("import permit list") for _, origin in r.announced):
        lines.insert(2, "! The announced prefixes are the import permit list's entries: a starting point; give the "
                        "real ones with --prefixes FILE.")
    return "\n".join(lines) + "\n"


def _daemons(bfd: bool) -> str:
    lines = ["# FRR daemons file (the frrouting/frr image reads /etc/frr/daemons; zebra and staticd always run)."]
    lines += [f"{d}={'yes' if d == 'bgpd' or (d == 'bfdd' and bfd) else 'no'}" for d in _DAEMONS]
    lines += ["", "vtysh_enable=yes", 'zebra_options="  -A 127.0.0.1 -s 90000000"', 'bgpd_options="   -A 127.0.0.1"',
              'staticd_options="-A 127.0.0.1"']
    return "\n".join(lines) + "\n"


def _topology(config: Config, routers: list[_Router], name: str, source: str) -> str:
    lines = [
        f"# Imported by `mcrd import terraform --lab` from {source}: MCR {config.mcr.product_name} "
        f"(AS {config.mcr.mcr_asn}) and a router",
        "# per VXC. Without Docker: `mcrd lab up` on this file; with containerlab: `containerlab deploy -t` it.",
        "# Each VXC is its own veth, so the VLAN tags (the VXCs' and the inner ones) are left out of mcr/mcrd.yaml.",
        f"name: {name}",
        "",
        "topology:",
        "  nodes:",
        "    mcr:",
        "      kind: linux",
        f"      image: {MCRD_IMAGE}",
        "      binds:",
        "        - mcr/mcrd.yaml:/etc/mcrd/mcrd.yaml:ro",
        "      sysctls:",
        "        net.ipv4.ip_forward: 1",
        "        net.ipv6.conf.all.forwarding: 1",
        "        net.ipv4.conf.all.rp_filter: 0",
        "        net.ipv4.conf.default.rp_filter: 0",
    ]
    links = []
    for r in routers:
        lines += [f"    {r.name}:  # {r.far.address}: {_WHAT.get(r.far.kind, r.far.kind)}", "      kind: linux",
                  f"      image: {FRR_IMAGE}", "      binds:", f"        - {r.name}/frr.conf:/etc/frr/frr.conf",
                  f"        - {r.name}/daemons:/etc/frr/daemons"]
        links.append(f'    - endpoints: ["mcr:{r.mcr_if}", "{r.name}:eth1"]')
    for r in routers:
        if r.host is None:
            continue
        gateway = r.host[0].ip
        others = [p for o in routers if o is not r for p in o.prefixes() if isinstance(p, ipaddress.IPv4Network)]
        lines += [f"    {r.name}-host:", "      kind: linux", f"      image: {HOST_IMAGE}", "      exec:",
                  f"        - ip addr add {r.host[1]} dev eth1"]
        lines += [f"        - ip route add {p} via {gateway}" for p in dict.fromkeys(others)]
        links.append(f'    - endpoints: ["{r.name}:eth2", "{r.name}-host:eth1"]')
    lines += ["", "  links:", *links]
    return "\n".join(lines) + "\n"
