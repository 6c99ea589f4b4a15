"""Detection time of mcrd's BFD engine against FRR bfdd and BIRD, repeated: ``python -m tests.bfd.measure [N]``.

Root, FRR and BIRD needed (as for the lab tests).  Each trial drops the peer's BFD packets with nft (a silent
failure), times the engine's Down (diag 1) from the moment before the rule, removes the rule and waits for Up again.
Prints min / median / max per peer and family for 300 ms x 3 (a detection time of 900 ms: the figure is 900 ms
minus the time since the peer's last packet, so about 600-900 ms).
"""

from __future__ import annotations

import statistics
import sys

from tests.bfd.lab import (
    BIRD_CONF,
    FRR_BFDD,
    HUB4,
    HUB6,
    PEER4,
    PEER6,
    Engine,
    peer_config,
    setup,
    silent_failure,
    undrop_bfd,
)
from tests.lab.harness import BirdPeer, FrrPeer, Lab, frr_config, missing_requirements


def trials(kind: str, n: int) -> dict[str, list[float]]:
    with Lab(f"bfd-measure-{kind}") as lab:
        s = setup(lab)
        if kind == "frr":
            FrrPeer(s.peer_ns, 65002, PEER4, frr_config(65002, PEER4, []), bfdd=FRR_BFDD)
        else:
            BirdPeer(s.peer_ns, BIRD_CONF)
        engine = Engine(lab, s.hub, [peer_config(s, PEER4, HUB4), peer_config(s, PEER6, HUB6)])
        out: dict[str, list[float]] = {PEER4: [], PEER6: []}
        for _ in range(n):
            for p in out:
                engine.wait_state(p, "Up")
            for p, took in silent_failure(engine, s.peer_ns, list(out), kind.upper()).items():
                out[p].append(took)
            undrop_bfd(s.peer_ns)
        engine.close()
        return out


def main(argv: list[str]) -> int:
    if missing := missing_requirements():
        print("cannot measure: " + "; ".join(missing), file=sys.stderr)
        return 2
    n = int(argv[0]) if argv else 10
    rows = []
    for kind in ("frr", "bird"):
        for peer, times in trials(kind, n).items():
            ms = sorted(t * 1000 for t in times)
            rows.append(f"{kind:5} {peer:12} n={len(ms):3}  min {ms[0]:4.0f}  median {statistics.median(ms):4.0f}  "
                        f"max {ms[-1]:4.0f} ms")
    print("\nrule -> Down (300 ms x 3, detection time 900 ms):")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
