"""`mcrd lg` against the HTTP API served over a fake daemon (the lab test runs it against a real one)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mcrd.cli import main
from tests.lg.conftest import Served
from tests.lg.fixtures import AWS, AZURE, ONPREM, bfd_status

Capture = pytest.CaptureFixture[str]


async def lg(served: Served | str, capsys: Capture, *argv: str) -> tuple[int, str, str]:
    """Run `mcrd lg ARGV --api URL` in a thread (the server runs on this event loop)."""
    url = served if isinstance(served, str) else served.url
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["lg", *argv, "--api", url])
    out, err = capsys.readouterr()
    return status, out, err


def columns(out: str) -> list[list[str]]:
    """The table's rows (after the title, header and rule lines), split on runs of 2+ spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[3:]]


async def test_sessions_table(served: Served, capsys: Capture) -> None:
    status, out, err = await lg(served, capsys, "sessions")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "BGP sessions of MCR lab-mcr: 3"
    assert lines[1].split() == ["Session", "VXC", "Status", "Up/Down", "Peer", "AS", "Local", "AS", "In", "Out",
                                "Rejected", "BFD", "Description"]
    assert columns(out) == [
        [AWS, "vxc1", "UP", "1m30s", "64512", "133937", "2", "3", "1", "AWS hosted VIF"],
        [AZURE, "vxc2", "UP", "1m30s", "12076", "133937", "3", "1", "0"],
        [ONPREM, "vxc3", "DOWN (shut down by config)", "65010", "133937", "0", "0", "0"],
    ]


async def test_bfd_table_and_the_bfd_column_of_sessions(served: Served, capsys: Capture) -> None:
    served.backend.bfd = {AWS: bfd_status(AWS, "DOWN", None)}
    status, out, err = await lg(served, capsys, "bfd")
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == "BFD sessions of MCR lab-mcr: 1"
    assert columns(out) == [[AWS, "vxc1", "eth1", "DOWN", "UP", "NONE/NONE", "300", "300", "900", "2", "UP"]]
    _, out, _ = await lg(served, capsys, "sessions")
    assert columns(out)[0] == [AWS, "vxc1", "UP", "1m30s", "64512", "133937", "2", "3", "1", "DOWN", "AWS hosted VIF"]
    _, out, _ = await lg(served, capsys, "bfd", "--json")
    assert json.loads(out)[0]["detectionTime"] == 900.0


async def test_routes_table_with_filters(served: Served, capsys: Capture) -> None:
    status, out, _ = await lg(served, capsys, "routes", "--protocol", "bgp", "--ip", "10.30.0.0/16")
    assert status == 0
    assert out.splitlines()[0] == "IP routes of MCR lab-mcr: 2"
    assert columns(out) == [
        ["10.30.0.0/16", "BGP", AZURE, "eth2", "vxc2", "12076", "IGP", "1m10s", "*"],
        ["10.30.1.0/24", "BGP", AZURE, "eth2", "vxc2", "12076", "IGP", "1m10s", "*"],
    ]
    status, out, _ = await lg(served, capsys, "routes", "--ip", "10.0.1.1")
    assert [row[:2] for row in columns(out)] == [["10.0.1.1/32", "LOCAL"]]


async def test_bgp_table_marks_the_best_path(served: Served, capsys: Capture) -> None:
    status, out, _ = await lg(served, capsys, "bgp", "--ip", "10.10.0.0/16")
    assert status == 0
    rows = columns(out)
    assert [(row[0], row[1], row[3]) for row in rows] == [(">", "10.10.0.0/16", AWS), ("*", "10.10.0.0/16", AZURE)]
    assert rows[0][-1] == "shorter AS path"  # why the best path won; nothing on the other
    assert "shorter AS path" not in rows[1]


async def test_neighbor_views(served: Served, capsys: Capture) -> None:
    status, out, _ = await lg(served, capsys, "neighbor", AWS, "received")
    assert status == 0
    assert [row[0] for row in columns(out)] == ["10.10.0.0/16", "10.20.0.0/16"]
    status, out, _ = await lg(served, capsys, "neighbor", AWS, "received", "--filtered")
    assert status == 0
    assert columns(out) == [["10.50.0.0/16", AWS, "64512", "5", "IGP",
                             "import permit list 'aws' (id 1): no entry contains the route"]]
    status, out, _ = await lg(served, capsys, "neighbor", AZURE, "advertised")
    assert columns(out) == [["10.10.0.0/16", "10.0.2.1", "133937 64512", "IGP", "*"]]


async def test_json_prints_the_apis_data(served: Served, capsys: Capture) -> None:
    for argv, path in [
        (["sessions"], "bgpSessions"),
        (["routes", "--protocol", "STATIC"], "routes?protocol=STATIC"),
        (["bgp"], "bgp"),
        (["neighbor", AWS, "received", "--filtered"], f"bgpSessions/{AWS}/received?filtered=true"),
    ]:
        status, out, _ = await lg(served, capsys, *argv, "--json")
        assert status == 0
        async with served.session.get(f"/v2/product/mcr2/lab-mcr/lookingGlass/{path}") as response:
            assert json.loads(out) == (await response.json())["data"], argv


async def test_common_options_go_before_or_after_the_view(
    served: Served, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await asyncio.to_thread(main, ["lg", "--api", served.url, "--json", "sessions"])
    first = capsys.readouterr().out
    monkeypatch.setenv("MCRD_API", served.url)
    after = await asyncio.to_thread(main, ["lg", "sessions", "--uid", "lab-mcr", "--json"])
    assert (before, after) == (0, 0)
    assert capsys.readouterr().out == first


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--uid", "other", "sessions"], "mcrd lg: no MCR 'other' here: this mcrd plays MCR 'lab-mcr' (HTTP 404)\n"),
        (["neighbor", "10.9.9.9", "received"],
         f"mcrd lg: no BGP session '10.9.9.9' on MCR lab-mcr (sessions: {AWS}, {AZURE}, {ONPREM}) (HTTP 404)\n"),
        (["routes", "--ip", "10.300.0.1"],
         "mcrd lg: bad query parameter ip: '10.300.0.1' is not an IP address or prefix (e.g. 10.1.2.3 or "
         "10.1.0.0/16) (HTTP 400)\n"),
        (["neighbor", AWS, "advertised", "--filtered"], "mcrd lg: --filtered applies to received routes only\n"),
    ],
)
async def test_errors_are_one_line(served: Served, capsys: Capture, argv: list[str], message: str) -> None:
    status, out, err = await lg(served, capsys, *argv)
    assert (status, out, err) == (1, "", message)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_no_daemon_is_one_clear_line_not_a_traceback() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    proc = subprocess.run([sys.executable, "-m", "mcrd", "lg", "sessions", "--api", url],
                          capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"mcrd lg: no mcrd answers at {url} (is the daemon running?)\n"


def test_a_bad_api_url_is_one_line(capsys: Capture) -> None:
    assert main(["lg", "routes", "--api", "127.0.0.1:8080"]) == 1
    assert capsys.readouterr().err == "mcrd lg: 127.0.0.1:8080 is not an http:// URL\n"


def test_a_bad_protocol_is_a_usage_error(capsys: Capture) -> None:
    assert main(["lg", "routes", "--protocol", "ospf"]) == 2
    assert "invalid choice: 'OSPF'" in capsys.readouterr().err


def test_the_daemon_stops_at_once_when_the_api_address_is_taken(tmp_path: Path) -> None:
    """Before it touches the kernel or starts ExaBGP (so this needs no root): one log line, exit status 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "mcrd.yaml"
        config.write_text(f"mcr: {{productName: lab-mcr, routerId: 10.0.0.1}}\napi: {{listen: '127.0.0.1:{port}'}}\n")
        state = tmp_path / "state"
        state.mkdir()
        proc = subprocess.run([sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                               "--state-dir", str(state)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    event = json.loads(line)
    assert (event["event"], event["listen"]) == ("api_listen_failed", f"127.0.0.1:{port}")
    assert "in use" in event["error"]
