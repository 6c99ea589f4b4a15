"""`mcrd check`: exit status, the summary line on stdout, problem lines on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcrd.cli import main

ROOT = Path(__file__).resolve().parents[1]
HUB = "config/aws-azure-hub.yaml"
HUB_SUMMARY = f"{HUB}: ok: MCR lab-mcr (AS 133937), 2 VXCs, 3 BGP connections, 3 prefix filter lists, 0 static routes"

BAD = """\
mcr: {productName: bad, mcrAsn: 64500}
vxcs:
  - productName: aws
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [192.0.2.1/30]
          bgpConnections:
            - peerAsn: 64512
              localIpAddress: 192.0.2.1
              peerIpAddress: 192.0.2.2
              medIn: 4294967296
"""


@pytest.fixture(autouse=True)
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the example paths are relative, as a user types them


def test_check_good_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", HUB]) == 0
    out, err = capsys.readouterr()
    assert out == HUB_SUMMARY + "\n"
    assert err == ""


def test_summary_counts_in_singular_and_plural(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "config/onprem.yaml"]) == 0
    assert capsys.readouterr().out == (
        "config/onprem.yaml: ok: MCR onprem-mcr (AS 133937), 2 VXCs, 2 BGP connections, "
        "1 prefix filter list, 2 static routes\n"
    )


def test_check_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD, encoding="utf-8")
    assert main(["check", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{bad}:1: mcr.mcrAsn: 64500 is reserved (documentation, RFC 5398) and cannot be a local ASN",
        f"{bad}:12: vxcs[0].vrouter.interfaces[0].bgpConnections[0].medIn: 4294967296 is out of range 0..4294967295",
    ]


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{missing}: cannot read the config: No such file or directory\n"


def test_check_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every file is checked; the status is 1 if any is bad.
    assert main(["check", str(tmp_path), HUB]) == 1
    out, err = capsys.readouterr()
    assert out == HUB_SUMMARY + "\n"
    assert err == f"{tmp_path}: cannot read the config: Is a directory\n"


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err
    assert main(["check"]) == 2
    assert main(["nonsense"]) == 2
    capsys.readouterr()
    for bad in ("0.1", "abc", "nan", "100000"):
        assert main(["run", "-c", HUB, "--kernel-scan-interval", bad]) == 2
        assert f"{bad!r} is not a number of seconds 0.5..86400" in capsys.readouterr().err


def test_python_dash_m_mcrd_check() -> None:
    good = subprocess.run(
        [sys.executable, "-m", "mcrd", "check", HUB], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (good.returncode, good.stdout, good.stderr) == (0, HUB_SUMMARY + "\n", "")
    missing = subprocess.run(
        [sys.executable, "-m", "mcrd", "check", "no/such.yaml"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "no/such.yaml: cannot read the config: No such file or directory\n"
