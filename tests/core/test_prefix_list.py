"""The fast prefix-list matcher against a naive `ipaddress` reference (docs/MCR-SEMANTICS.md 2.2)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.config.model import PrefixFilterList
from mcrd.policy.prefix_list import CompiledPrefixList, parse_prefix


def reference_matches(plist: PrefixFilterList, prefix: str) -> bool:
    """Scan entries in order; the first that contains the route decides; no containing entry is no match."""
    route = ipaddress.ip_network(prefix)
    for entry in plist.entries:
        if route.version != entry.prefix.version:
            continue
        if route.subnet_of(entry.prefix) and entry.effective_ge <= route.prefixlen <= entry.effective_le:  # type: ignore[arg-type]
            return entry.action == "permit"
    return False


def _network(version: int, bits: int, length: int) -> str:
    # Addresses in a small space (top bits from `bits`) so that entries and routes overlap often.
    width = 32 if version == 4 else 128
    base = 0x0A000000 if version == 4 else 0x20010DB8 << 96
    value = base | (bits << (width - 12))
    net = ipaddress.ip_network((value, length), strict=False)
    return str(net)


@st.composite
def entries(draw: st.DrawFn, version: int) -> dict[str, object]:
    width = 32 if version == 4 else 128
    length = draw(st.integers(8, min(width, 20)))
    prefix = _network(version, draw(st.integers(0, 0xFFF)), length)
    entry: dict[str, object] = {"action": draw(st.sampled_from(["permit", "deny"])), "prefix": prefix}
    ge = draw(st.none() | st.integers(length, width))
    le = draw(st.none() | st.integers(ge if ge is not None else length, width))
    if ge is not None:
        entry["ge"] = ge
    if le is not None:
        entry["le"] = str(le) if draw(st.booleans()) else le  # the API sends strings
    return entry


@st.composite
def lists_and_routes(draw: st.DrawFn) -> tuple[PrefixFilterList, list[str]]:
    version = draw(st.sampled_from([4, 6]))
    width = 32 if version == 4 else 128
    plist = PrefixFilterList.model_validate(
        {
            "id": 1,
            "description": "l",
            "addressFamily": f"IPv{version}",
            "entries": draw(st.lists(entries(version), min_size=1, max_size=12)),
        }
    )
    routes = draw(
        st.lists(
            st.builds(
                lambda bits, length: _network(version, bits, length),
                st.integers(0, 0xFFF),
                st.integers(8, min(width, 28)),
            ),
            min_size=1,
            max_size=20,
        )
    )
    return plist, routes


@settings(max_examples=400)
@given(lists_and_routes())
def test_fast_matcher_equals_reference(case: tuple[PrefixFilterList, list[str]]) -> None:
    plist, routes = case
    compiled = CompiledPrefixList(plist)
    for route in routes:
        assert compiled.matches(parse_prefix(route)) == reference_matches(plist, route), route


def _list(*entries: dict[str, object], family: str = "IPv4") -> CompiledPrefixList:
    return CompiledPrefixList(
        PrefixFilterList.model_validate({"id": 7, "description": "vpcs", "addressFamily": family, "entries": entries})
    )


def test_first_containing_entry_decides_even_when_a_later_one_permits() -> None:
    plist = _list(
        {"action": "deny", "prefix": "10.10.5.0/24", "le": 32},
        {"action": "permit", "prefix": "10.10.0.0/16", "le": 32},
    )
    assert not plist.matches(parse_prefix("10.10.5.0/25"))
    assert plist.matches(parse_prefix("10.10.6.0/24"))


def test_omitted_le_means_the_longest_prefix_as_terraform_sends_it() -> None:
    plist = _list({"action": "permit", "prefix": "10.10.0.0/16"})
    assert plist.matches(parse_prefix("10.10.0.0/16"))
    assert plist.matches(parse_prefix("10.10.1.0/24"))
    assert not plist.matches(parse_prefix("10.0.0.0/8"))


def test_rejection_names_the_deciding_entry() -> None:
    plist = _list({"action": "permit", "prefix": "10.10.0.0/16", "le": 16},
                  {"action": "deny", "prefix": "10.0.0.0/8", "le": 32})
    rejection = plist.verdict(parse_prefix("10.20.0.0/16"), permit_list=True, role="import")
    assert rejection is not None
    assert rejection.code == "import-permit-list"
    assert str(rejection) == "import permit list 'vpcs' (id 7): entry 2 (deny 10.0.0.0/8 le 32) denies it"
    missing = plist.verdict(parse_prefix("192.168.0.0/16"), permit_list=True, role="import")
    assert missing is not None
    assert "no entry contains the route" in str(missing)
    assert plist.verdict(parse_prefix("10.10.0.0/16"), permit_list=True, role="import") is None


def test_a_list_never_matches_the_other_family() -> None:
    plist = _list({"action": "permit", "prefix": "2001:db8::/32", "le": 128}, family="IPv6")
    assert plist.matches(parse_prefix("2001:db8:1::/48"))
    assert not plist.matches(parse_prefix("10.0.0.0/8"))
