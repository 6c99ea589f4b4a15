"""`terraform show -json` of a Megaport design -> an mcrd config for one MCR (pure: JSON in, YAML and warnings out).

Reads a state (`values`) or a saved plan (`planned_values`; references whose values are unknown until apply, such as
a new MCR's `product_uid`, are followed through `configuration`), root module and child modules, with the field
names of the megaport provider (`docs/resources/{mcr,vxc,mcr_prefix_filter_list}.md`):

* `megaport_mcr`: `product_name`, `asn`, `port_speed`, inline `prefix_filter_lists` (and the older single
  `prefix_filter_list`);
* `megaport_mcr_prefix_filter_list` whose `mcr_id` is the MCR;
* `megaport_vxc` with an end on the MCR (`requested_product_uid`/`current_product_uid`): its VLANs, and the MCR end's
  `vrouter_config` (or the deprecated `partner_a_end_config`) interfaces and BGP connections, every field;
* a cloud partner config on the far end becomes what Megaport configures on the MCR for it (docs/MCR-SEMANTICS.md
  section 4): AWS private/transit VIF to `amazon_asn` or 64512, public VIF to 7224; Azure peerings to 12076 on the
  peering's /30 (the MCR takes the first usable address, Microsoft the second); Google to 16550; Oracle to 31898;
  IBM to 13884; each with the peer type it implies.

What mcrd cannot carry (MVE, NAT gateway, IPsec, transit, addresses a cloud assigns at apply) is a warning that names
the Terraform address and the field. Every object in the output carries a comment naming its Terraform address.
"""

from __future__ import annotations

import copy
import io
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mcrd.config.model import DEFAULT_MCR_ASN

# What Megaport configures on the MCR for each cloud (docs/MCR-SEMANTICS.md section 4; DOC and TF-old).
AWS_DEFAULT_ASN = 64512  # Amazon's default ASN on a private or transit VIF
AWS_PUBLIC_ASN = 7224
AZURE_ASN = 12076
GOOGLE_ASN = 16550
ORACLE_ASN = 31898
IBM_ASN = 13884
# Decision: where a cloud assigns the link addresses at apply, the import uses 169.254.<200 + n>.0/<len> and says so.
PLACEHOLDER_BASE = 200

_BGP_FIELDS = {
    "peer_asn": "peerAsn", "local_asn": "localAsn", "local_ip_address": "localIpAddress",
    "peer_ip_address": "peerIpAddress", "password": "password", "shutdown": "shutdown", "description": "description",
    "med_in": "medIn", "med_out": "medOut", "bfd_enabled": "bfdEnabled", "export_policy": "exportPolicy",
    "permit_export_to": "permitExportTo", "deny_export_to": "denyExportTo", "import_whitelist": "importWhitelist",
    "import_blacklist": "importBlacklist", "export_whitelist": "exportWhitelist",
    "export_blacklist": "exportBlacklist", "as_path_prepend_count": "asPathPrependCount", "peer_type": "peerType",
    "as_override": "asOverride",
}
_SNAKE = {camel: snake for snake, camel in _BGP_FIELDS.items()}
_LIST_REFS = ("importWhitelist", "importBlacklist", "exportWhitelist", "exportBlacklist")
_IFACE_FIELDS = {"ip_addresses": "ipAddresses", "nat_ip_addresses": "natIpAddresses", "vlan": "vlan",
                 "ip_mtu": "ipMtu", "description": "description"}
_IFACE_HANDLED = {*_IFACE_FIELDS, "ip_routes", "bfd", "bgp_connections", "interface_type", "ip_sec_tunnel_options",
                  "packet_filter_in", "packet_filter_out"}
_BFD_FIELDS = {"tx_interval": "txInterval", "rx_interval": "rxInterval", "multiplier": "multiplier"}
# Resource types mcrd does not emulate: listed as warnings when the design holds them.
_NOT_CARRIED = {
    "megaport_mve": "an MVE (a vendor's virtual appliance) is not emulated",
    "megaport_nat_gateway": "a NAT gateway is not emulated",
    "megaport_nat_gateway_packet_filter": "a NAT gateway is not emulated",
    "megaport_nat_gateway_prefix_list": "a NAT gateway is not emulated",
    "megaport_mcr_ipsec_addon": "the IPsec add-on is not emulated (mcrd has no IPsec tunnels)",
    "megaport_ix": "an Internet Exchange connection is not emulated",
}


class TerraformImportError(Exception):
    """The file cannot be imported: not Terraform JSON, no MCR, or an MCR that cannot be chosen."""


@dataclass(frozen=True)
class Resource:
    address: str  # the instance address, e.g. module.net.megaport_vxc.aws["a"]
    config_address: str  # without instance keys: module.net.megaport_vxc.aws
    type: str
    values: dict[str, Any]

    @property
    def module_path(self) -> tuple[str, ...]:
        return tuple(re.findall(r"module\.([^.]+)\.", self.config_address))

    @property
    def local_address(self) -> str:
        return re.sub(r"^(module\.[^.]+\.)+", "", self.config_address)


@dataclass(frozen=True)
class FarEnd:
    """What a lab needs to play the far end of one imported VXC."""

    address: str  # the VXC's Terraform address
    kind: str  # aws, aws-public, azure, google, oracle, ibm, transit, port, mcr, mve
    label: str  # a short name for the far end's router (aws, azure, dc, ...)


@dataclass
class Imported:
    source: str
    mcr_address: str
    document: dict[str, Any]
    far_ends: list[FarEnd]
    warnings: list[str] = field(default_factory=list)
    plan: bool = False

    def text(self, *, lab: bool = False) -> str:
        """The config as YAML with a comment per object; `lab`: without the VXCs' VLAN tags (one veth per VXC)."""
        doc = copy.deepcopy(self.document)
        if lab:
            # Each VXC is its own veth in the lab, and its interfaces' subnets tell them apart: no VLAN device is
            # needed (and some kernels have none).
            for vxc in doc.get("vxcs", []):
                dropped = [key for key in ("vlan", "innerVlan") if vxc.pop(key, None) is not None]
                for iface in vxc.get("vrouter", {}).get("interfaces", []):
                    if iface.pop("vlan", None) is not None and "inner VLANs" not in dropped:
                        dropped.append("inner VLANs")
                if dropped:
                    vxc["#"] += f" ({', '.join(dropped)} left out: in the lab each VXC is its own veth)"
        kind = "plan" if self.plan else "state"
        header = (
            f"Imported by `mcrd import terraform` from {self.source} (a {kind}): {self.mcr_address}.\n"
            "Each object's comment names the Terraform address it came from. `interface` is mcrd's: the Linux\n"
            "interface that carries the VXC."
        )
        return render(doc, header)


# --- entry point ----------------------------------------------------------------------------------------------------


def parse_json(text: str, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TerraformImportError(f"{source}: not JSON ({exc}); give the output of `terraform show -json`") from None
    # An empty state is only {"format_version": ...}: Terraform JSON, with no MCR (said later, by the import).
    if not isinstance(doc, dict) or "format_version" not in doc or not (
        isinstance(doc.get("values", {}), dict) and isinstance(doc.get("planned_values", {}), dict)
    ):
        raise TerraformImportError(
            f"{source}: not Terraform JSON: `terraform show -json` prints an object with format_version and values "
            "(a state) or planned_values (a plan)"
        )
    return doc


def import_terraform(doc: dict[str, Any], mcr: str | None = None, source: str = "<terraform>") -> Imported:
    """Import the MCR `mcr` (a Terraform address or product name; None: the only one) from `terraform show -json`."""
    return _Importer(doc, source).run(mcr)


# --- reading Terraform's JSON ----------------------------------------------------------------------------------------


def _strip_keys(address: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", address)


def resources(doc: dict[str, Any]) -> list[Resource]:
    """Every managed resource of every module, in file order."""
    values = doc.get("values") if isinstance(doc.get("values"), dict) else doc.get("planned_values")
    out: list[Resource] = []

    def walk(module: Any) -> None:
        if not isinstance(module, dict):
            return
        for res in module.get("resources") or []:
            if not isinstance(res, dict) or not isinstance(res.get("address"), str):
                continue
            if res.get("mode", "managed") == "managed":
                vals = _dict(res.get("values"))
                out.append(Resource(res["address"], _strip_keys(res["address"]), str(res.get("type", "")), vals))
        for child in module.get("child_modules") or []:
            walk(child)

    walk((values or {}).get("root_module"))
    return out


def _collect_refs(expr: Any) -> Iterator[str]:
    if isinstance(expr, dict):
        refs = expr.get("references")
        if isinstance(refs, list):
            yield from (r for r in refs if isinstance(r, str))
        for key, value in expr.items():
            if key != "references":
                yield from _collect_refs(value)
    elif isinstance(expr, list):
        for item in expr:
            yield from _collect_refs(item)


class _Configuration:
    """The plan's `configuration`: which resources an attribute's expression refers to, through variables and
    module outputs."""

    def __init__(self, doc: dict[str, Any]) -> None:
        conf = doc.get("configuration")
        self.root = conf.get("root_module") if isinstance(conf, dict) else None

    def _module(self, path: tuple[str, ...]) -> dict[str, Any] | None:
        module = self.root
        for name in path:
            if not isinstance(module, dict):
                return None
            call = (module.get("module_calls") or {}).get(name)
            module = call.get("module") if isinstance(call, dict) else None
        return module if isinstance(module, dict) else None

    def refs(self, res: Resource, attribute: str) -> set[str]:
        """Config addresses of the resources that `attribute` of `res` refers to (empty without configuration)."""
        module = self._module(res.module_path)
        if module is None:
            return set()
        for conf in module.get("resources") or []:
            if isinstance(conf, dict) and conf.get("address") == res.local_address:
                expr = (conf.get("expressions") or {}).get(attribute)
                return self._resolve(res.module_path, list(_collect_refs(expr)), 0)
        return set()

    def _resolve(self, path: tuple[str, ...], refs: list[str], depth: int) -> set[str]:
        out: set[str] = set()
        if depth > 20:  # a reference cycle cannot pass terraform validate; guard anyway
            return out
        prefix = "".join(f"module.{m}." for m in path)
        for ref in refs:
            parts = _strip_keys(ref).split(".")
            if parts[0] == "var" and len(parts) > 1 and path:
                parent = self._module(path[:-1]) or {}
                call = (parent.get("module_calls") or {}).get(path[-1]) or {}
                expr = (call.get("expressions") or {}).get(parts[1])
                out |= self._resolve(path[:-1], list(_collect_refs(expr)), depth + 1)
            elif parts[0] == "module" and len(parts) > 2:
                child = self._module((*path, parts[1])) or {}
                expr = ((child.get("outputs") or {}).get(parts[2]) or {}).get("expression")
                out |= self._resolve((*path, parts[1]), list(_collect_refs(expr)), depth + 1)
            elif parts[0] == "data" and len(parts) > 2:
                out.add(prefix + ".".join(parts[:3]))
            elif len(parts) > 1 and parts[0] not in ("var", "local", "each", "count", "path", "terraform", "self"):
                out.add(prefix + ".".join(parts[:2]))
        return out


# --- the import ------------------------------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _Importer:
    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.doc = doc
        self.source = source
        self.plan = "planned_values" in doc
        self.resources = resources(doc)
        self.conf = _Configuration(doc)
        self.warnings: list[str] = []
        self.placeholders = 0

    def warn(self, address: str, fld: str, message: str) -> None:
        self.warnings.append(f"{address}: {fld}: {message}")

    # -- choosing the MCR ----------------------------------------------------------------------------------------

    def choose(self, wanted: str | None) -> Resource:
        mcrs = [r for r in self.resources if r.type == "megaport_mcr"]
        if not mcrs:
            types = sorted({r.type for r in self.resources})
            held = f"it holds {', '.join(types)}" if types else "it holds no managed resource"
            raise TerraformImportError(f"{self.source}: no MCR (no megaport_mcr resource): {held}")
        names = ", ".join(f"{r.address} ({r.values.get('product_name', '?')})" for r in mcrs)
        if wanted is None:
            if len(mcrs) > 1:
                raise TerraformImportError(
                    f"{self.source}: {len(mcrs)} MCRs: {names}; choose one with --mcr ADDRESS"
                )
            return mcrs[0]
        for match in (
            [r for r in mcrs if r.address == wanted],
            [r for r in mcrs if r.config_address == wanted],
            [r for r in mcrs if r.values.get("product_name") == wanted],
        ):
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                raise TerraformImportError(f"{self.source}: --mcr {wanted} matches several MCRs: {names}")
        raise TerraformImportError(f"{self.source}: no MCR {wanted!r}; the MCRs are: {names}")

    def _points_at(self, res: Resource, attribute: str, uid_values: list[Any], target: Resource) -> bool:
        uid = target.values.get("product_uid")
        uids = [u for u in uid_values if _present(u)]
        if _present(uid) and uid in uids:
            return True
        if uids and _present(uid):
            return False
        return target.config_address in self.conf.refs(res, attribute)

    # -- the config ----------------------------------------------------------------------------------------------

    def run(self, wanted: str | None) -> Imported:
        mcr = self.choose(wanted)
        for res in self.resources:
            if res.type in _NOT_CARRIED:
                self.warn(res.address, res.type, f"not carried: {_NOT_CARRIED[res.type]}")
        v = mcr.values
        doc: dict[str, Any] = {}
        asn = v.get("asn")
        mcr_doc: dict[str, Any] = {"#": mcr.address, "productName": v.get("product_name") or "mcr"}
        mcr_doc["mcrAsn"] = asn if _present(asn) else DEFAULT_MCR_ASN
        if not _present(asn):
            mcr_doc["#"] += f" (asn unset: Megaport's default {DEFAULT_MCR_ASN})"
        if _present(v.get("port_speed")):
            mcr_doc["portSpeed"] = v["port_speed"]
        doc["mcr"] = mcr_doc
        self.mcr_asn = mcr_doc["mcrAsn"]
        lists = self.prefix_lists(mcr)
        if lists:
            doc["prefixFilterLists"] = lists
        vxcs: list[dict[str, Any]] = []
        far_ends: list[FarEnd] = []
        for res in self.resources:
            if res.type != "megaport_vxc":
                continue
            end = self.mcr_end(res, mcr)
            if end is None:
                continue
            vxc, far = self.vxc(res, end, len(vxcs) + 1)
            vxcs.append(vxc)
            far_ends.append(far)
        if vxcs:
            doc["vxcs"] = vxcs
        self.resolve_list_refs(doc)
        return Imported(self.source, mcr.address, doc, far_ends, self.warnings, self.plan)

    def mcr_end(self, vxc: Resource, mcr: Resource) -> str | None:
        for end in ("a_end", "b_end"):
            e = _dict(vxc.values.get(end))
            if self._points_at(vxc, end, [e.get("requested_product_uid"), e.get("current_product_uid")], mcr):
                return end
        return None

    # -- prefix filter lists -------------------------------------------------------------------------------------

    def prefix_lists(self, mcr: Resource) -> list[dict[str, Any]]:
        found: list[tuple[str, dict[str, Any]]] = []
        inline = _list(mcr.values.get("prefix_filter_lists"))
        found += [(f"{mcr.address}: prefix_filter_lists[{i}]", _dict(pl)) for i, pl in enumerate(inline)]
        if isinstance(mcr.values.get("prefix_filter_list"), dict):  # the provider's older, single-list attribute
            found.append((f"{mcr.address}: prefix_filter_list", mcr.values["prefix_filter_list"]))
        for res in self.resources:
            if res.type == "megaport_mcr_prefix_filter_list" and self._points_at(
                res, "mcr_id", [res.values.get("mcr_id")], mcr
            ):
                found.append((res.address, res.values))
        used = {pl["id"] for _, pl in found if isinstance(pl.get("id"), int)}
        next_id = max(used, default=0) + 1
        out = []
        for where, pl in found:
            comment = where
            list_id = pl.get("id")
            if not isinstance(list_id, int):
                list_id, next_id = next_id, next_id + 1
                comment += " (id assigned by the import: the API assigns it at apply)"
            entries = []
            for entry in _list(pl.get("entries")):
                e = _dict(entry)
                item = {"action": e.get("action"), "prefix": e.get("prefix")}
                item.update({k: e[k] for k in ("ge", "le") if _present(e.get(k))})
                entries.append(item)
            out.append({"#": comment, "id": list_id, "description": pl.get("description"),
                        "addressFamily": pl.get("address_family"), "entries": entries})
        return out

    def resolve_list_refs(self, doc: dict[str, Any]) -> None:
        """Terraform names a list by description (older provider versions by id): keep the reference as written
        when a list has that description, as the id when a list has that id, else drop it with a warning."""
        lists = doc.get("prefixFilterLists", [])
        descriptions = {pl["description"] for pl in lists}
        ids = {pl["id"] for pl in lists}
        for vxc in doc.get("vxcs", []):
            for iface in vxc.get("vrouter", {}).get("interfaces", []):
                for conn in iface.get("bgpConnections", []):
                    for key in _LIST_REFS:
                        ref = conn.get(key)
                        if ref is None or ref in descriptions:
                            continue
                        if isinstance(ref, str) and ref.strip().isdigit() and int(ref) in ids:
                            conn[key] = int(ref)
                        elif isinstance(ref, int) and ref in ids:
                            continue
                        else:
                            del conn[key]
                            address, _, where = conn["#"].partition(": ")
                            self.warn(address, f"{where.split(' (')[0]}.{_SNAKE[key]}",
                                      f"no prefix filter list {ref!r} on this MCR: left out (the connection then "
                                      "has no such filter)")

    # -- VXCs ----------------------------------------------------------------------------------------------------

    def vxc(self, res: Resource, end: str, n: int) -> tuple[dict[str, Any], FarEnd]:
        v = res.values
        other = "b_end" if end == "a_end" else "a_end"
        mine = _dict(v.get(end))
        out: dict[str, Any] = {"#": f"{res.address} ({end} is the MCR)",
                               "productName": v.get("product_name") or res.address, "interface": f"eth{n}"}
        vlan = mine.get("vlan") if _present(mine.get("vlan")) else mine.get("ordered_vlan")
        if vlan == 0 or (vlan is None and self.plan):
            self.warn(res.address, f"{end}.ordered_vlan", "Megaport assigns the VLAN at apply: imported untagged")
        elif vlan is not None:
            out["vlan"] = vlan
        if _present(mine.get("inner_vlan")) and mine["inner_vlan"] != 0:
            out["innerVlan"] = mine["inner_vlan"]
        if _present(v.get("rate_limit")):
            out["rateLimit"] = v["rate_limit"]
        if v.get("shutdown") is True:
            out["shutdown"] = True
        own = _dict(v.get(f"{end}_partner_config"))
        far = _dict(v.get(f"{other}_partner_config"))
        kind, label = self.far_kind(res, other, far)
        vrouter = _dict(own.get("vrouter_config")) or _dict(own.get("partner_a_end_config"))
        where = f"{end}_partner_config." + ("vrouter_config" if own.get("vrouter_config") else "partner_a_end_config")
        if own and own.get("partner") not in (None, "vrouter", "a-end"):
            self.warn(res.address, f"{end}_partner_config.partner",
                      f"{own.get('partner')!r} on the MCR's end is not a vrouter config: not carried")
        interfaces: list[dict[str, Any]] = []
        if vrouter:
            for i, iface in enumerate(_list(vrouter.get("interfaces"))):
                item = self.interface(res.address, f"{where}.interfaces[{i}]", _dict(iface), kind)
                if item is not None:
                    interfaces.append(item)
        elif far.get("partner") not in (None, "vrouter", "a-end", "transit"):
            interfaces = self.cloud(res, other, far)
        else:
            note = " (the far end is a transit connection: mcrd does not emulate it)" if kind == "transit" else ""
            self.warn(res.address, f"{end}_partner_config",
                      f"no vrouter_config on the MCR's end: the VXC is imported without an interface{note}")
        if kind == "transit" and vrouter:
            self.warn(res.address, f"{other}_partner_config.partner",
                      "transit (Megaport Internet) is not emulated: the lab plays it with a router")
        if kind == "mve":
            self.warn(res.address, f"{other}.requested_product_uid",
                      "the far end is an MVE: not emulated, the lab plays it with a router")
        if interfaces:
            out["vrouter"] = {"interfaces": interfaces}
        return out, FarEnd(res.address, kind, label)

    def far_kind(self, res: Resource, other: str, far: dict[str, Any]) -> tuple[str, str]:
        partner = far.get("partner")
        if partner == "aws":
            aws = _dict(far.get("aws_config"))
            return ("aws-public" if aws.get("type") == "public" else "aws"), "aws"
        if partner in ("azure", "google", "oracle", "ibm", "transit"):
            return str(partner), str(partner)
        e = _dict(res.values.get(other))
        for target in self.resources:
            if target.type in ("megaport_mcr", "megaport_mve", "megaport_port", "megaport_lag_port") and \
                    self._points_at(res, other, [e.get("requested_product_uid"), e.get("current_product_uid")],
                                    target):
                kind = {"megaport_mcr": "mcr", "megaport_mve": "mve"}.get(target.type, "port")
                return kind, _name(res)
        return "port", _name(res)

    def interface(self, address: str, where: str, iface: dict[str, Any], kind: str) -> dict[str, Any] | None:
        if iface.get("interface_type") == "ipSecTunnel" or _present(iface.get("ip_sec_tunnel_options")):
            self.warn(address, f"{where}.ip_sec_tunnel_options", "an IPsec tunnel interface is not emulated: left out")
            return None
        for key in ("packet_filter_in", "packet_filter_out"):
            if _present(iface.get(key)):
                self.warn(address, f"{where}.{key}", "NAT gateway packet filters are not emulated: left out")
        for key in sorted(set(iface) - _IFACE_HANDLED):
            if _present(iface.get(key)):
                self.warn(address, f"{where}.{key}", "not an MCR interface field mcrd knows: left out")
        out: dict[str, Any] = {"#": f"{address}: {where}"}
        for tf, name in _IFACE_FIELDS.items():
            if _present(iface.get(tf)):
                out[name] = iface[tf]
        routes = [
            {k2: r[k1] for k1, k2 in (("prefix", "prefix"), ("next_hop", "nextHop"), ("description", "description"))
             if _present(r.get(k1))}
            for r in map(_dict, _list(iface.get("ip_routes")))
        ]
        if routes:
            out["ipRoutes"] = routes
        bfd = {name: _dict(iface.get("bfd"))[tf] for tf, name in _BFD_FIELDS.items()
               if _present(_dict(iface.get("bfd")).get(tf))}
        if bfd:
            out["bfd"] = bfd
        conns = []
        for j, conn in enumerate(_list(iface.get("bgp_connections"))):
            c = _dict(conn)
            item: dict[str, Any] = {"#": f"{address}: {where}.bgp_connections[{j}]"}
            item.update({name: c[tf] for tf, name in _BGP_FIELDS.items() if _present(c.get(tf))})
            for key in sorted(set(c) - set(_BGP_FIELDS)):
                if _present(c.get(key)):
                    self.warn(address, f"{where}.bgp_connections[{j}].{key}", "not a BGP connection field mcrd "
                              "knows: left out")
            if "peerType" not in item:
                item["peerType"] = _peer_type(kind)
                item["#"] += f" (peer_type unset: {item['peerType']}, the default when the far end is {kind})"
            conns.append(item)
        if conns:
            out["bgpConnections"] = conns
        return out

    # -- cloud partner configs: what Megaport configures on the MCR ------------------------------------------------

    def placeholder(self, address: str, fld: str, length: int, cloud: str) -> ipaddress.IPv4Network:
        net = ipaddress.IPv4Network(f"169.254.{PLACEHOLDER_BASE + self.placeholders}.0/{length}")
        self.placeholders += 1
        self.warn(address, fld, f"not in the design ({cloud} assigns it at apply): the import uses {net}")
        return net

    def cloud(self, res: Resource, other: str, far: dict[str, Any]) -> list[dict[str, Any]]:
        partner = far["partner"]
        where = f"{other}_partner_config.{partner}_config"
        conf = _dict(far.get(f"{partner}_config"))
        if partner == "aws":
            return self.aws(res.address, where, conf)
        if partner == "azure":
            return self.azure(res.address, where, conf)
        if partner == "google":
            net = self.placeholder(res.address, f"{where} (link addresses)", 29, "Google")
            hosts = list(net.hosts())
            # Partner Interconnect: the Cloud Router takes the first address of the /29, the customer side the second.
            return [_cloud_iface(res.address, where, f"{hosts[1]}/29", hosts[0], GOOGLE_ASN, "PRIV_CLOUD",
                                 "Google Partner Interconnect, Cloud Router AS 16550")]
        if partner == "oracle":
            self.warn(res.address, f"{where}.virtual_circuit_id",
                      "the BGP addresses and key are set on the OCI virtual circuit, not in this design")
            net = self.placeholder(res.address, f"{where} (link addresses)", 30, "Oracle")
            hosts = list(net.hosts())
            return [_cloud_iface(res.address, where, f"{hosts[0]}/30", hosts[1], ORACLE_ASN, "PRIV_CLOUD",
                                 "Oracle FastConnect, AS 31898")]
        if partner == "ibm":
            return self.ibm(res.address, where, conf)
        self.warn(res.address, f"{other}_partner_config.partner", f"{partner!r} is not a partner mcrd knows: no "
                  "interface imported")
        return []

    def _link(self, address: str, where: str, mine: Any, peer: Any, length: int, cloud: str,
              ) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if _present(mine) and _present(peer):
            return str(mine) if "/" in str(mine) else f"{mine}/{length}", ipaddress.ip_interface(str(peer)).ip
        net = self.placeholder(address, f"{where} (customer and provider addresses)", length, cloud)
        hosts = list(net.hosts())
        return f"{hosts[0]}/{length}", hosts[1]

    def aws(self, address: str, where: str, aws: dict[str, Any]) -> list[dict[str, Any]]:
        if aws.get("connect_type") == "AWSHC":
            self.warn(address, f"{where}.connect_type", "AWSHC (a hosted connection): the VIF and its BGP session "
                      "are made in AWS, not in this design; give the MCR end a vrouter_config to import them")
            return []
        vif = aws.get("type") or "private"
        asn: int = AWS_PUBLIC_ASN
        if vif == "public":
            peer_type, what = "PUB_CLOUD", "AWS public VIF, AS 7224"
        else:
            asn = aws["amazon_asn"] if _present(aws.get("amazon_asn")) else AWS_DEFAULT_ASN
            peer_type = "PRIV_CLOUD"
            what = f"AWS {vif} VIF, Amazon ASN {asn}" + ("" if _present(aws.get("amazon_asn")) else " (the default)")
        mine, peer = self._link(address, where, aws.get("customer_ip_address"), aws.get("amazon_ip_address"), 30,
                                "AWS")
        if _present(aws.get("prefixes")):
            self.warn(address, f"{where}.prefixes", "the prefixes announced to AWS on a public VIF are filtered by "
                      "AWS, which mcrd does not emulate: not carried")
        iface = _cloud_iface(address, where, mine, peer, asn, peer_type, what)
        conn = iface["bgpConnections"][0]
        self._local_asn(conn, aws.get("asn"))
        self._password(address, f"{where}.auth_key", conn, aws.get("auth_key"))
        return [iface]

    def azure(self, address: str, where: str, azure: dict[str, Any]) -> list[dict[str, Any]]:
        peers = _list(azure.get("peers"))
        if not peers:
            self.warn(address, f"{where}.peers", "no peerings: Megaport configures no BGP session; the VXC is "
                      "imported without an interface")
            return []
        secondary = azure.get("port_choice") == "secondary"
        out = []
        for i, peering in enumerate(map(_dict, peers)):
            at = f"{where}.peers[{i}]"
            kind = peering.get("type")
            if kind not in ("private", "microsoft"):
                self.warn(address, f"{at}.type", f"{kind!r} is not an ExpressRoute peering mcrd knows: left out")
                continue
            subnet = peering.get("secondary_subnet" if secondary else "primary_subnet")
            if _present(subnet):
                net = ipaddress.ip_network(str(subnet), strict=False)
            else:
                net = self.placeholder(address, f"{at}.{'secondary' if secondary else 'primary'}_subnet", 30,
                                       "Azure")
            hosts = list(net.hosts())
            peer_type = "PRIV_CLOUD" if kind == "private" else "PUB_CLOUD"
            what = f"ExpressRoute {kind} peering, {'secondary' if secondary else 'primary'} path, Microsoft AS 12076"
            iface = _cloud_iface(address, at, f"{hosts[0]}/{net.prefixlen}", hosts[1], AZURE_ASN, peer_type, what)
            if _present(peering.get("vlan")):  # the peering's inner VLAN, before the connections as in the API
                iface = {"vlan": peering["vlan"], **iface}
                iface = {"#": iface.pop("#"), "ipAddresses": iface.pop("ipAddresses"), **iface}
            conn = iface["bgpConnections"][0]
            self._local_asn(conn, peering.get("peer_asn"))
            self._password(address, f"{at}.shared_key", conn, peering.get("shared_key"))
            if _present(peering.get("prefixes")):
                self.warn(address, f"{at}.prefixes", "the advertised public prefixes are checked by Microsoft, which "
                          "mcrd does not emulate: not carried")
            out.append(iface)
        return out

    def ibm(self, address: str, where: str, ibm: dict[str, Any]) -> list[dict[str, Any]]:
        mine, peer = self._link(address, where, ibm.get("customer_ip_address"), ibm.get("provider_ip_address"), 30,
                                "IBM")
        iface = _cloud_iface(address, where, mine, peer, IBM_ASN, "PRIV_CLOUD", "IBM Direct Link, AS 13884")
        self._local_asn(iface["bgpConnections"][0], ibm.get("customer_asn"))
        return [iface]

    def _local_asn(self, conn: dict[str, Any], asn: Any) -> None:
        if _present(asn) and str(asn).strip().isdigit() and int(asn) != self.mcr_asn:
            conn["localAsn"] = int(asn)

    def _password(self, address: str, where: str, conn: dict[str, Any], key: Any) -> None:
        if not _present(key):
            return
        if len(str(key)) > 25:
            self.warn(address, where, "longer than the MCR's 25 characters: left out (the session runs without MD5)")
            return
        conn["password"] = str(key)


def _name(res: Resource) -> str:
    """The resource's own name (megaport_vxc.dc -> dc): the far end's label when it is not a cloud."""
    return res.local_address.rsplit(".", 1)[-1]


def _peer_type(kind: str) -> str:
    """The peer type a far end implies (docs/MCR-SEMANTICS.md 2.1): the provider's default when peer_type is unset."""
    if kind in ("aws-public",):
        return "PUB_CLOUD"
    if kind in ("aws", "azure", "google", "oracle", "ibm"):
        return "PRIV_CLOUD"
    return "NON_CLOUD"


def _cloud_iface(address: str, where: str, mine: str, peer: Any, asn: int, peer_type: str, what: str,
                 ) -> dict[str, Any]:
    local = str(ipaddress.ip_interface(mine).ip)
    return {
        "#": f"{address}: {where}: {what}, as Megaport configures the MCR",
        "ipAddresses": [mine],
        "bgpConnections": [{"#": f"{address}: {where}", "peerAsn": asn, "localIpAddress": local,
                            "peerIpAddress": str(peer), "peerType": peer_type}],
    }


# --- YAML with comments ----------------------------------------------------------------------------------------------


def render(data: dict[str, Any], header: str) -> str:
    """YAML of `data`; a mapping's "#" key becomes a comment on its first line."""
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    node = _commented(data)
    node.yaml_set_start_comment(header)
    buf = io.StringIO()
    yaml.dump(node, buf)
    return buf.getvalue()


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        out = CommentedMap()
        for key, item in value.items():
            if key != "#":
                out[key] = _commented(item)
        if "#" in value and out:
            out.yaml_add_eol_comment(value["#"], next(iter(out)))
        elif out and all(not isinstance(v, dict | list) for v in value.values()):
            out.fa.set_flow_style()
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_commented(v) for v in value)
        if value and all(not isinstance(v, dict | list) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value
