"""KernelFib against a real kernel, in a namespace of its own (root only); checked with `ip -j route show proto 252`."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from mcrd.fib.kernel import KernelFib
from mcrd.fib.netlink import RouteSocket
from mcrd.rib.effects import FibInstall, FibNextHop
from tests.fib.lab import NEEDS_ROOT, Lab, in_netns, ip_json, our_routes, unique, veth_lab

pytestmark = NEEDS_ROOT


@pytest.fixture
def lab() -> Iterator[Lab]:
    with veth_lab("fib") as lab:
        yield lab


@pytest.fixture
def fib(lab: Lab) -> Iterator[KernelFib]:
    """A KernelFib whose socket was opened in the lab namespace (a socket stays in the namespace it was made in)."""
    fib = in_netns(lab.ns, KernelFib)
    try:
        yield fib
    finally:
        fib.close()


def hops(lab: Lab) -> tuple[FibNextHop, FibNextHop]:
    return FibNextHop(lab.gw4, lab.near), FibNextHop(lab.gw6, lab.near)


def test_install_replace_remove_ipv4_and_ipv6(lab: Lab, fib: KernelFib) -> None:
    v4, v6 = hops(lab)
    errors = fib.apply([FibInstall(v4, ("10.10.0.0/16", "10.20.0.0/16", "0.0.0.0/0")),
                        FibInstall(v6, ("2001:db8:30::/48",))], [])
    assert errors == []
    routes = our_routes(lab.ns)
    assert set(routes) == {"10.10.0.0/16", "10.20.0.0/16", "default", "2001:db8:30::/48"}
    assert routes["10.10.0.0/16"]["gateway"] == lab.gw4
    assert routes["10.10.0.0/16"]["dev"] == lab.near
    assert routes["10.10.0.0/16"]["metric"] == 20
    assert routes["2001:db8:30::/48"]["gateway"] == lab.gw6
    assert fib.dump() == {"10.10.0.0/16": v4, "10.20.0.0/16": v4, "0.0.0.0/0": v4, "2001:db8:30::/48": v6}

    other4, other6 = FibNextHop("192.0.2.3", lab.near), FibNextHop("2001:db8:1::3", "")
    assert fib.apply([FibInstall(other4, ("10.10.0.0/16",)), FibInstall(other6, ("2001:db8:30::/48",))], []) == []
    routes = our_routes(lab.ns)
    assert routes["10.10.0.0/16"]["gateway"] == "192.0.2.3"
    assert routes["2001:db8:30::/48"]["gateway"] == "2001:db8:1::3"
    assert len(routes) == 4  # replaced, not added next to the old one

    assert fib.apply([], ["10.20.0.0/16", "2001:db8:30::/48", "0.0.0.0/0"]) == []
    assert set(our_routes(lab.ns)) == {"10.10.0.0/16"}
    assert fib.apply([], ["10.20.0.0/16", "2001:db8:99::/48"]) == []  # already gone: not a failure


def test_routes_of_other_protocols_are_never_touched(lab: Lab, fib: KernelFib) -> None:
    v4, v6 = hops(lab)
    lab.ip("route", "add", "10.99.0.0/24", "via", lab.gw4, "proto", "static")
    lab.ip("route", "add", "10.98.0.0/24", "via", "192.0.2.3", "proto", "static")  # a prefix mcrd also installs
    lab.ip("-6", "route", "add", "2001:db8:99::/48", "via", lab.gw6, "proto", "static")
    lab.ip("route", "add", "10.97.0.0/24", "via", lab.gw4, "proto", "bird")
    before = ip_json(lab.ns, "route", "show", "proto", "static") + ip_json(lab.ns, "-6", "route", "show", "proto",
                                                                          "static")

    assert fib.apply([FibInstall(v4, ("10.98.0.0/24", "10.1.0.0/16")), FibInstall(v6, ("2001:db8:1:1::/64",))],
                     []) == []
    assert set(fib.dump()) == {"10.98.0.0/24", "10.1.0.0/16", "2001:db8:1:1::/64"}
    static_98 = [r for r in ip_json(lab.ns, "route", "show", "10.98.0.0/24") if r.get("protocol") == "static"]
    assert static_98
    assert static_98[0]["gateway"] == "192.0.2.3"

    result = fib.reconcile({"10.1.0.0/16": v4})
    assert (result.kept, result.removed, result.added, result.errors) == (1, 2, 0, ())
    assert fib.apply([], ["10.99.0.0/24", "2001:db8:99::/48", "10.97.0.0/24"]) == []  # not ours: nothing happens
    assert fib.flush().removed == 1  # 10.1.0.0/16; the static 10.98.0.0/24 stays
    assert our_routes(lab.ns) == {}
    after = ip_json(lab.ns, "route", "show", "proto", "static") + ip_json(lab.ns, "-6", "route", "show", "proto",
                                                                         "static")
    assert after == before
    assert [r["dst"] for r in ip_json(lab.ns, "route", "show", "proto", "bird")] == ["10.97.0.0/24"]


def test_reconcile_keeps_replaces_and_removes_leftovers(lab: Lab, fib: KernelFib) -> None:
    v4, v6 = hops(lab)
    # What an earlier run left behind, made with ip(8) so that nothing here depends on the code under test:
    for prefix, gateway in (("10.1.0.0/16", lab.gw4), ("10.2.0.0/16", lab.gw4), ("10.3.0.0/16", lab.gw4)):
        lab.ip("route", "add", prefix, "via", gateway, "dev", lab.near, "proto", "252", "metric", "20")
    lab.ip("-6", "route", "add", "2001:db8:5::/48", "via", lab.gw6, "dev", lab.near, "proto", "252", "metric", "20")
    lab.ip("route", "add", "10.4.0.0/16", "via", lab.gw4, "proto", "252", "metric", "50")  # an older metric

    result = fib.reconcile({
        "10.1.0.0/16": v4,  # same: kept
        "10.2.0.0/16": FibNextHop("192.0.2.3", lab.near),  # different: replaced
        "2001:DB8:5::/48": FibNextHop(lab.gw6, ""),  # same, spelled otherwise, no interface named: kept
        "10.4.0.0/16": v4,  # ours with another metric: removed, then added with ours
        "2001:db8:6::/48": v6,  # new: added
    })  # 10.3.0.0/16 is not wanted: removed
    assert (result.kept, result.replaced, result.added, result.removed, result.errors) == (2, 1, 2, 2, ())
    routes = our_routes(lab.ns)
    assert set(routes) == {"10.1.0.0/16", "10.2.0.0/16", "10.4.0.0/16", "2001:db8:5::/48", "2001:db8:6::/48"}
    assert routes["10.2.0.0/16"]["gateway"] == "192.0.2.3"
    assert {r["metric"] for r in routes.values()} == {20}

    again = fib.reconcile(fib.dump())
    assert (again.kept, again.added, again.replaced, again.removed) == (5, 0, 0, 0)
    assert fib.reconcile({}).removed == 5
    assert our_routes(lab.ns) == {}


def test_failures_are_reported_per_route_and_the_rest_goes_in(lab: Lab, fib: KernelFib) -> None:
    v4, v6 = hops(lab)
    missing = unique("mvx")
    errors = fib.apply([
        FibInstall(v4, ("10.1.0.0/16", "10.2.0.0/16")),
        FibInstall(FibNextHop(lab.gw4, missing), ("10.3.0.0/16",)),  # no such interface (yet)
        FibInstall(FibNextHop("198.51.100.1", lab.near), ("10.4.0.0/16",)),  # gateway not on the link
        FibInstall(v4, ("10.5.0.1/16", "not-a-prefix", "2001:db8:7::/48")),  # host bits, junk, family
        FibInstall(v6, ("2001:db8:8::/48",)),
    ], [])
    by_prefix = {e.prefix: e for e in errors}
    assert set(by_prefix) == {"10.3.0.0/16", "10.4.0.0/16", "10.5.0.1/16", "not-a-prefix", "2001:db8:7::/48"}
    assert by_prefix["10.3.0.0/16"].errno == errno.ENODEV
    assert str(by_prefix["10.3.0.0/16"]) == (
        f"cannot install 10.3.0.0/16 via {lab.gw4} dev {missing}: interface {missing} does not exist"
    )
    assert by_prefix["10.4.0.0/16"].errno == errno.ENETUNREACH
    assert by_prefix["10.4.0.0/16"].message == "Network is unreachable (Nexthop has invalid gateway)"
    assert by_prefix["10.5.0.1/16"].errno == errno.EINVAL
    assert "Invalid prefix" in by_prefix["10.5.0.1/16"].message
    assert set(our_routes(lab.ns)) == {"10.1.0.0/16", "10.2.0.0/16", "2001:db8:8::/48"}


def test_an_interface_that_appears_later_or_comes_back_with_a_new_index(lab: Lab, fib: KernelFib) -> None:
    late, peer = unique("mvl"), unique("mvp")
    hop = FibNextHop("198.51.100.2", late)
    try:
        assert [e.errno for e in fib.apply([FibInstall(hop, ("10.50.0.0/16",))], [])] == [errno.ENODEV]
        for _ in range(2):  # created, then deleted and created again: a new ifindex behind the cached name
            lab.ip("link", "del", late, check=False)
            lab.ip("link", "add", late, "type", "veth", "peer", "name", peer)
            lab.ip("link", "set", late, "up")
            lab.ip("link", "set", peer, "up")
            lab.ip("addr", "add", "198.51.100.1/24", "dev", late)
            assert fib.apply([FibInstall(hop, ("10.50.0.0/16",))], []) == []
            assert our_routes(lab.ns)["10.50.0.0/16"]["dev"] == late
    finally:
        lab.ip("link", "del", late, check=False)


def test_acks_lost_to_a_full_receive_buffer_are_sent_again(lab: Lab) -> None:
    fib = in_netns(lab.ns, lambda: KernelFib(route_socket=RouteSocket(rcvbuf=4096, max_batch=3000)))
    try:
        v4, _ = hops(lab)
        prefixes = tuple(f"10.{n >> 8}.{n & 255}.0/24" for n in range(6000))
        assert fib.apply([FibInstall(v4, prefixes)], []) == []
        assert fib._sock.overruns > 0  # the path under test was taken
        assert len(our_routes(lab.ns)) == 6000
        assert fib.apply([], prefixes) == []  # the deletes sent twice come back ESRCH: not failures
        assert our_routes(lab.ns) == {}
    finally:
        fib.close()


def test_ten_thousand_routes_each_way(lab: Lab, fib: KernelFib) -> None:
    v4, v6 = hops(lab)
    p4 = tuple(f"10.{n >> 8}.{n & 255}.0/24" for n in range(5000))
    p6 = tuple(f"2001:db8:{n:x}::/48" for n in range(5000))
    assert fib.apply([FibInstall(v4, p4), FibInstall(v6, p6)], []) == []
    assert len(fib.dump()) == 10_000
    flushed = fib.flush()
    assert (flushed.removed, flushed.errors) == (10_000, ())
    assert fib.dump() == {}


def test_removes_in_any_order_and_batches_cut_by_size_remove_exactly_those(lab: Lab) -> None:
    # Removes go to the kernel in an order scattered over the address space (kernel.spread), in batches cut by
    # bytes as well as by count (a 600-byte limit: a few routes a batch): exactly the removed routes go, every
    # install of the same call goes in, and a failure is named by its own prefix.
    sock = in_netns(lab.ns, lambda: RouteSocket(ack_every=False))
    sock.max_bytes = 600
    fib = in_netns(lab.ns, lambda: KernelFib(route_socket=sock))
    try:
        v4, v6 = hops(lab)
        p4 = tuple(f"10.{n >> 8}.{n & 255}.0/24" for n in range(600))
        p6 = tuple(f"2001:db8:{n:x}::/48" for n in range(100))
        assert fib.apply([FibInstall(v4, p4), FibInstall(v6, p6)], []) == []
        gone = p4[::3] + p6[::2]
        new = tuple(f"10.90.{n}.0/24" for n in range(50))
        far = FibNextHop("198.51.100.1", lab.near)  # not on the link: ENETUNREACH
        errors = fib.apply([FibInstall(v4, new[:20]), FibInstall(far, ("10.91.0.0/24",)), FibInstall(v4, new[20:])],
                           gone)
        assert [(e.prefix, e.op, e.errno) for e in errors] == [("10.91.0.0/24", "install", errno.ENETUNREACH)]
        assert set(our_routes(lab.ns)) == (set(p4) | set(p6) | set(new)) - set(gone)
        assert fib.dump().keys() == (set(p4) | set(p6) | set(new)) - set(gone)
    finally:
        fib.close()


def test_acks_for_failures_only_still_name_each_failure_the_last_of_a_batch_too(lab: Lab) -> None:
    # KernelFib's own socket asks the kernel for an ack on the last message of a batch only: the kernel reports
    # failures all the same, and the last ack says the batch is done, whether that message went in or not.
    fib = in_netns(lab.ns, lambda: KernelFib(route_socket=RouteSocket(max_batch=100, ack_every=False)))
    try:
        v4, _ = hops(lab)
        far = FibNextHop("198.51.100.1", lab.near)  # not on the link: ENETUNREACH
        good = tuple(f"10.60.{n}.0/24" for n in range(250))
        bad = ("10.61.0.0/24", "10.61.1.0/24", "10.61.2.0/24")
        # Batches of 100: the failures fall in the middle of the first, at the end of the third (the last message).
        errors = fib.apply([FibInstall(v4, good[:50]), FibInstall(far, bad[:1]), FibInstall(v4, good[50:]),
                            FibInstall(far, bad[1:])], [])
        assert sorted((e.prefix, e.errno) for e in errors) == [(p, errno.ENETUNREACH) for p in bad]
        assert set(our_routes(lab.ns)) == set(good)
        assert fib._sock.overruns == 0
    finally:
        fib.close()


def test_failure_reports_lost_to_a_full_receive_buffer_are_asked_for_again(lab: Lab) -> None:
    # Thousands of failures in one batch overflow a tiny receive buffer: the batch goes again with every ack, so
    # each failure is still named and every good route is in.
    fib = in_netns(lab.ns, lambda: KernelFib(route_socket=RouteSocket(rcvbuf=4096, max_batch=3000, ack_every=False)))
    try:
        v4, _ = hops(lab)
        far = FibNextHop("198.51.100.1", lab.near)
        bad = tuple(f"10.{n >> 8}.{n & 255}.0/24" for n in range(4000))
        good = tuple(f"10.200.{n}.0/24" for n in range(200))
        errors = fib.apply([FibInstall(far, bad), FibInstall(v4, good)], [])
        assert fib._sock.overruns > 0  # the path under test was taken
        assert sorted(e.prefix for e in errors) == sorted(bad)
        assert {e.errno for e in errors} == {errno.ENETUNREACH}
        assert set(our_routes(lab.ns)) == set(good)
    finally:
        fib.close()
