"""Fixtures for lab tests: a `lab` per test (namespaces, veths, daemons, all removed at teardown)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator

import pytest

from tests.lab.harness import Lab, missing_requirements

APT_PACKAGES = "frr bird2 gobgpd openbgpd iputils-ping iproute2 nftables"

# The marks of every module that builds a namespace lab (`pytestmark = LAB_MARKS`).
LAB_MARKS = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="lab tests need root: they create network namespaces (CI is root)"),
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    # Keep each phase's report on the item so fixtures can tell at teardown whether the test failed.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


def require_lab() -> None:
    """Skip when not root (CI runs as root); when root but FRR/BIRD are missing: skip locally, fail under CI, where
    a skip would hide a missing install step."""
    reasons = missing_requirements()
    if not reasons:
        return
    if os.geteuid() != 0:
        pytest.skip(f"lab tests need root ({'; '.join(reasons)})")
    message = f"lab tests need: {'; '.join(reasons)} (apt-get install {APT_PACKAGES})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def lab_ready() -> None:
    """Skip (or, under CI, fail) unless this machine can run lab tests."""
    require_lab()


@pytest.fixture
def lab(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh Lab; at teardown (even after a failure) every process and namespace of it is removed and checked."""
    the_lab = Lab(request.node.name)
    try:
        yield the_lab
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            the_lab.dump_logs()
    finally:
        the_lab.close()  # raises LabLeakError if anything of the run is left


@contextlib.contextmanager
def module_lab(label: str, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A Lab shared by a module's tests: daemon logs are printed when its setup or one of its tests failed, and
    everything is removed at the end whatever happened."""
    failed_before = request.session.testsfailed
    the_lab = Lab(label)
    try:
        yield the_lab
        if request.session.testsfailed > failed_before:
            the_lab.dump_logs(lines=80)
    except BaseException:
        the_lab.dump_logs(lines=80)
        raise
    finally:
        the_lab.close()
