"""ExaBGP 5.0.15 with one change, to measure it (`python bench/hub/exabgp_nosleep.py server CONF`).

ExaBGP's reactor applies API commands as generators, at most 50 steps (`ASYNC.LIMIT`) per loop pass, and an
`announce attributes ... nlri` command takes one step per prefix. At the end of each pass it polls its sockets with
a timeout of `exabgp.reactor.speed / 100` s (10 ms by default) unless a new API line or a peer asked for an
immediate turn; a queue of commands still being applied does not count. So once mcrd's window of commands has been
read, ExaBGP injects ~50 prefixes per 10 ms and sleeps in between. The change here: no poll timeout while that
queue is not empty (the idle timeout, and so idle CPU, stay as they are). With EXABGP_BENCH_SHALLOW=1 also a
cheaper `Neighbor.remove_self` (below).
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator
from typing import Any

from exabgp.reactor.loop import Reactor  # type: ignore[import-untyped]

_wait_for_io = Reactor._wait_for_io


def _busy_aware_wait(self: Any, sleeptime: int) -> Iterator[int]:
    if not self.asynchronous.ready():
        sleeptime = 0
    return _wait_for_io(self, sleeptime)  # type: ignore[no-any-return]


Reactor._wait_for_io = _busy_aware_wait

if os.environ.get("EXABGP_BENCH_SHALLOW") == "1":
    # Second, optional change: `Neighbor.remove_self` deep-copies every change for every neighbor it is injected into
    # (half of ExaBGP's time in a py-spy profile of S2). A copy of the change and of its NLRI is enough: the rest
    # (attribute objects, prefix) is never changed afterwards; the attributes are copied only when the next hop is
    # rewritten.
    import copy

    from exabgp.bgp.message.update.attribute import Attribute, NextHop  # type: ignore[import-untyped]
    from exabgp.bgp.neighbor import Neighbor  # type: ignore[import-untyped]

    def _remove_self(self: Any, changes: Any) -> Any:
        change = copy.copy(changes)
        change.nlri = copy.copy(changes.nlri)
        if not change.nlri.nexthop.SELF:
            return change
        neighbor_self = self.ip_self(change.nlri.afi)
        change.nlri.nexthop = neighbor_self
        if Attribute.CODE.NEXT_HOP in change.attributes:
            change.attributes = copy.copy(change.attributes)
            change.attributes[Attribute.CODE.NEXT_HOP] = NextHop(str(neighbor_self), neighbor_self.pack())
        return change

    Neighbor.remove_self = _remove_self

if __name__ == "__main__":
    sys.argv[0] = "exabgp"
    runpy.run_module("exabgp", run_name="__main__", alter_sys=True)
