"""Smoke run of the hub benchmark (bench/hub, docs/BENCHMARK-HUB.md): shape S1 (2 spokes x 1,000 prefixes), mcrd as
the hub, one run. The run itself checks set equality: every spoke (observer) must hold exactly the routes MCR
semantics predict (the other spoke's prefixes minus the 4 its import permit list denies), and the hub's kernel exactly
every accepted prefix via the right spoke, after the go signal; then everything must be empty after the withdrawal.
Figures are not judged here (a loaded CI machine), only correctness and that the run finishes."""

from __future__ import annotations

import os

import pytest

from bench.hub import run
from bench.hub.shapes import Topology
from tests.bench import require_bird

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the benchmark builds network namespaces")


def test_s1_smoke_mcrd_reaches_exact_sets_and_empties() -> None:
    require_bird("the hub benchmark")
    args = run.build_parser().parse_args(["--shape", "S1", "--hub", "mcrd", "--stall", "30", "--timeout", "40",
                                          "--setup-timeout", "30", "--settle", "0.2", "--verbose"])
    row = run.run_once(args, 1)
    assert row["ok"], row["error"]
    topo = Topology.build("S1")
    # every observer was verified by a full dump (set equality) and the kernel by a netlink dump
    assert set(row["announce_observer_max_by_spoke_s"]) == {s.name for s in topo.spokes}
    assert row["announce_kernel_s"] is not None
    assert row["withdraw_s"] is not None
    assert row["rss_peak_mib"] > 0
    assert all(len(topo.expected_observer(s)) == 996 for s in topo.spokes)  # 1,000 minus 4 denied
