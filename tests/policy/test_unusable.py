"""Properties of the martian and next-hop rules (docs/MCR-SEMANTICS.md 2.7, mcrd/policy/mcr.py); the cases as data
are in cases/unusable.yaml."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.policy import mcr

MARTIANS = [ipaddress.ip_network(block) for block in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4",
                                                      "::/128", "::1/128", "ff00::/8", "fe80::/10")]
# 224.0.0.0/3 is 224.0.0.0/4 and 240.0.0.0/4 together: a prefix inside it lies in martian space only.
UNIONS = [ipaddress.ip_network("224.0.0.0/3")]

_V4 = st.builds(lambda a, n: ipaddress.IPv4Network((a, n), strict=False), st.integers(0, 2**32 - 1),
                st.integers(0, 32))
_V6 = st.builds(lambda a, n: ipaddress.IPv6Network((a, n), strict=False),
                st.integers(0, 2**128 - 1) | st.sampled_from([0, 1, 0xFF << 120, 0xFE8 << 116]).flatmap(
                    lambda base: st.integers(0, 2**64).map(lambda low: base | low)),
                st.integers(0, 128))


@settings(max_examples=3000)
@given(net=_V4 | _V6)
def test_a_prefix_is_a_martian_exactly_when_it_lies_inside_a_martian_block(
        net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    inside = [block for block in MARTIANS + UNIONS
              if block.version == net.version and net.subnet_of(block)]  # type: ignore[arg-type]
    got = mcr.martian(str(net))
    assert (got is not None) == bool(inside), (net, got)
    if got is not None:
        assert ipaddress.ip_network(got) in MARTIANS
        assert ipaddress.ip_network(got).overlaps(net)


@given(address=st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_a_next_hop_is_refused_when_it_is_no_host_address(address: ipaddress.IPv4Address) -> None:
    refused = mcr.next_hop_rejection(str(address), frozenset()) is not None
    host = not (address.is_multicast or address.is_loopback or address in ipaddress.IPv4Network("0.0.0.0/8")
                or address in ipaddress.IPv4Network("240.0.0.0/4"))
    assert refused != host


def test_own_addresses_are_refused_as_next_hops_and_as_host_routes() -> None:
    own = frozenset({"169.254.1.1", "2001:db8::1"})
    rejected = mcr.next_hop_rejection("169.254.1.1", own)
    assert rejected is not None
    assert rejected.code == "next-hop"
    assert mcr.next_hop_rejection("169.254.1.2", own) is None
    hosts = mcr.own_host_prefixes(own)
    assert hosts == {"169.254.1.1/32", "2001:db8::1/128"}
    assert [mcr.prefix_rejection(p, hosts).code for p in sorted(hosts)] == ["own-address"] * 2  # type: ignore[union-attr]
