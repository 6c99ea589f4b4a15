"""A short churn soak (bench/hub/soak.py; the 5-minute run is in docs/PERFORMANCE.md): mcrd as the hub between two
BIRD spokes, each announcing and withdrawing 1,000 prefixes round after round for 25 s. mcrd's RSS must not grow
past a bound after the warm-up, and at the end every spoke's table from the hub and the hub's kernel must be exact."""

from __future__ import annotations

import os

import pytest

from bench.hub import soak
from tests.bench import require_bird

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the soak builds network namespaces")

GROWTH_MIB = 5  # measured: 0.1 MiB over 25 s (19 rounds, 78,000 routes received); the allocator may shift a few


def test_churn_keeps_memory_flat_and_ribs_exact() -> None:
    require_bird("the soak")
    args = soak.build_parser().parse_args(["--seconds", "25", "--warmup", "8", "--every", "0.5",
                                           "--growth", str(GROWTH_MIB), "--stall", "30", "--timeout", "60"])
    result = soak.soak(args)
    print(soak.summary(result, step=5))
    assert result["ok"], result["error"]
    assert result["exact_at_end"]
    assert result["rounds"] >= 3  # churn happened: each round is 2,000 announcements and 2,000 withdrawals
    assert result["flat"], f"mcrd's RSS grew {result['growth_after_warmup_mib']} MiB after the warm-up"
