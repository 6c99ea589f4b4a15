"""The struct encoder, checked by decoding its bytes with pyroute2's own parser; the decoders, fed by pyroute2."""

from __future__ import annotations

import socket
import struct

import pytest
from pyroute2.netlink import nlmsgerr  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # type: ignore[import-untyped]

from mcrd.fib import netlink as nl
from mcrd.fib.kernel import FibError, _same, canonical_prefix
from mcrd.rib.effects import FibNextHop


def decoded(data: bytes) -> rtmsg:
    msg = rtmsg(data)
    msg.decode()
    assert msg["header"]["length"] == len(data)
    return msg


def attr_list(msg: rtmsg) -> list[tuple[str, object]]:
    return [(slot[0], slot[1]) for slot in msg["attrs"]]



# The requests as mcrd.fib.kernel builds them (_Batch.install, _Batch.remove, KernelFib._next_hop), from the same
# parts: these tests check those parts.
def encode_newroute(seq: int, prefix: str, gateway: str, oif: int, metric: int = nl.MCRD_METRIC) -> bytes:
    scope = nl.RT_SCOPE_UNIVERSE if gateway else nl.RT_SCOPE_LINK
    body = nl.route_body(prefix, nl.nexthop_attrs(gateway, oif, metric), scope=scope)
    return nl.frame(nl.RTM_NEWROUTE, nl.NEW_FLAGS, seq, body)


def encode_delroute(seq: int, prefix: str, metric: int = nl.MCRD_METRIC) -> bytes:
    tail = nl.RTA_U32.pack(8, nl.RTA_PRIORITY, metric)
    return nl.frame(nl.RTM_DELROUTE, nl.DEL_FLAGS, seq, nl.route_body(prefix, tail, delete=True))

def test_newroute_ipv4_decodes_back() -> None:
    msg = decoded(encode_newroute(7, "10.20.0.0/16", "192.0.2.2", 3))
    assert msg["header"]["type"] == nl.RTM_NEWROUTE == 24
    assert msg["header"]["flags"] == 0x1 | 0x4 | 0x400 | 0x100  # REQUEST | ACK | CREATE | REPLACE
    assert msg["header"]["sequence_number"] == 7
    assert (msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["scope"], msg["type"]) == (
        socket.AF_INET, 16, 254, 252, 0, 1
    )
    assert attr_list(msg) == [("RTA_DST", "10.20.0.0"), ("RTA_GATEWAY", "192.0.2.2"), ("RTA_OIF", 3),
                            ("RTA_PRIORITY", nl.MCRD_METRIC)]


def test_newroute_ipv6_decodes_back() -> None:
    msg = decoded(encode_newroute(8, "2001:db8:30::/48", "fe80::1", 12, metric=50))
    assert (msg["family"], msg["dst_len"], msg["table"], msg["proto"]) == (socket.AF_INET6, 48, 254, 252)
    assert attr_list(msg) == [("RTA_DST", "2001:db8:30::"), ("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 12),
                            ("RTA_PRIORITY", 50)]


def test_newroute_without_gateway_or_interface() -> None:
    direct = decoded(encode_newroute(1, "198.51.100.0/24", "", 4))
    assert direct["scope"] == nl.RT_SCOPE_LINK
    assert direct.get_attr("RTA_GATEWAY") is None
    assert direct.get_attr("RTA_OIF") == 4
    gateway_only = decoded(encode_newroute(1, "198.51.100.0/24", "192.0.2.9", 0))
    assert gateway_only.get_attr("RTA_OIF") is None
    assert gateway_only["scope"] == nl.RT_SCOPE_UNIVERSE


def test_default_route_has_no_dst_attribute() -> None:
    msg = decoded(encode_newroute(1, "0.0.0.0/0", "192.0.2.2", 2))
    assert msg["dst_len"] == 0
    assert msg.get_attr("RTA_DST") is None


def test_delroute_matches_protocol_and_metric_not_next_hop() -> None:
    for prefix, family in (("10.0.0.0/8", socket.AF_INET), ("2001:db8::/32", socket.AF_INET6)):
        msg = decoded(encode_delroute(9, prefix))
        assert msg["header"]["type"] == nl.RTM_DELROUTE == 25
        assert msg["header"]["flags"] == 0x1 | 0x4
        assert (msg["family"], msg["proto"], msg["table"], msg["scope"]) == (family, 252, 254, nl.RT_SCOPE_NOWHERE)
        assert [name for name, _ in attr_list(msg)] == ["RTA_DST", "RTA_PRIORITY"]


def test_many_messages_in_one_buffer_split_back() -> None:
    data = b"".join(encode_newroute(n, f"10.{n}.0.0/16", "192.0.2.2", 2) for n in range(1, 101))
    parsed = list(nl.messages(data))
    assert [seq for _, _, seq, _ in parsed] == list(range(1, 101))
    assert {kind for kind, _, _, _ in parsed} == {nl.RTM_NEWROUTE}


@pytest.mark.parametrize("bad", ["10.0.0.0", "10.0.0.0/33", "2001:db8::/129", "10.0.0/8", "x/8", "10.0.0.0/a",
                                 "10.0.0.0/-1", "10.0.0.0/ 8", "10.0.0.0/٣"])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a prefix"):
        nl.parse_prefix(bad)


def test_route_bodies_are_each_prefixs_route_body_and_none_where_it_is_not_one() -> None:
    # The batch encoder caches the rtmsg head by length as written: every spelling and family, mixed, in any order,
    # must give exactly what route_body gives alone (or None where route_body refuses the prefix).
    tail = nl.RTA_U32.pack(8, nl.RTA_PRIORITY, nl.MCRD_METRIC)
    prefixes = ["10.1.0.0/24", "2001:db8::/32", "10.2.0.0/24", "0.0.0.0/0", "10.3.0.0/08", "10.0.0.0/33", "x/24",
                "2001:db8:1::/32", "10.4.0.0/24", "::/0", "2001:db8::/129", "10.5.0.0/16", "10.0.0.0", "10.6.0.0/24",
                "2001:db8:2::/48", "10.9.9.9/32", "10.7.0.0/8", "10.0.0.0/a", "10.8.0.0/٣"]
    for delete, scope in ((False, nl.RT_SCOPE_UNIVERSE), (False, nl.RT_SCOPE_LINK), (True, nl.RT_SCOPE_UNIVERSE)):
        want: list[bytes | None] = []
        for prefix in prefixes:
            try:
                want.append(nl.route_body(prefix, tail, delete=delete, scope=scope))
            except ValueError:
                want.append(None)
        assert nl.route_bodies(prefixes, tail, delete=delete, scope=scope) == want
        assert want.count(None) == 6


def test_decode_route_reads_what_pyroute2_encodes() -> None:
    msg = rtmsg()
    msg["header"]["type"] = nl.RTM_NEWROUTE
    msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["type"] = socket.AF_INET6, 64, 254, 252, 1
    msg["attrs"] = [("RTA_TABLE", 254), ("RTA_DST", "2001:db8:1:2::"), ("RTA_GATEWAY", "fe80::2"), ("RTA_OIF", 5),
                    ("RTA_PRIORITY", 20)]
    msg.encode()
    ((kind, _, _, payload),) = nl.messages(msg.data)
    assert kind == nl.RTM_NEWROUTE
    assert nl.decode_route(payload) == ("2001:db8:1:2::/64", "fe80::2", 5, 20, 252)


def test_decode_route_skips_other_tables() -> None:
    msg = rtmsg()
    msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["type"] = socket.AF_INET, 8, 252, 252, 1
    msg["attrs"] = [("RTA_TABLE", 1000), ("RTA_DST", "10.0.0.0")]
    msg.encode()
    ((_, _, _, payload),) = nl.messages(msg.data)
    assert nl.decode_route(payload) is None


def test_decode_ack_with_extended_ack_text() -> None:
    text = b"Nexthop has invalid gateway\0"
    tlv = struct.pack("=HH", 4 + len(text), 1) + text + b"\0" * (-len(text) % 4)
    payload = struct.pack("=i", -101) + nl.HDR.pack(40, nl.RTM_NEWROUTE, 5, 3, 0) + tlv
    data = nl.frame(nl.NLMSG_ERROR, nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS, 3, payload)
    ((kind, flags, seq, body),) = nl.messages(data)
    assert (kind, seq) == (nl.NLMSG_ERROR, 3)
    assert nl.decode_ack(flags, body) == (101, "Nexthop has invalid gateway")


def test_decode_ack_from_pyroute2() -> None:
    msg = nlmsgerr()
    msg["header"]["type"] = nl.NLMSG_ERROR
    msg["header"]["sequence_number"] = 4
    msg["error"] = 0
    msg.encode()
    ((kind, flags, seq, body),) = nl.messages(msg.data)
    assert (kind, seq) == (nl.NLMSG_ERROR, 4)
    assert nl.decode_ack(flags, body)[0] == 0


def test_link_dump_request_decodes_back() -> None:
    msg = ifinfmsg(nl.encode_dump(nl.RTM_GETLINK, socket.AF_UNSPEC, 5))
    msg.decode()
    assert msg["header"]["type"] == nl.RTM_GETLINK
    assert msg["header"]["flags"] == 0x301


def test_route_dump_request_asks_for_table_main_protocol_252() -> None:
    msg = decoded(nl.encode_dump(nl.RTM_GETROUTE, socket.AF_INET6, 5))
    fields = (msg["family"], msg["table"], msg["proto"], msg["dst_len"], msg["scope"])
    assert fields == (socket.AF_INET6, 254, 252, 0, 0)


def test_canonical_prefix_and_next_hop_comparison() -> None:
    assert canonical_prefix("2001:DB8:0:0::/32") == "2001:db8::/32"
    assert canonical_prefix("10.0.0.0/8") == "10.0.0.0/8"
    kernel = ("2001:db8::1", "eth1")  # the kernel's gateway and interface
    assert _same(FibNextHop("2001:DB8::1", "eth1"), *kernel)
    assert _same(FibNextHop("2001:db8::1", ""), *kernel)  # no interface wanted: any will do
    assert not _same(FibNextHop("2001:db8::1", "eth2"), *kernel)
    assert not _same(FibNextHop("2001:db8::2", "eth1"), *kernel)
    assert not _same(FibNextHop("", "eth1"), *kernel)  # direct wanted, a gateway in the kernel
    assert _same(FibNextHop("", "eth1"), "", "eth1")


def test_fib_error_text() -> None:
    error = FibError("10.0.0.0/8", "install", 19, "interface eth9 does not exist", FibNextHop("192.0.2.2", "eth9"))
    assert str(error) == "cannot install 10.0.0.0/8 via 192.0.2.2 dev eth9: interface eth9 does not exist"
