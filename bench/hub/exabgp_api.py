"""The tiny API process of the ExaBGP option study (run by ExaBGP as its child; standard library only).

Usage: exabgp_api.py SPEC.json — SPEC: {"neighbors": [[peer, local], ...], "prefixes": N, "per_command": P,
"window": W (0: no limit), "multi": bool, "go": path, "report": path}.

Waits for every neighbor's `up` and for the go file, then sends the N prefixes to every neighbor: `announce route`
lines when P == 1, else `announce attributes ... nlri` with P prefixes; with "multi", one command names all the
neighbors (`neighbor A, neighbor B announce attributes next-hop self ...`). At most W commands await their ack.
Writes {"sent_at": ..., "acked_at": ..., "commands": n, "errors": e} to the report file at the end.
"""

import json
import os
import sys
import threading
import time

with open(sys.argv[1]) as handle:
    spec = json.load(handle)
neighbors = spec["neighbors"]
up: set[str] = set()
acks = threading.Semaphore(0)
state = {"errors": 0, "acked": 0}
all_up = threading.Event()


def reader() -> None:
    for line in sys.stdin:
        line = line.strip()
        if line in ("done", "error"):
            state["acked"] += 1
            state["errors"] += line == "error"
            acks.release()
            continue
        if '"state"' in line:
            try:
                message = json.loads(line)
                neighbor = message["neighbor"]
                if neighbor.get("state") == "up":
                    up.add(neighbor["address"]["peer"])
                    if len(up) == len(neighbors):
                        all_up.set()
            except (ValueError, KeyError):
                pass
    os._exit(0)


threading.Thread(target=reader, daemon=True).start()
all_up.wait()
while not os.path.exists(spec["go"]):
    time.sleep(0.001)

prefixes = [f"30.{n >> 8}.{n & 255}.0/24" for n in range(spec["prefixes"])]
per = spec["per_command"]
window = spec["window"] or 1 << 30
attrs = "origin igp as-path [ 65000 ]"
commands = []
for start in range(0, len(prefixes), per):
    chunk = prefixes[start : start + per]
    if spec["multi"]:
        names = ", ".join(f"neighbor {peer}" for peer, _ in neighbors)
        commands.append(f"{names} announce attributes next-hop self {attrs} nlri {' '.join(chunk)}")
        continue
    for peer, local in neighbors:
        if per == 1:
            commands.append(f"neighbor {peer} announce route {chunk[0]} next-hop {local} {attrs}")
        else:
            commands.append(f"neighbor {peer} announce attributes next-hop {local} {attrs} nlri {' '.join(chunk)}")
sent_at = time.time()
out = sys.stdout
in_flight = 0
for command in commands:
    while in_flight >= window:
        acks.acquire()
        in_flight -= 1
    out.write(command + "\n")
    out.flush()
    in_flight += 1
while state["acked"] < len(commands):
    time.sleep(0.005)
with open(spec["report"], "w") as handle:
    json.dump({"sent_at": sent_at, "acked_at": time.time(), "commands": len(commands), "errors": state["errors"]},
              handle)
while True:
    time.sleep(3600)
