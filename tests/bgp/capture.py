"""Capture what ExaBGP writes on its API for hand-built UPDATEs: how the decoder fixtures were made.

Runs ExaBGP (through mcrd's launcher, as mcrd does) listening on loopback, opens a session to it with the raw speaker
and sends each named UPDATE; prints ExaBGP's JSON lines for them (and the NOTIFICATION, if the session was reset).

Usage (no root needed; loopback only): python -m tests.bgp.capture [CASE ...] > lines.jsonl
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcrd.bgp import exabgp_config
from tests.bgp import rawbgp
from tests.bgp.malformed import CASES, Case, Ctx

HUB, PEER = "127.0.0.1", "127.0.0.2"
HUB_AS, PEER_AS = 133937, 65099


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HUB, 0))
        return int(sock.getsockname()[1])


def _config(out: Path) -> str:
    script = out.with_suffix(".py")
    script.write_text(f"#!{sys.executable}\nimport os, select\nout = open({str(out)!r}, 'wb', 0)\n"
                      "while True:\n    select.select([0], [], [])\n    try:\n        chunk = os.read(0, 65536)\n"
                      "    except BlockingIOError:\n        continue\n    if not chunk:\n        break\n"
                      "    out.write(chunk)\n")
    script.chmod(0o700)
    return f"""process mcrd {{
    run {script};
    encoder json;
}}
neighbor {PEER} {{
    router-id {HUB}; local-address {HUB}; local-as {HUB_AS}; peer-as {PEER_AS}; hold-time 30;
    passive true; adj-rib-out false;
    family {{ ipv4 unicast; ipv6 unicast; }}
    capability {{ route-refresh disable; graceful-restart disable; }}
    api {{ processes [ mcrd ]; receive {{ parsed; update; open; notification; }} neighbor-changes; }}
}}
"""


def _lines(out: Path) -> list[str]:
    return out.read_text().splitlines() if out.exists() else []


def capture(cases: list[Case]) -> list[tuple[str, list[str]]]:
    """(case kind, ExaBGP's lines after it) for each case, each on a fresh session."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "api.jsonl"
        conf = Path(tmp) / "exabgp.conf"
        conf.write_text(_config(out))
        port = _free_port()
        env = {**os.environ, **exabgp_config.environment(), "exabgp_tcp_bind": HUB, "exabgp_tcp_port": str(port),
               "exabgp_api_ack": "false"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[2]),
                                                          os.environ.get("PYTHONPATH"))))
        with (Path(tmp) / "stderr").open("w") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "mcrd.bgp.exabgp_launch", "server", str(conf)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            for case in cases:
                seen = len(_lines(out))
                peer = rawbgp.RawPeer(PEER_AS, PEER)
                peer.connect(HUB, port, source=PEER)
                prefix = (case.prefix or "10.201.0.0/24").format(hub=HUB)
                peer.send(case.build(Ctx(HUB, PEER, "127.0.0.3", PEER_AS, prefix, 65001)))
                marker = rawbgp.prefixes(["10.202.0.0/24"])
                peer.send(rawbgp.update(attributes=rawbgp.basic(PEER_AS, PEER), nlri=marker))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    lines = _lines(out)[seen:]
                    if any("10.202.0.0/24" in line or '"down"' in line for line in lines):
                        break
                    time.sleep(0.05)
                peer.close()
                note = f" NOTIFICATION {peer.received.notification[:2]}" if peer.received.notification else ""
                results.append((case.kind + note, lines))
                deadline = time.monotonic() + 10
                while '"down"' not in "".join(_lines(out)[seen:]) and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
            if os.environ.get("CAPTURE_DEBUG"):
                sys.stderr.write((Path(tmp) / "stderr").read_text()[-3000:])
    return results


def main() -> None:
    wanted = set(sys.argv[1:])
    for kind, lines in capture([c for c in CASES if not wanted or c.kind in wanted]):
        print(f"# {kind}")
        for line in lines:
            print(line)


if __name__ == "__main__":
    main()
