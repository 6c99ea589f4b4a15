"""The lab fixtures of tests/lab, for the BFD engine's lab tests (the unit tests here need none of them)."""

from tests.lab.conftest import lab, lab_ready

__all__ = ["lab", "lab_ready"]
