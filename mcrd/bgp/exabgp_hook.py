"""What the launcher's fixes share (exabgp_launch.py installs them; exabgp_listen.py and exabgp_fastpath.py are
two of them): how a fix names what it hooks in ExaBGP, and how a Cease is written on a session (fix 4)."""

from __future__ import annotations

import select
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

CEASE_WRITE_TIMEOUT = 1.0  # seconds a Cease may wait for a full socket before the session is closed without it


@dataclass(frozen=True)
class Hook:
    """A name of ExaBGP's that a fix replaces or uses: `path` inside `module`, with the parameters the fix expects
    when it is a function (None: being there is enough)."""

    module: str
    path: str
    params: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return f"{self.module}.{self.path}"


def send_cease(peer: Any, subcode: int, timeout: float = CEASE_WRITE_TIMEOUT,
               states: Collection[Any] | None = None) -> bool:
    """Fix 4: write a Cease NOTIFICATION with `subcode` on `peer`'s session if it is in one of `states` (default
    OpenConfirm or Established); True when the whole message was written. ExaBGP closes the connection right after."""
    from exabgp.bgp.fsm import FSM  # type: ignore[import-untyped]
    from exabgp.bgp.message import Notify  # type: ignore[import-untyped]

    proto = peer.proto
    connection = getattr(proto, "connection", None)
    if states is None:
        states = (FSM.OPENCONFIRM, FSM.ESTABLISHED)
    if connection is None or connection.io is None or peer.fsm not in states:
        return False
    deadline = time.monotonic() + timeout
    try:
        # One step per write attempt; the last one hands back the message once it is all written.
        for step in proto.new_notification(Notify(6, subcode)):
            if isinstance(step, Notify):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([], [connection.io], [], min(left, 0.05))
    except Exception:  # a connection that broke meanwhile: ExaBGP closes it all the same
        return False
    return False
