"""`LocRib.drop` (the bulk withdrawal) leaves every table as `choose(prefix, [])` one prefix at a time does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcrd.rib.decision import Step
from mcrd.rib.effects import FibNextHop
from mcrd.rib.entry import RouteEntry, Source
from mcrd.rib.loc_rib import SAME, LocRib
from mcrd.route.attributes import PathAttributes

PREFIXES = [f"10.0.{i}.0/24" for i in range(8)]
SOURCE = Source("192.0.2.1", "NON_CLOUD", True, 64512, (4, 1))


def entry(n: int) -> RouteEntry:
    attrs = PathAttributes(next_hop=f"192.0.2.{n}")
    return RouteEntry(SOURCE, attrs, attrs, 0.0, (4, n), "eth1", FibNextHop(f"192.0.2.{n}", "eth1"))


ENTRIES = [entry(n) for n in range(1, 4)]
slot = st.sampled_from(PREFIXES)
state = st.fixed_dictionaries({
    "best": st.dictionaries(slot, st.sampled_from(ENTRIES)),
    "fib_missing": st.sets(slot),  # a best route the kernel is not given (a connected subnet)
    "reasons": st.dictionaries(slot, st.sampled_from([Step.AS_PATH, Step.MED])),
    "best_before": st.dictionaries(slot, st.none() | st.sampled_from(ENTRIES)),
    "fib_before": st.dictionaries(slot, st.none() | st.sampled_from([e.fib for e in ENTRIES])),
})


def loc_rib(s: dict) -> LocRib:  # type: ignore[type-arg]
    loc = LocRib()
    loc.best = dict(s["best"])
    loc.fib = {p: e.fib for p, e in s["best"].items() if p not in s["fib_missing"]}
    loc.reasons = dict(s["reasons"])
    loc.best_before = dict(s["best_before"])
    loc.fib_before = dict(s["fib_before"])
    return loc


def tables(loc: LocRib) -> tuple[object, ...]:
    return (loc.best, loc.fib, loc.reasons, loc.best_before, loc.fib_before)


@given(state, st.lists(slot, unique=True))
def test_drop_is_choose_without_candidates(s: dict, prefixes: list[str]) -> None:  # type: ignore[type-arg]
    one, bulk = loc_rib(s), loc_rib(s)
    changed = [p for p in prefixes if one.choose(p, []) is not SAME]
    assert bulk.drop(prefixes) == changed
    assert tables(bulk) == tables(one)
