"""Best-path comparator (docs/MCR-SEMANTICS.md 2.4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcrd.rib.decision import Step, compare, select
from mcrd.rib.effects import FibNextHop
from mcrd.rib.entry import RouteEntry, Source
from mcrd.route.attributes import Origin, PathAttributes


def entry(
    *,
    path: tuple[int, ...] = (65001,),
    origin: Origin = Origin.IGP,
    med: int | None = None,
    kind: str = "bgp",
    ebgp: bool = True,
    router_id: int = 1,
    address: int = 1,
    hop: int = 1,
) -> RouteEntry:
    source = Source(f"peer{address}", kind, ebgp, router_id, (4, address))
    attrs = PathAttributes("10.0.0.1", path, origin, med)
    return RouteEntry(source, attrs, attrs, 0.0, (4, hop), "eth1", FibNextHop("10.0.0.1", "eth1"))


entries = st.builds(
    lambda path, origin, med, kind, ebgp, rid, addr, hop: entry(
        path=path, origin=origin, med=med, kind=kind, ebgp=ebgp, router_id=rid, address=addr, hop=hop
    ),
    st.lists(st.sampled_from([65001, 65002, 65003]), max_size=3).map(tuple),
    st.sampled_from(list(Origin)),
    st.none() | st.integers(0, 3),
    st.sampled_from(["bgp", "bgp", "static"]),
    st.booleans(),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
)


@given(entries, entries)
def test_compare_is_antisymmetric(a: RouteEntry, b: RouteEntry) -> None:
    ab, step_ab = compare(a, b)
    ba, step_ba = compare(b, a)
    assert ab == -ba
    assert step_ab == step_ba


@given(entries)
def test_an_entry_equals_itself(a: RouteEntry) -> None:
    assert compare(a, a) == (0, Step.EQUAL)


def test_steps_in_rfc_order() -> None:
    assert compare(entry(kind="static", path=()), entry(path=()))[1] is Step.LOCAL_ORIGIN
    assert compare(entry(path=(1,), origin=Origin.INCOMPLETE), entry(path=(1, 2)))[0] < 0
    assert compare(entry(origin=Origin.IGP, med=9), entry(origin=Origin.EGP, med=0))[1] is Step.ORIGIN
    assert compare(entry(med=5, address=1), entry(med=3, address=2)) == (1, Step.MED)
    assert compare(entry(ebgp=True, router_id=9), entry(ebgp=False, router_id=1)) == (-1, Step.EBGP)
    assert compare(entry(router_id=2, address=1), entry(router_id=1, address=2)) == (1, Step.ROUTER_ID)
    assert compare(entry(address=1), entry(address=2)) == (-1, Step.PEER_ADDRESS)


def test_med_is_compared_only_between_routes_from_the_same_neighbouring_as() -> None:
    low_med_other_as = entry(path=(65002,), med=0, router_id=2, address=2)
    high_med = entry(path=(65001,), med=100, router_id=1, address=1)
    assert compare(high_med, low_med_other_as) == (-1, Step.ROUTER_ID)


def test_missing_med_counts_as_zero() -> None:
    assert compare(entry(med=None, address=2, router_id=2), entry(med=1, address=1))[0] < 0


def test_as_set_counts_as_one_hop() -> None:
    with_set = entry(path=(1,), router_id=2, address=2)
    with_set.attrs = PathAttributes("10.0.0.1", (1,), as_set=(7, 8, 9))  # 2 hops
    assert compare(with_set, entry(path=(1, 2, 3), router_id=1, address=1)) == (-1, Step.AS_PATH)
    assert compare(with_set, entry(path=(1, 2), router_id=1, address=1)) == (1, Step.ROUTER_ID)


def test_select_names_the_deciding_step() -> None:
    winner, step = select([entry(path=(1, 2), address=1), entry(path=(3,), address=2)])
    assert winner is not None
    assert winner.source.key == "peer2"
    assert step is Step.AS_PATH
    assert select([]) == (None, Step.ONLY_CANDIDATE)
