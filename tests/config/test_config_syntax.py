"""Reading the file: YAML and JSON syntax, line numbers, several problems at once, files that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcrd.config.load import ConfigError, load_config, parse_config

from .config_testlib import SESSION_1, SESSION_1_PATH, TWO_SESSIONS, insert_after, problem, problems, set_line


def test_yaml_syntax_error_names_file_and_line() -> None:
    text = set_line(TWO_SESSIONS, 19, "localIpAddress: 192.0.2.1: x")
    assert problem(text) == "t.yaml:19: YAML syntax error: mapping values are not allowed here"


def test_unclosed_flow_sequence() -> None:
    text = "mcr:\n  productName: [t\n  routerId: 192.0.2.1\n"
    assert (
        problem(text) == "t.yaml:3: YAML syntax error: while parsing a flow sequence expected ',' or ']', but got ':'"
    )


def test_tab_indentation_in_yaml() -> None:
    assert problem("mcr:\n\tproductName: t\n") == (
        "t.yaml:2: YAML syntax error: while scanning for the next token found character '\\t' "
        "that cannot start any token (indent YAML with spaces, not tabs)"
    )


def test_duplicate_key_names_file_and_line() -> None:
    text = insert_after(TWO_SESSIONS, SESSION_1, "peerAsn: 64513")
    assert problem(text) == 't.yaml:24: duplicate key "peerAsn" with value "64513" (original value: "12076")'


def test_more_than_one_document() -> None:
    assert problem("mcr: {routerId: 192.0.2.1}\n---\nvxcs: []\n") == (
        "t.yaml:2: YAML syntax error: expected a single document in the stream but found another document"
    )


# A JSON config, indented with tabs the way editors write it.
JSON_CONFIG = """\
{
\t"mcr": {"productName": "json-mcr", "mcrAsn": 133937},
\t"prefixFilterLists": [
\t\t{
\t\t\t"id": 1,
\t\t\t"description": "v4",
\t\t\t"addressFamily": "IPv4",
\t\t\t"entries": [{"action": "permit", "prefix": "10.0.0.0/8", "ge": "8", "le": "24"}]
\t\t}
\t],
\t"vxcs": [
\t\t{
\t\t\t"productName": "aws",
\t\t\t"interface": "eth1",
\t\t\t"vlan": 100,
\t\t\t"vrouter": {
\t\t\t\t"interfaces": [
\t\t\t\t\t{
\t\t\t\t\t\t"ipAddresses": ["192.0.2.1/30"],
\t\t\t\t\t\t"bgpConnections": [
\t\t\t\t\t\t\t{
\t\t\t\t\t\t\t\t"peerAsn": 64512,
\t\t\t\t\t\t\t\t"localIpAddress": "192.0.2.1",
\t\t\t\t\t\t\t\t"peerIpAddress": "192.0.2.2",
\t\t\t\t\t\t\t\t"importWhitelist": "v4",
\t\t\t\t\t\t\t\t"shutdown": false
\t\t\t\t\t\t\t}
\t\t\t\t\t\t]
\t\t\t\t\t}
\t\t\t\t]
\t\t\t}
\t\t}
\t]
}
"""


def test_json_with_tabs_is_accepted() -> None:
    config = parse_config(JSON_CONFIG, "t.json")
    assert config.mcr.product_name == "json-mcr"
    assert config.prefix_filter_lists[0].entries[0].le == 24
    assert [str(conn.peer_ip_address) for _, _, conn in config.connections()] == ["192.0.2.2"]


def test_json_problems_have_the_right_lines() -> None:
    text = JSON_CONFIG.replace('"peerAsn": 64512', '"peerAsn": 0').replace('"vlan": 100', '"vlan": 1')
    assert problems(text, "t.json") == [
        "t.json:15: vxcs[0].vlan: 1 is not a usable VLAN: use 2..4093, or -1 for untagged",
        "t.json:22: vxcs[0].vrouter.interfaces[0].bgpConnections[0].peerAsn: 0 is out of range 1..4294967295",
    ]


def test_json_rule_problems_have_the_right_lines() -> None:
    text = JSON_CONFIG.replace('"importWhitelist": "v4"', '"importWhitelist": "v9"')
    assert problems(text, "t.json") == [
        "t.json:25: vxcs[0].vrouter.interfaces[0].bgpConnections[0].importWhitelist: "
        "no prefix filter list has id or description 'v9' (lists: 1 (v4))"
    ]


def test_json_syntax_error_names_the_line() -> None:
    text = JSON_CONFIG.replace('"peerIpAddress": "192.0.2.2",', '"peerIpAddress": "192.0.2.2"')
    assert problems(text, "t.json") == [
        "t.json:25: YAML syntax error: while parsing a flow mapping expected ',' or '}', but got '<scalar>'"
    ]


def test_json_duplicate_key() -> None:
    text = JSON_CONFIG.replace('"vlan": 100,', '"vlan": 100,\n\t\t\t"vlan": 200,')
    assert problems(text, "t.json") == ['t.json:16: duplicate key "vlan" with value "200" (original value: "100")']


def test_several_problems_are_reported_in_line_order() -> None:
    # vxcs before mcr: the model checks mcr first, the report still follows the file.
    text = """\
vxcs:
  - productName: aws
    interface: eth1
    vlan: 0
    vrouter:
      interfaces:
        - ipAddresses: [192.0.2.1/30]
          bgpConnections:
            - {peerAsn: 64512, localIpAddress: 192.0.2.1, peerIpAddress: 192.0.2.2, medOut: -5}
prefixFilterLists:
  - {id: 1, description: l, addressFamily: IPv5, entries: [{action: permit, prefix: 10.0.0.0/8}]}
mcr:
  mcrAsn: 23456
  bogus: 1
"""
    session = "vxcs[0].vrouter.interfaces[0].bgpConnections[0]"
    assert problems(text) == [
        "t.yaml:4: vxcs[0].vlan: 0 is not a usable VLAN: use 2..4093, or -1 for untagged",
        f"t.yaml:9: {session}.medOut: -5 is out of range 0..4294967295",
        "t.yaml:11: prefixFilterLists[0].addressFamily: 'IPv5' is not one of IPv4, IPv6",
        "t.yaml:13: mcr.mcrAsn: 23456 is reserved (AS_TRANS, RFC 6793) and cannot be a local ASN",
        "t.yaml:14: mcr.bogus: unknown field 'bogus'",
    ]


def test_several_rule_problems_at_once() -> None:
    text = insert_after(TWO_SESSIONS, SESSION_1, "importWhitelist: 9", "permitExportTo: [192.0.2.5]")
    text = set_line(text, 8, "description: v4")
    assert problems(text) == [
        "t.yaml:8: prefixFilterLists[1].description: 'v4' describes 2 lists",
        f"t.yaml:24: {SESSION_1_PATH}.importWhitelist: no prefix filter list has id or description 9 "
        "(lists: 1 (v4), 2 (v4))",
        f"t.yaml:25: {SESSION_1_PATH}.permitExportTo[0]: 192.0.2.5 is not the peer address of any BGP connection",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the config is empty: it needs at least mcr: or vxcs:"),
        ("# nothing but a comment\n", "the config is empty: it needs at least mcr: or vxcs:"),
        ("- mcr\n", "the config is a list; it must be a mapping (with mcr:, vxcs:, ...)"),
        ("hello\n", "the config is 'hello'; it must be a mapping (with mcr:, vxcs:, ...)"),
    ],
    ids=["empty", "comment-only", "list", "scalar"],
)
def test_the_root_must_be_a_mapping(text: str, message: str) -> None:
    assert problem(text) == f"t.yaml:1: {message}"


def test_a_key_that_is_not_a_string() -> None:
    assert problem("mcr: {routerId: 192.0.2.1}\n1: x\n") == "t.yaml:2: 1: unknown field '1'"


def test_a_null_section() -> None:
    assert problem("mcr:\n") == "t.yaml:1: mcr: null where a mapping is expected"


def test_an_anchored_boolean_is_a_boolean() -> None:
    # ruamel keeps `&a true` as an int subclass; it must still pass a strict bool field.
    text = "mcr: {routerId: 192.0.2.1, bgpShutdownDefault: &off false, advertiseConnected: *off}\n"
    assert problems(text) == []


def test_text_with_a_control_character() -> None:
    text = 'mcr: {routerId: 192.0.2.1, productName: "lab\\e[31m"}\n'
    assert problem(text) == "t.yaml:1: mcr.productName: has an unprintable character U+001B at position 4"


def test_nesting_too_deep_is_a_problem_not_a_crash() -> None:
    assert problem("mcr: " + "[" * 500 + "]" * 500 + "\n") == "t.yaml:1: the config is nested too deeply"


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(insert_after(TWO_SESSIONS, SESSION_1, "medIn: 4294967296"), encoding="utf-8")
    assert load_problems(path) == [f"{path}:24: {SESSION_1_PATH}.medIn: 4294967296 is out of range 0..4294967295"]


def test_unreadable_files_give_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "image.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert load_problems(tmp_path / "missing.yaml") == [
        f"{tmp_path}/missing.yaml: cannot read the config: No such file or directory"
    ]
    assert load_problems(tmp_path) == [f"{tmp_path}: cannot read the config: Is a directory"]
    assert load_problems(binary) == [
        f"{binary}: cannot read the config: 'utf-8' codec can't decode byte 0x89 in position 0: invalid start byte"
    ]
