#!/usr/bin/env python3
"""What the order of route removes costs the kernel, and what encoding a batch costs mcrd (issue 14, S2 remainder).

1. `remove`: in a fresh namespace, the hub kernel table of the hub benchmark's S2 (9,960 IPv4 /24s via 10 next hops)
   is installed, then removed in batches of --batch routes, either in address order or in `mcrd.fib.kernel.spread`
   order (a set's); the CPU time of the thread (user + system: the kernel's work happens in `send()`), per phase,
   for each of --repeat rounds. Raw netlink requests built beforehand, so only the kernel's part is timed.
2. `encode`: `KernelFib.apply` of the same routes (installs, then removes) with a socket that sends nothing: the
   Python part of the kernel thread, median of 30, per 10,000 routes.

Usage (root for `remove`): python bench/bench_fib_order.py [--batch 2000] [--repeat 3] [--encode-only]
Run it with PYTHONPATH at another tree to compare trees (the `encode` part uses that tree's KernelFib).
"""

from __future__ import annotations

import argparse
import ipaddress
import resource
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hub.shapes import Topology
from mcrd.fib import kernel as fib_kernel
from mcrd.fib import netlink as nl
from mcrd.fib.netns import enter_netns
from mcrd.rib.effects import FibInstall, FibNextHop

GATEWAYS = [f"10.99.0.{10 + i}" for i in range(10)]


def s2_prefixes() -> list[str]:
    return sorted(Topology.build("S2").expected_kernel(), key=ipaddress.ip_network)


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def frames(prefixes: list[str], batch: int, seq: int, *, remove: bool) -> list[bytes]:
    """One datagram per batch, an ack asked on its last request only (as KernelFib sends them)."""
    out = []
    for start in range(0, len(prefixes), batch):
        chunk = prefixes[start : start + batch]
        parts = []
        for n, prefix in enumerate(chunk):
            if remove:
                kind, flags = nl.RTM_DELROUTE, nl.DEL_FLAGS
                body = nl.route_body(prefix, nl.RTA_U32.pack(8, nl.RTA_PRIORITY, nl.MCRD_METRIC), delete=True)
            else:
                kind, flags = nl.RTM_NEWROUTE, nl.NEW_FLAGS
                body = nl.route_body(prefix, nl.nexthop_attrs(GATEWAYS[(start + n) % 10], 0))
            last = n == len(chunk) - 1
            parts.append(nl.frame(kind, flags if last else flags & ~nl.NLM_F_ACK, seq + start + n, body))
        out.append(b"".join(parts))
    return out


def send_all(sock: nl.RouteSocket, datagrams: list[bytes]) -> None:
    for datagram in datagrams:
        sock.sock.send(datagram)
        while True:
            done = False
            for kind, flags, _, payload in nl.messages(sock.sock.recv(1 << 16)):
                if kind == nl.NLMSG_ERROR:
                    code, text = nl.decode_ack(flags, payload)
                    if code:
                        raise OSError(code, text)
                    done = True
            if done:
                break


def remove_order(batch: int, repeat: int) -> dict[str, list[float]]:
    prefixes = s2_prefixes()
    ns = "fibord-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    results: dict[str, list[float]] = {"address": [], "spread": []}
    try:
        for args in (["link", "add", "v0", "type", "veth", "peer", "v1"], ["link", "set", "v0", "up"],
                     ["link", "set", "v1", "up"], ["addr", "add", "10.99.0.1/24", "dev", "v0"]):
            subprocess.run(["ip", "-n", ns, *args], check=True)

        def work() -> None:
            enter_netns(ns)
            sock = nl.RouteSocket(ack_every=False)
            seq = 1
            for _ in range(repeat):
                for order in ("address", "spread"):
                    send_all(sock, frames(prefixes, batch, seq, remove=False))
                    seq += len(prefixes)
                    gone = prefixes if order == "address" else [
                        p for start in range(0, len(prefixes), batch)
                        for p in fib_kernel.spread(prefixes[start : start + batch])]
                    datagrams = frames(gone, batch, seq, remove=True)
                    seq += len(prefixes)
                    started = thread_cpu()
                    send_all(sock, datagrams)
                    results[order].append(thread_cpu() - started)
            sock.close()

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return results


class _Quiet(nl.RouteSocket):
    """Frames every batch as RouteSocket does and sends nothing."""

    def __init__(self) -> None:
        self.ack_every, self.seq, self.max_batch, self.max_bytes = False, 0, 4000, 4 << 20

        class _Nowhere:
            def send(self, data: bytes) -> int:
                return len(data)

        self.sock = _Nowhere()  # type: ignore[assignment]

    def _collect_failures(self, first: int, last: int, batch: list[int], found: dict[int, tuple[int, str]]) -> bool:
        return True


def encode(rounds: int = 30) -> dict[str, float]:
    prefixes = s2_prefixes()
    fib = fib_kernel.KernelFib.__new__(fib_kernel.KernelFib)
    fib.metric, fib._sock, fib._index, fib._name, fib._may_refresh = nl.MCRD_METRIC, _Quiet(), {}, {}, False
    per = len(prefixes) // 10
    installs = [FibInstall(FibNextHop(GATEWAYS[i], ""), tuple(prefixes[i * per : (i + 1) * per])) for i in range(10)]
    adds, removes = [], []
    for _ in range(rounds):
        started = time.process_time()
        fib.apply(installs, [])
        adds.append(time.process_time() - started)
        started = time.process_time()
        fib.apply([], prefixes)
        removes.append(time.process_time() - started)
    scale = 10_000 / len(prefixes) * 1e3
    return {"install_ms_per_10k": statistics.median(adds) * scale,
            "remove_ms_per_10k": statistics.median(removes) * scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--encode-only", action="store_true")
    args = parser.parse_args()
    print("encode (Python, ms per 10,000 routes):", {k: round(v, 2) for k, v in encode().items()})
    if not args.encode_only:
        found = remove_order(args.batch, args.repeat)
        for order, cpu in found.items():
            print(f"remove 9,960 routes in batches of {args.batch}, {order} order: thread CPU ms",
                  [round(c * 1e3, 1) for c in cpu])


if __name__ == "__main__":
    main()
