"""ExaBGP with a chosen subset of mcrd's fixes, for the option study: `python bench/hub/exabgp_fixes.py server CONF`.

`EXABGP_BENCH_FIXES`: a comma-separated subset of `mcrd.bgp.exabgp_launch.FIXES` (those of the announce path: `poll`,
`copy`, `sort`); empty or unset runs ExaBGP stock. mcrd itself starts ExaBGP with all of them or none
(`python -m mcrd.bgp.exabgp_launch`).
"""

from __future__ import annotations

import dataclasses
import os

from mcrd.bgp import exabgp_launch

if __name__ == "__main__":
    chosen = [name for name in os.environ.get("EXABGP_BENCH_FIXES", "").split(",") if name]
    if chosen:
        report = exabgp_launch.install(chosen)
    else:
        report = exabgp_launch.Report(exabgp_launch.installed_release(), (), "none chosen", exabgp_launch.SPEED_STOCK)
    # The option study compares the fixes at one reactor speed, the stock one (docs/BENCHMARK-HUB.md).
    exabgp_launch.publish(dataclasses.replace(report, reactor_speed=exabgp_launch.SPEED_STOCK))
    exabgp_launch.run_exabgp()
