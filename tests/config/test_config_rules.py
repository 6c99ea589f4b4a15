"""One test per config rule: each asserts the exact `FILE:LINE: path: message` line it produces.

The texts are small edits of `TWO_SESSIONS` (its comments give the line numbers) or short inline configs.
"""

from __future__ import annotations

import pytest

from mcrd.config.load import parse_config

from .config_testlib import (
    INTERFACE,
    INTERFACE_PATH,
    SESSION_0,
    SESSION_0_PATH,
    SESSION_1,
    SESSION_1_PATH,
    TWO_SESSIONS,
    VXC,
    insert_after,
    problem,
    problems,
    set_line,
)

S1 = SESSION_1_PATH
IF = INTERFACE_PATH


def session_1_with(*lines: str) -> str:
    return insert_after(TWO_SESSIONS, SESSION_1, *lines)


def interface_with(*lines: str) -> str:
    return insert_after(TWO_SESSIONS, INTERFACE, *lines)


def test_the_base_config_is_valid() -> None:
    assert problems(TWO_SESSIONS) == []


# --- types -------------------------------------------------------------------------------------


def test_a_string_where_an_integer_is_expected() -> None:
    text = set_line(TWO_SESSIONS, 21, 'peerAsn: "12076"')
    assert problem(text) == f"t.yaml:21: {S1}.peerAsn: '12076' is not an integer"


@pytest.mark.parametrize(("value", "shown"), [("yes", "'yes'"), ("1", "1"), ('"true"', "'true'"), ("null", "null")])
def test_booleans_are_strict(value: str, shown: str) -> None:
    text = session_1_with(f"bfdEnabled: {value}")
    assert problem(text) == f"t.yaml:24: {S1}.bfdEnabled: {shown} is not true or false"


def test_kernel_routes_is_a_boolean_that_defaults_to_on() -> None:
    assert parse_config(TWO_SESSIONS, "t.yaml").mcr.kernel_routes is True
    off = set_line(TWO_SESSIONS, 1, "mcr: {productName: t, kernelRoutes: false}")
    assert parse_config(off, "t.yaml").mcr.kernel_routes is False
    text = set_line(TWO_SESSIONS, 1, "mcr: {productName: t, kernelRoutes: off}")
    assert problem(text) == "t.yaml:1: mcr.kernelRoutes: 'off' is not true or false"


def test_a_mapping_where_a_list_is_expected() -> None:
    text = "mcr: {routerId: 192.0.2.1}\nvxcs: {productName: aws}\n"
    assert problem(text) == "t.yaml:2: vxcs: a mapping where a list is expected"


def test_an_address_that_is_not_one() -> None:
    text = set_line(TWO_SESSIONS, 23, "peerIpAddress: 192.0.2.300")
    assert (
        problem(text) == f"t.yaml:23: {S1}.peerIpAddress: '192.0.2.300' is not an IP address (write it without a mask)"
    )


# --- ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize("asn", [0, 4294967296])
def test_peer_asn_range(asn: int) -> None:
    text = set_line(TWO_SESSIONS, 21, f"peerAsn: {asn}")
    assert problem(text) == f"t.yaml:21: {S1}.peerAsn: {asn} is out of range 1..4294967295"


@pytest.mark.parametrize("asn", [1, 4294967295])
def test_local_asn_range(asn: int) -> None:
    text = session_1_with(f"localAsn: {asn}")
    assert problem(text) == f"t.yaml:24: {S1}.localAsn: {asn} is out of range 2..4294967294"


RESERVED_ASNS = [
    (23456, "AS_TRANS, RFC 6793"),
    (64496, "documentation, RFC 5398"),
    (64511, "documentation, RFC 5398"),
    (65535, "last 16-bit ASN, RFC 7300"),
    (65536, "documentation, RFC 5398"),
    (65551, "documentation, RFC 5398"),
    (65552, "IANA reserved"),
    (131071, "IANA reserved"),
]


@pytest.mark.parametrize(("asn", "reason"), RESERVED_ASNS)
def test_reserved_local_asns(asn: int, reason: str) -> None:
    text = session_1_with(f"localAsn: {asn}")
    assert problem(text) == f"t.yaml:24: {S1}.localAsn: {asn} is reserved ({reason}) and cannot be a local ASN"


@pytest.mark.parametrize(("asn", "reason"), RESERVED_ASNS)
def test_reserved_mcr_asns(asn: int, reason: str) -> None:
    text = set_line(TWO_SESSIONS, 1, f"mcr: {{productName: t, mcrAsn: {asn}}}")
    assert problem(text) == f"t.yaml:1: mcr.mcrAsn: {asn} is reserved ({reason}) and cannot be a local ASN"


@pytest.mark.parametrize("asn", [2, 23455, 23457, 64495, 64512, 65534, 131072, 4294967294])
def test_local_asns_next_to_the_reserved_ones_are_accepted(asn: int) -> None:
    assert problems(session_1_with(f"localAsn: {asn}")) == []
    assert problems(set_line(TWO_SESSIONS, 1, f"mcr: {{productName: t, mcrAsn: {asn}}}")) == []


def test_med_range() -> None:
    text = session_1_with("medIn: 4294967296", "medOut: -1")
    assert problems(text) == [
        "t.yaml:24: vxcs[0].vrouter.interfaces[0].bgpConnections[1].medIn: 4294967296 is out of range 0..4294967295",
        f"t.yaml:25: {S1}.medOut: -1 is out of range 0..4294967295",
    ]
    assert problems(session_1_with("medIn: 0", "medOut: 4294967295")) == []


@pytest.mark.parametrize("count", [-1, 11])
def test_as_path_prepend_count_range(count: int) -> None:
    text = session_1_with(f"asPathPrependCount: {count}")
    assert problem(text) == f"t.yaml:24: {S1}.asPathPrependCount: {count} is out of range 0..10"


@pytest.mark.parametrize("mtu", [67, 9075])
def test_ip_mtu_range(mtu: int) -> None:
    text = interface_with(f"ipMtu: {mtu}")
    assert problem(text) == f"t.yaml:17: {IF}.ipMtu: {mtu} is out of range 68..9074"


@pytest.mark.parametrize(
    ("bfd", "field", "message"),
    [
        ("{txInterval: 299}", "txInterval", "299 is out of range 300..30000"),
        ("{rxInterval: 30001}", "rxInterval", "30001 is out of range 300..30000"),
        ("{multiplier: 2}", "multiplier", "2 is out of range 3..20"),
        ("{multiplier: 21}", "multiplier", "21 is out of range 3..20"),
    ],
)
def test_bfd_ranges(bfd: str, field: str, message: str) -> None:
    text = interface_with(f"bfd: {bfd}")
    assert problem(text) == f"t.yaml:17: {IF}.bfd.{field}: {message}"


@pytest.mark.parametrize("vlan", [0, 1, -2, 4094])
@pytest.mark.parametrize(
    ("where", "line", "path"),
    [(VXC, 14, "vxcs[0]"), (INTERFACE, 17, IF)],
    ids=["vxc", "interface"],
)
def test_vlan_range(vlan: int, where: int, line: int, path: str) -> None:
    text = insert_after(TWO_SESSIONS, where, f"vlan: {vlan}")
    assert problem(text) == f"t.yaml:{line}: {path}.vlan: {vlan} is not a usable VLAN: use 2..4093, or -1 for untagged"


@pytest.mark.parametrize("vlan", [0, 1, 4094])
def test_inner_vlan_range(vlan: int) -> None:
    text = insert_after(TWO_SESSIONS, VXC, "vlan: 100", f"innerVlan: {vlan}")
    assert (
        problem(text) == f"t.yaml:15: vxcs[0].innerVlan: {vlan} is not a usable VLAN: use 2..4093, or -1 for untagged"
    )


@pytest.mark.parametrize("vlan", [-1, 2, 4093])
def test_usable_vlans_are_accepted(vlan: int) -> None:
    assert problems(insert_after(TWO_SESSIONS, VXC, f"vlan: {vlan}", f"innerVlan: {vlan}")) == []
    assert problems(interface_with(f"vlan: {vlan}")) == []


def test_password_length() -> None:
    assert problems(session_1_with(f"password: {'p' * 25}")) == []
    text = session_1_with(f"password: {'p' * 26}")
    # The message names the length, not the secret.
    assert problem(text) == f"t.yaml:24: {S1}.password: is 26 characters long, at most 25 allowed"


def test_description_length() -> None:
    assert problems(session_1_with(f"description: {'d' * 100}")) == []
    text = session_1_with(f"description: {'d' * 101}")
    assert problem(text) == f"t.yaml:24: {S1}.description: is 101 characters long, at most 100 allowed"


def test_hold_time_is_zero_or_at_least_three() -> None:
    text = session_1_with("holdTime: 2")
    assert problem(text) == (
        f"t.yaml:24: {S1}.holdTime: 2 is not a usable hold time: use 0 (no keepalives) or 3..65535 (RFC 4271 4.2)"
    )


# --- prefix filter lists ----------------------------------------------------------------------------

ONE_LIST = """\
mcr: {routerId: 192.0.2.1}                   # 1
prefixFilterLists:                           # 2
  - id: 1                                    # 3
    description: l                           # 4
    addressFamily: IPv4                      # 5
    entries:                                 # 6
      - {action: permit, prefix: 10.0.0.0/8} # 7
"""
ENTRY = "prefixFilterLists[0].entries[0]"


def entry(content: str) -> str:
    return set_line(ONE_LIST, 7, content)


def test_list_entry_prefix_must_be_canonical() -> None:
    text = entry("{action: permit, prefix: 10.0.0.1/8}")
    assert problem(text) == f"t.yaml:7: {ENTRY}.prefix: '10.0.0.1/8' has host bits set: the prefix is 10.0.0.0/8"


def test_static_route_prefix_must_be_canonical() -> None:
    text = interface_with("ipRoutes: [{prefix: 10.1.1.1/16, nextHop: 192.0.2.6}]")
    assert (
        problem(text)
        == f"t.yaml:17: {IF}.ipRoutes[0].prefix: '10.1.1.1/16' has host bits set: the prefix is 10.1.0.0/16"
    )


def test_prefix_needs_a_length() -> None:
    text = entry("{action: permit, prefix: 10.0.0.0}")
    assert problem(text) == f"t.yaml:7: {ENTRY}.prefix: '10.0.0.0' has no prefix length, e.g. 10.0.0.0/16"


@pytest.mark.parametrize(
    ("bounds", "field", "message"),
    [
        ("ge: 4", "ge", "ge 4 is shorter than the prefix length of 10.0.0.0/8"),
        ("ge: 33", "ge", "ge 33 is longer than 32, the longest IPv4 prefix"),
        ("le: 4", "le", "le 4 is shorter than the prefix length of 10.0.0.0/8"),
        ("le: 33", "le", "le 33 is longer than 32, the longest IPv4 prefix"),
        ("ge: 24, le: 16", "le", "le 16 is less than ge 24"),
        # The API sends ge and le as strings.
        ('ge: "24", le: "16"', "le", "le 16 is less than ge 24"),
        ('ge: "4"', "ge", "ge 4 is shorter than the prefix length of 10.0.0.0/8"),
        ('le: "twenty"', "le", "'twenty' is not an integer"),
        ("le: 129", "le", "129 is out of range 0..128"),
    ],
)
def test_list_entry_lengths_are_ordered(bounds: str, field: str, message: str) -> None:
    text = entry(f"{{action: permit, prefix: 10.0.0.0/8, {bounds}}}")
    assert problem(text) == f"t.yaml:7: {ENTRY}.{field}: {message}"


@pytest.mark.parametrize("bounds", ["", "ge: 8", "le: 32", 'ge: "16", le: "24"', "ge: 32, le: 32"])
def test_list_entry_lengths_in_order_are_accepted(bounds: str) -> None:
    assert problems(entry(f"{{action: permit, prefix: 10.0.0.0/8, {bounds}}}")) == []


def test_ipv6_entry_lengths_go_to_128() -> None:
    text = set_line(
        set_line(ONE_LIST, 5, "addressFamily: IPv6"), 7, "{action: permit, prefix: '2001:db8::/32', le: 128}"
    )
    assert problems(text) == []
    text = set_line(text, 7, "{action: permit, prefix: '2001:db8::/32', ge: '129'}")
    assert problem(text) == f"t.yaml:7: {ENTRY}.ge: 129 is out of range 0..128"


def test_entry_family_must_match_the_list() -> None:
    text = entry("{action: permit, prefix: '2001:db8::/32'}")
    assert problem(text) == f"t.yaml:7: {ENTRY}.prefix: 2001:db8::/32 is IPv6 in an IPv4 list"


def test_a_list_needs_an_entry() -> None:
    text = ONE_LIST.replace("    entries:                                 # 6\n", "    entries: []\n")
    text = text.replace("      - {action: permit, prefix: 10.0.0.0/8} # 7\n", "")
    assert problem(text) == "t.yaml:6: prefixFilterLists[0].entries: a prefix filter list needs at least one entry"


def list_with(count: int) -> str:
    entries = [f"      - {{action: permit, prefix: 10.{i // 256}.{i % 256}.0/24}}" for i in range(count)]
    return "\n".join([*ONE_LIST.splitlines()[:6], *entries]) + "\n"


def test_a_list_holds_at_most_200_entries() -> None:
    assert problems(list_with(200)) == []
    assert problem(list_with(201)) == "t.yaml:6: prefixFilterLists[0].entries: has 201 entries, at most 200 allowed"


# --- addresses on an interface ---------------------------------------------------------------------


def test_local_address_must_be_the_interfaces() -> None:
    text = set_line(TWO_SESSIONS, 22, "localIpAddress: 192.0.2.5")
    assert problem(text) == (
        f"t.yaml:22: {S1}.localIpAddress: 192.0.2.5 is not one of this interface's ipAddresses "
        "(192.0.2.1/29, 2001:db8::1/64)"
    )


def test_peer_must_be_in_the_interface_subnet() -> None:
    text = set_line(TWO_SESSIONS, 23, "peerIpAddress: 192.0.2.9")
    assert problem(text) == f"t.yaml:23: {S1}.peerIpAddress: 192.0.2.9 is outside the interface subnet 192.0.2.0/29"


def test_peer_and_local_address_share_a_family() -> None:
    text = set_line(TWO_SESSIONS, 23, 'peerIpAddress: "2001:db8::2"')
    assert (
        problem(text) == f"t.yaml:23: {S1}.peerIpAddress: 2001:db8::2 is IPv6 but the local address 192.0.2.1 is IPv4"
    )


def test_peer_is_not_the_local_address() -> None:
    text = set_line(TWO_SESSIONS, 23, "peerIpAddress: 192.0.2.1")
    assert problem(text) == f"t.yaml:23: {S1}.peerIpAddress: 192.0.2.1 is the local address too"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            "{prefix: 10.1.0.0/16, nextHop: 192.0.2.9}",
            "192.0.2.9 is outside the interface subnets (192.0.2.1/29, 2001:db8::1/64)",
        ),
        (
            "{prefix: 10.1.0.0/16, nextHop: 192.0.2.1}",
            "192.0.2.1 is this interface's own address; the next hop must be a neighbour on its subnet",
        ),
        ("{prefix: 10.1.0.0/16, nextHop: '2001:db8::5'}", "2001:db8::5 is not IPv4 like 10.1.0.0/16"),
    ],
    ids=["outside", "own-address", "other-family"],
)
def test_static_next_hop_is_a_neighbour_on_the_subnet(route: str, message: str) -> None:
    text = interface_with(f"ipRoutes: [{route}]")
    assert problem(text) == f"t.yaml:17: {IF}.ipRoutes[0].nextHop: {message}"


def test_static_routes_on_the_subnet_are_accepted() -> None:
    text = interface_with(
        "ipRoutes:",
        "  - {prefix: 10.1.0.0/16, nextHop: 192.0.2.6}",
        "  - {prefix: '2001:db8:1::/48', nextHop: '2001:db8::9'}",
    )
    assert problems(text) == []


def interface_with_sessions(count: int) -> str:
    header = TWO_SESSIONS.splitlines()[:15]
    body = ["        - ipAddresses: [192.0.2.1/24]", "          bgpConnections:"]
    for i in range(count):
        body += [f"            - {{peerAsn: 64512, localIpAddress: 192.0.2.1, peerIpAddress: 192.0.2.{10 + i}}}"]
    return "\n".join(header + body) + "\n"


def test_at_most_5_bgp_connections_per_interface() -> None:
    assert problems(interface_with_sessions(5)) == []
    assert problem(interface_with_sessions(6)) == (
        f"t.yaml:17: {IF}.bgpConnections: has 6 BGP connections, at most 5 per interface"
    )


def test_at_most_50_static_routes_per_interface() -> None:
    def routes(count: int) -> list[str]:
        return ["ipRoutes:", *(f"  - {{prefix: 10.{i}.0.0/16, nextHop: 192.0.2.2}}" for i in range(count))]

    assert problems(interface_with(*routes(50))) == []
    assert (
        problem(interface_with(*routes(51)))
        == f"t.yaml:17: {IF}.ipRoutes: has 51 static routes, at most 50 per interface"
    )


def test_an_address_on_two_interfaces() -> None:
    text = (
        TWO_SESSIONS
        + "  - {productName: gcp, interface: eth2, vrouter: {interfaces: [{ipAddresses: [192.0.2.1/29]}]}}\n"
    )
    assert problem(text) == (
        "t.yaml:24: vxcs[1].vrouter.interfaces[0].ipAddresses[0]: 192.0.2.1 is already an address of another interface"
    )


# --- link-local addresses (fe80::/10) ----------------------------------------------------------------------

LINK_LOCAL = """\
mcr: {productName: t, routerId: 10.255.0.1}                  # 1
vxcs:                                                        # 2
  - productName: lab                                         # 3
    interface: eth5                                          # 4
    vrouter:                                                 # 5
      interfaces:                                            # 6
        - ipAddresses: ["fe80::2/64"]                        # 7
          bgpConnections:                                    # 8
            - peerAsn: 64512                                 # 9
              localIpAddress: "fe80::2"                      # 10
              peerIpAddress: "fe80::1"                       # 11
"""
LL = "vxcs[0].vrouter.interfaces[0]"
LL_SESSION = f"{LL}.bgpConnections[0]"


def test_a_link_local_session_is_valid_and_takes_its_vxcs_interface_as_scope() -> None:
    assert problems(LINK_LOCAL) == []
    # The way `ip` and FRR write it: accepted when the scope is the VXC's own interface, and the same session.
    scoped = set_line(set_line(LINK_LOCAL, 11, 'peerIpAddress: "fe80::1%eth5"'), 10, 'localIpAddress: "fe80::2%eth5"')
    config = parse_config(scoped, "t.yaml")
    assert config == parse_config(LINK_LOCAL, "t.yaml")
    conn = config.connections()[0][2]
    assert (str(conn.local_ip_address), str(conn.peer_ip_address)) == ("fe80::2", "fe80::1")


def test_a_tagged_vxcs_scope_is_its_vlan_device() -> None:
    tagged = insert_after(LINK_LOCAL, 4, "vlan: 100")  # the session runs on eth5.100
    assert problems(set_line(tagged, 12, 'peerIpAddress: "fe80::1%eth5.100"')) == []
    assert problem(set_line(tagged, 12, 'peerIpAddress: "fe80::1%eth5"')) == (
        f"t.yaml:12: {LL_SESSION}.peerIpAddress: fe80::1%eth5: the scope eth5 is not this VXC's interface eth5.100; "
        "a link-local address here is always on eth5.100: write fe80::1"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fe80::1%eth6", "fe80::1%eth6: the scope eth6 is not this VXC's interface eth5; a link-local address here is "
                         "always on eth5: write fe80::1"),
        ("fe80::1%2", "fe80::1%2: the scope 2 is not this VXC's interface eth5; a link-local address here is always "
                      "on eth5: write fe80::1"),
        ("fe80::1%", "'fe80::1%' has no interface after '%': write fe80::1 (mcrd scopes it to the VXC's interface)"),
        ("2001:db8::1%eth5", "'2001:db8::1%eth5': only an IPv6 link-local address (fe80::/10) takes a scope; write "
                             "2001:db8::1"),
        ("169.254.0.2%eth5", "'169.254.0.2%eth5': only an IPv6 link-local address (fe80::/10) takes a scope; write "
                             "169.254.0.2"),
    ],
    ids=["other-interface", "index", "empty", "global", "ipv4"],
)
def test_a_scope_that_is_not_the_vxcs_interface_is_refused_by_name(value: str, message: str) -> None:
    """Never a session that would not start: mcrd binds a link-local session to the VXC's interface, so a scope
    naming anything else is refused, and the message never offers the refused form as the valid one."""
    assert problem(set_line(LINK_LOCAL, 11, f'peerIpAddress: "{value}"')) == (
        f"t.yaml:11: {LL_SESSION}.peerIpAddress: {message}"
    )


def test_a_scope_is_refused_where_an_address_goes_on_the_interface_or_names_a_peer() -> None:
    assert problem(set_line(LINK_LOCAL, 7, 'ipAddresses: ["fe80::2%eth5/64"]')) == (
        f"t.yaml:7: {LL}.ipAddresses[0]: 'fe80::2%eth5/64': write fe80::2/64, without a scope: the address goes "
        "on this VXC's interface"
    )
    text = insert_after(LINK_LOCAL, 11, 'denyExportTo: ["fe80::1%eth5"]')
    assert f"t.yaml:12: {LL_SESSION}.denyExportTo[0]: 'fe80::1%eth5': write fe80::1 here, without the scope %eth5" in (
        problems(text)
    )


def test_a_static_route_through_a_link_local_next_hop() -> None:
    assert problems(insert_after(LINK_LOCAL, 7, "ipRoutes: [{prefix: '2001:db8:9::/48', nextHop: 'fe80::1%eth5'}]")) \
        == []
    assert problem(insert_after(LINK_LOCAL, 7, "ipRoutes: [{prefix: '2001:db8:9::/48', nextHop: 'fe80::1%lo'}]")) == (
        f"t.yaml:8: {LL}.ipRoutes[0].nextHop: fe80::1%lo: the scope lo is not this VXC's interface eth5; a "
        "link-local address here is always on eth5: write fe80::1"
    )


def test_one_link_local_peer_address_on_two_links() -> None:
    second = LINK_LOCAL + "\n".join([
        "  - productName: lab2",
        "    interface: eth6",
        "    vrouter:",
        "      interfaces:",
        '        - ipAddresses: ["fe80::3/64"]',
        "          bgpConnections:",
        '            - {peerAsn: 64513, localIpAddress: "fe80::3", peerIpAddress: "fe80::1"}',
    ]) + "\n"
    assert problem(second) == (
        "t.yaml:18: vxcs[1].vrouter.interfaces[0].bgpConnections[0].peerIpAddress: fe80::1 is the peer of 2 BGP "
        "connections (on different links too: a session is named by its peer address alone)"
    )


# --- references and duplicates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "ref", "shown"),
    [("importWhitelist", "3", "3"), ("exportBlacklist", "v5", "'v5'")],
    ids=["id", "description"],
)
def test_reference_to_a_missing_list(field: str, ref: str, shown: str) -> None:
    text = session_1_with(f"{field}: {ref}")
    assert problem(text) == (
        f"t.yaml:24: {S1}.{field}: no prefix filter list has id or description {shown} (lists: 1 (v4), 2 (v6))"
    )


@pytest.mark.parametrize("ref", ["2", "v6"], ids=["id", "description"])
def test_reference_to_a_list_of_the_other_family(ref: str) -> None:
    text = session_1_with(f"importBlacklist: {ref}")
    assert problem(text) == f"t.yaml:24: {S1}.importBlacklist: list 'v6' is IPv6 but this session is IPv4"


def test_references_by_id_and_description_resolve() -> None:
    text = session_1_with("importWhitelist: 1", "importBlacklist: v4", "exportWhitelist: v4", "exportBlacklist: 1")
    assert problems(text) == []


def test_duplicate_peer_addresses() -> None:
    text = set_line(TWO_SESSIONS, 23, "peerIpAddress: 192.0.2.2")
    assert problem(text) == f"t.yaml:23: {S1}.peerIpAddress: 192.0.2.2 is the peer of 2 BGP connections"


def test_duplicate_list_ids() -> None:
    text = set_line(TWO_SESSIONS, 7, "id: 1")
    assert problem(text) == "t.yaml:7: prefixFilterLists[1].id: 1 is the id of 2 lists"


def test_duplicate_list_descriptions() -> None:
    text = set_line(TWO_SESSIONS, 8, "description: v4")
    assert problem(text) == "t.yaml:8: prefixFilterLists[1].description: 'v4' describes 2 lists"


def test_duplicate_vxc_names() -> None:
    text = TWO_SESSIONS + "  - productName: aws\n    interface: eth2\n"
    assert problem(text) == "t.yaml:24: vxcs[1].productName: 'aws' names 2 VXCs"


def test_two_vxcs_on_one_interface_and_vlan() -> None:
    text = TWO_SESSIONS + "  - productName: gcp\n    interface: eth1\n"
    assert problem(text) == "t.yaml:24: vxcs[1].vlan: eth1 untagged already carries VXC 'aws'"
    tagged = insert_after(text, VXC, "vlan: 100", "innerVlan: 300") + "    vlan: 100\n    innerVlan: 300\n"
    assert problem(tagged) == "t.yaml:28: vxcs[1].vlan: eth1 VLAN 100 inner VLAN 300 already carries VXC 'aws'"


# --- export control ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["permitExportTo", "denyExportTo"])
def test_export_to_an_unknown_peer(field: str) -> None:
    text = session_1_with(f"{field}: [192.0.2.2, 192.0.2.5]")
    assert problem(text) == f"t.yaml:24: {S1}.{field}[1]: 192.0.2.5 is not the peer address of any BGP connection"


def test_export_to_own_peer() -> None:
    text = session_1_with("permitExportTo: [192.0.2.3]")
    assert problem(text) == f"t.yaml:24: {S1}.permitExportTo[0]: 192.0.2.3 is this connection's own peer"


def test_peer_in_both_export_lists() -> None:
    text = session_1_with("exportPolicy: deny", "permitExportTo: [192.0.2.2]", "denyExportTo:", "  - 192.0.2.2")
    assert problem(text) == f"t.yaml:27: {S1}.denyExportTo[0]: 192.0.2.2 is in permitExportTo too"


# --- session kinds --------------------------------------------------------------------------------------


def test_as_override_on_ibgp_by_local_asn() -> None:
    text = session_1_with("localAsn: 12076", "asOverride: true")
    assert problem(text) == (
        f"t.yaml:25: {S1}.asOverride: applies to eBGP only, and this session is iBGP (local AS 12076 = peerAsn)"
    )


def test_as_override_on_ibgp_by_mcr_asn() -> None:
    text = insert_after(
        set_line(TWO_SESSIONS, 1, "mcr: {productName: t, mcrAsn: 64512}"), SESSION_0, "asOverride: true"
    )
    assert problem(text) == (
        f"t.yaml:21: {SESSION_0_PATH}.asOverride: applies to eBGP only, "
        "and this session is iBGP (local AS 64512 = peerAsn)"
    )
    assert problems(session_1_with("asOverride: true")) == []


IPV6_ONLY = """\
vxcs:
  - productName: v6
    interface: eth1
    vrouter: {interfaces: [{ipAddresses: ["2001:db8::1/64"]}]}
"""


def test_router_id_is_required_without_ipv4() -> None:
    assert problem(IPV6_ONLY) == "t.yaml:1: mcr.routerId: no interface has an IPv4 address to take it from: set it"
    assert problem("mcr: {productName: t}\n" + IPV6_ONLY) == (
        "t.yaml:1: mcr.routerId: no interface has an IPv4 address to take it from: set it"
    )
    assert problems("mcr: {routerId: 192.0.2.1}\n" + IPV6_ONLY) == []


# --- names and values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("peerASN: 1", "unknown field 'peerASN' (did you mean 'peerAsn'?)"),
        ("peer_asn: 1", "unknown field 'peer_asn' (did you mean 'peerAsn'?)"),
        ("colour: red", "unknown field 'colour'"),
    ],
)
def test_unknown_field(line: str, message: str) -> None:
    field = line.partition(":")[0]
    assert problem(session_1_with(line)) == f"t.yaml:24: {S1}.{field}: {message}"


def test_unknown_top_level_field() -> None:
    text = "vxc: []\n" + TWO_SESSIONS
    assert problem(text) == "t.yaml:1: vxc: unknown field 'vxc' (did you mean 'vxcs'?)"


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("peerType: PRIVATE", "peerType", "'PRIVATE' is not one of NON_CLOUD, PRIV_CLOUD, PUB_CLOUD"),
        ("exportPolicy: allow", "exportPolicy", "'allow' is not one of permit, deny"),
    ],
)
def test_session_enums(line: str, field: str, message: str) -> None:
    assert problem(session_1_with(line)) == f"t.yaml:24: {S1}.{field}: {message}"


def test_entry_action_enum() -> None:
    text = entry("{action: accept, prefix: 10.0.0.0/8}")
    assert problem(text) == f"t.yaml:7: {ENTRY}.action: 'accept' is not one of permit, deny"


def test_address_family_enum() -> None:
    text = set_line(ONE_LIST, 5, "addressFamily: ipv4")
    assert problem(text) == "t.yaml:5: prefixFilterLists[0].addressFamily: 'ipv4' is not one of IPv4, IPv6"


def test_missing_required_fields() -> None:
    text = set_line(TWO_SESSIONS, 21, "description: no peerAsn")
    assert problem(text) == f"t.yaml:21: {S1}.peerAsn: is required"
    no_interface = TWO_SESSIONS.replace("    interface: eth1", "    rateLimit: 100")
    assert problem(no_interface) == "t.yaml:12: vxcs[0].interface: is required"
    assert problem(entry("{action: permit}")) == f"t.yaml:7: {ENTRY}.prefix: is required"
