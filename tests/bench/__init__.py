"""Tests of the benchmarks in bench/ (they need root and BIRD)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_bird(what: str) -> None:
    """Skip when BIRD 2 is missing (fail on CI, where it must be installed)."""
    if shutil.which("bird"):
        return
    message = f"{what} needs BIRD 2 (apt-get install bird2)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
