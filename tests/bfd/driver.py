"""A BfdManager alone in a lab namespace, on uvloop as in the daemon: ``python -m tests.bfd.driver PEERS STATUS``.

PEERS: a JSON list of BfdPeerConfig fields, (re)read at start and on SIGHUP (`configure`).  SIGUSR1 blocks the
loop for $BFD_BUSY seconds (2.5), like a daemon busy with a route burst.  Every transition is
printed to stdout as one JSON line ``{"transition": {...}}`` (the lab keeps stdout in the process log); STATUS is
rewritten with ``status()`` after each transition and every 100 ms.  SIGTERM: ``close()`` (AdminDown to every
peer), then exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

from mcrd.bfd import BfdManager, BfdPeerConfig, BfdStatus, BfdTransition
from mcrd.log import configure as configure_logging
from mcrd.log import get_logger


def read_peers(path: Path) -> list[BfdPeerConfig]:
    out = []
    for item in json.loads(path.read_text()):
        item = dict(item)
        item["peer"] = ipaddress.ip_address(item["peer"])
        item["local"] = ipaddress.ip_address(item["local"])
        out.append(BfdPeerConfig(**item))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if hasattr(value, "value") and hasattr(value, "name"):  # the enums: names as str() gives them
        return str(value) if type(value).__name__ == "BfdState" else value.name
    return value


def status_json(status: dict[str, BfdStatus]) -> str:
    return json.dumps({k: {f: _plain(getattr(v, f)) for f in v.__dataclass_fields__} for k, v in status.items()})


def busy(seconds: float) -> None:
    """Hold the loop computing, holding the GIL but for the interpreter's switches (as the route processor does in a
    large burst), and say so."""
    print(json.dumps({"busy": seconds}), flush=True)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(range(1000))
    print(json.dumps({"busy_done": seconds}), flush=True)


async def main(peers_path: Path, status_path: Path) -> None:
    log = get_logger("bfd")

    def write_status() -> None:
        tmp = status_path.with_suffix(".tmp")
        tmp.write_text(status_json(manager.status()))
        tmp.replace(status_path)

    def on_transition(t: BfdTransition) -> None:
        fields = {f: _plain(getattr(t, f)) for f in t.__dataclass_fields__}
        print(json.dumps({"transition": fields}), flush=True)
        write_status()

    manager = BfdManager(on_transition, log)
    manager.configure(read_peers(peers_path))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, lambda: manager.configure(read_peers(peers_path)))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: busy(float(os.environ.get("BFD_BUSY", "2.5"))))
    task = asyncio.create_task(manager.run())
    print(json.dumps({"ready": os.getpid()}), flush=True)
    try:
        while not stop.is_set():
            write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await manager.close()
        await task
        write_status()


if __name__ == "__main__":
    configure_logging("json", "debug" if os.environ.get("BFD_DEBUG") else "info")
    uvloop.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
