"""The MCR configuration model, with the Megaport API's own field names.

Field names are snake_case in Python and camelCase in the file (the Megaport spelling), by alias.
Each field's type and range is checked here; rules that span several fields are in `rules.py`.
The models are immutable: a reload builds a new config and the difference is applied.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictBool, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from mcrd.config import rules

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MCR_ASN = 133937  # DOC mcr-bgp-advanced
DEFAULT_MAX_ROUTES = 10_000  # Megaport KB "MCR 2.0 release features": static plus dynamic


def _problem(message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("mcrd", message, ctx or None)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _int(value: object, lo: int, hi: int, *, allow_str: StrictBool = False) -> int:
    if allow_str and isinstance(value, str):
        value = _int_from_text(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(f"{_describe(value)} is not an integer")
    if not lo <= value <= hi:
        raise _problem(f"{value} is out of range {lo}..{hi}")
    return value


def _int_from_text(text: str) -> object:
    """The API's string form of an integer ("24"); anything else comes back unchanged, to be refused."""
    # Not str.isdigit(): it also accepts characters such as '²' that int() refuses.
    digits = text.strip()
    return int(digits) if re.fullmatch(r"-?[0-9]+", digits) else text


def _int_in(lo: int, hi: int, *, allow_str: StrictBool = False) -> PlainValidator:
    return PlainValidator(lambda value: _int(value, lo, hi, allow_str=allow_str))


def _local_asn(value: object) -> int:
    asn = _int(value, 2, 4294967294)
    reason = rules.reserved_asn_reason(asn)
    if reason:
        raise _problem(f"{asn} is reserved ({reason}) and cannot be a local ASN")
    return asn


def _hold_time(value: object) -> int:
    seconds = _int(value, 0, 65535)
    if seconds in (1, 2):
        raise _problem(f"{seconds} is not a usable hold time: use 0 (no keepalives) or 3..65535 (RFC 4271 4.2)")
    return seconds


def _vlan(value: object) -> int:
    # One message for every integer outside the set: "out of range -1..4093" would suggest 0 and 1.
    if isinstance(value, int) and not isinstance(value, bool) and value != -1 and not 2 <= value <= 4093:
        raise _problem(f"{value} is not a usable VLAN: use 2..4093, or -1 for untagged")
    return _int(value, -1, 4093)


def _text(max_len: int, *, required: StrictBool = False) -> PlainValidator:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise _problem(f"{_describe(value)} is not a string")
        if required and not value.strip():
            raise _problem("must not be empty")
        if len(value) > max_len:
            raise _problem(f"is {len(value)} characters long, at most {max_len} allowed")
        bad = next((i for i, c in enumerate(value) if unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            # Names end up on terminals and in logs: no escape sequences, no unencodable surrogates.
            # The value itself is not shown: it may be a password.
            raise _problem(f"has an unprintable character {_codepoint(value[bad])} at position {bad + 1}")
        return value

    return PlainValidator(check)


def _secret(max_len: int) -> PlainValidator:
    """Like `_text`, but a message never shows the value: it is a key."""
    text = _text(max_len).func

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise _problem("is not a string (write the key as text, in quotes if it looks like a number)")
        return text(value)  # type: ignore[call-arg,no-any-return]

    return PlainValidator(check)


def _codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"


class ScopedAddress(ipaddress.IPv6Address):
    """A link-local address written with its scope (`fe80::1%eth5`, RFC 4007 11): the address alone, equal to,
    hashed and printed as `fe80::1`. mcrd scopes a link-local address to its VXC's interface whatever is written;
    `scope` is kept only to be checked against that interface (rules.scope_problems)."""

    def __init__(self, address: str, scope: str = "") -> None:
        super().__init__(address)
        self.scope = scope


def _address(value: object, *, scope_allowed: bool = False) -> IPAddress:
    """An address; with `scope_allowed`, an IPv6 link-local one may carry a scope (`fe80::1%eth5`)."""
    if not isinstance(value, str):
        raise _problem(f"{_describe(value)} is not an IP address")
    text, percent, scope = value.strip().partition("%")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _problem(f"{value!r} is not an IP address (write it without a mask)") from None
    if not percent:
        return address
    if not address.is_link_local or address.version != 6:
        raise _problem(f"{value!r}: only an IPv6 link-local address (fe80::/10) takes a scope; write {address}")
    if not scope_allowed:
        raise _problem(f"{value!r}: write {address} here, without the scope %{scope}")
    if not scope:
        raise _problem(f"{value!r} has no interface after '%': write {address} (mcrd scopes it to the VXC's "
                       "interface)")
    return ScopedAddress(text, scope)


def _link_address(value: object) -> IPAddress:
    return _address(value, scope_allowed=True)


def _ipv4_address(value: object) -> ipaddress.IPv4Address:
    addr = _address(value)
    if not isinstance(addr, ipaddress.IPv4Address):
        raise _problem(f"{value!r} is not an IPv4 address")
    return addr


def _interface(value: object) -> IPInterface:
    if not isinstance(value, str) or "/" not in value:
        raise _problem(f"{_describe(value)} is not an address with a prefix length, e.g. 169.254.10.1/30")
    if "%" in value:
        # An address on this VXC's interface needs no scope; one kept would make it unequal to the same address
        # written without it (localIpAddress must be one of ipAddresses).
        raise _problem(f"{value!r}: write {re.sub(r'%[^/]*', '', value.strip())}, without a scope: the address "
                       "goes on this VXC's interface")
    try:
        return ipaddress.ip_interface(value.strip())
    except ValueError:
        raise _problem(f"{value!r} is not an address with a prefix length, e.g. 169.254.10.1/30") from None


def _prefix(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise _problem(f"{_describe(value)} is not a prefix")
    if "/" not in value:
        raise _problem(f"{value!r} has no prefix length, e.g. 10.0.0.0/16")
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _problem(f"{value!r} is not a prefix, e.g. 10.0.0.0/16") from None
    if net.network_address != ipaddress.ip_interface(value.strip()).ip:
        raise _problem(f"{value!r} has host bits set: the prefix is {net}")
    return net


def _list_ref(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _problem(f"{_describe(value)} is not a prefix filter list id or description")
    return value


def _peer_type(value: object) -> str:
    return _enum(value, ("NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"))


def _enum(value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _problem(f"{_describe(value)} is not one of {', '.join(allowed)}")
    assert isinstance(value, str)
    return value


Asn = Annotated[int, _int_in(1, 4294967295)]
LocalAsn = Annotated[int, PlainValidator(_local_asn)]
Med = Annotated[int, _int_in(0, 4294967295)]
Vlan = Annotated[int, PlainValidator(_vlan)]
Address = Annotated[IPAddress, PlainValidator(_address)]
# Where a link-local address may be written with its scope, `fe80::1%eth5` (the way `ip` and FRR show it).
LinkAddress = Annotated[IPAddress, PlainValidator(_link_address)]
Interface = Annotated[IPInterface, PlainValidator(_interface)]
Prefix = Annotated[IPNetwork, PlainValidator(_prefix)]
ListRef = Annotated[int | str, PlainValidator(_list_ref)]
PeerType = Annotated[
    Literal["NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"], PlainValidator(_peer_type)
]
Action = Annotated[Literal["permit", "deny"], PlainValidator(lambda v: _enum(v, ("permit", "deny")))]
AddressFamily = Annotated[Literal["IPv4", "IPv6"], PlainValidator(lambda v: _enum(v, ("IPv4", "IPv6")))]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, validate_by_name=False
    )


class PrefixFilterEntry(_Model):
    action: Action
    prefix: Prefix
    # The API carries ge/le as strings; Terraform fills an omitted ge with the prefix length
    # and an omitted le with the family's maximum (see `effective_ge`, `effective_le`).
    ge: Annotated[int, _int_in(0, 128, allow_str=True)] | None = None
    le: Annotated[int, _int_in(0, 128, allow_str=True)] | None = None

    @property
    def effective_ge(self) -> int:
        return self.prefix.prefixlen if self.ge is None else self.ge

    @property
    def effective_le(self) -> int:
        return self.prefix.max_prefixlen if self.le is None else self.le

    @model_validator(mode="after")
    def _bounds(self) -> PrefixFilterEntry:
        rules.raise_problems(rules.entry_problems(self))
        return self


class PrefixFilterList(_Model):
    id: Annotated[int, _int_in(1, 2147483647)]
    description: Annotated[str, _text(100, required=True)]
    address_family: AddressFamily
    entries: tuple[PrefixFilterEntry, ...]

    @model_validator(mode="after")
    def _entries(self) -> PrefixFilterList:
        rules.raise_problems(rules.list_problems(self))
        return self


class StaticRoute(_Model):
    prefix: Prefix
    next_hop: LinkAddress
    description: Annotated[str, _text(100)] = ""


class Bfd(_Model):
    tx_interval: Annotated[int, _int_in(300, 30000)] = 300
    rx_interval: Annotated[int, _int_in(300, 30000)] = 300
    multiplier: Annotated[int, _int_in(3, 20)] = 3


class BgpConnection(_Model):
    peer_asn: Asn
    local_asn: LocalAsn | None = None
    local_ip_address: LinkAddress
    peer_ip_address: LinkAddress
    password: Annotated[str, _secret(25)] | None = None
    shutdown: StrictBool | None = None  # None: the MCR's bgpShutdownDefault
    description: Annotated[str, _text(100)] = ""
    med_in: Med | None = None
    med_out: Med | None = None
    bfd_enabled: StrictBool = False
    export_policy: Annotated[
        Literal["permit", "deny"], PlainValidator(lambda v: _enum(v, ("permit", "deny")))
    ] = "permit"
    permit_export_to: tuple[Address, ...] = ()
    deny_export_to: tuple[Address, ...] = ()
    import_whitelist: ListRef | None = None
    import_blacklist: ListRef | None = None
    export_whitelist: ListRef | None = None
    export_blacklist: ListRef | None = None
    as_path_prepend_count: Annotated[int, _int_in(0, 10)] = 0
    peer_type: PeerType = "NON_CLOUD"
    as_override: StrictBool = False
    # mcrd extension (not an MCR field): BGP hold time in seconds, 0 or 3..65535.
    hold_time: Annotated[int, PlainValidator(_hold_time)] = 90

    @model_validator(mode="after")
    def _connection(self) -> BgpConnection:
        rules.raise_problems(rules.connection_problems(self))
        return self


class VrouterInterface(_Model):
    ip_addresses: tuple[Interface, ...] = ()
    nat_ip_addresses: tuple[Address, ...] = ()
    ip_routes: tuple[StaticRoute, ...] = ()
    bfd: Bfd = Field(default_factory=Bfd)
    bgp_connections: tuple[BgpConnection, ...] = ()
    vlan: Vlan | None = None  # inner VLAN, mainly Azure
    ip_mtu: Annotated[int, _int_in(68, 9074)] = 1500
    description: Annotated[str, _text(100)] = ""

    @model_validator(mode="after")
    def _interface(self) -> VrouterInterface:
        rules.raise_problems(rules.interface_problems(self))
        return self


class Vrouter(_Model):
    interfaces: tuple[VrouterInterface, ...] = ()


class Vxc(_Model):
    product_name: Annotated[str, _text(100, required=True)]
    # mcrd extension: the Linux interface that carries this VXC.
    interface: Annotated[str, PlainValidator(rules.linux_ifname)]
    vlan: Vlan | None = None
    inner_vlan: Vlan | None = None
    rate_limit: Annotated[int, _int_in(1, 100000)] | None = None
    shutdown: StrictBool = False
    vrouter: Vrouter = Field(default_factory=Vrouter)


class Mcr(_Model):
    product_name: Annotated[str, _text(100, required=True)] = "mcrd"
    mcr_asn: LocalAsn = DEFAULT_MCR_ASN
    router_id: Annotated[ipaddress.IPv4Address, PlainValidator(_ipv4_address)] | None = None
    bgp_shutdown_default: StrictBool = False
    port_speed: Annotated[
        int, PlainValidator(lambda v: rules.one_of_ints(v, (1000, 2500, 5000, 10000, 25000, 50000, 100000)))
    ] = 1000
    # mcrd extensions
    max_routes: Annotated[int, _int_in(1, 10_000_000)] = DEFAULT_MAX_ROUTES
    advertise_connected: StrictBool = False
    # false: best routes stay out of the kernel (a BGP-only lab; packets do not cross the hub)
    kernel_routes: StrictBool = True


class Api(_Model):
    listen: Annotated[str, PlainValidator(rules.host_port)] = "127.0.0.1:8080"
    token: Annotated[str, _secret(200)] | None = None


class Mqtt(_Model):
    host: Annotated[str, _text(253, required=True)]
    port: Annotated[int, _int_in(1, 65535)] = 1883
    username: Annotated[str, _text(200)] | None = None
    password: Annotated[str, _secret(200)] | None = None
    tls: StrictBool = False
    topic_prefix: Annotated[str, _text(200, required=True)] = "mcrd"


class Events(_Model):
    mqtt: Mqtt | None = None


class Config(_Model):
    mcr: Mcr = Field(default_factory=Mcr)
    api: Api = Field(default_factory=Api)
    events: Events = Field(default_factory=Events)
    prefix_filter_lists: tuple[PrefixFilterList, ...] = ()
    vxcs: tuple[Vxc, ...] = ()

    @model_validator(mode="after")
    def _whole(self) -> Config:
        rules.raise_problems(rules.config_problems(self))
        return self

    # Derived views the rest of mcrd uses.

    def connections(self) -> list[tuple[Vxc, VrouterInterface, BgpConnection]]:
        return [
            (vxc, iface, conn)
            for vxc in self.vxcs
            for iface in vxc.vrouter.interfaces
            for conn in iface.bgp_connections
        ]

    def find_list(self, ref: int | str | None) -> PrefixFilterList | None:
        if ref is None:
            return None
        for plist in self.prefix_filter_lists:
            if (isinstance(ref, int) and plist.id == ref) or (isinstance(ref, str) and plist.description == ref):
                return plist
        return None

    def effective_router_id(self) -> ipaddress.IPv4Address:
        if self.mcr.router_id is not None:
            return self.mcr.router_id
        v4 = [
            addr.ip
            for vxc in self.vxcs
            for iface in vxc.vrouter.interfaces
            for addr in iface.ip_addresses
            if isinstance(addr, ipaddress.IPv4Interface)
        ]
        return min(v4) if v4 else ipaddress.IPv4Address("0.0.0.0")

    def local_asn(self, conn: BgpConnection) -> int:
        return conn.local_asn if conn.local_asn is not None else self.mcr.mcr_asn

    def shutdown(self, vxc: Vxc, conn: BgpConnection) -> bool:
        if vxc.shutdown:
            return True
        return self.mcr.bgp_shutdown_default if conn.shutdown is None else conn.shutdown
