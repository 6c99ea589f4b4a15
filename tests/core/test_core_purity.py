"""The core (config model, policy, route processor) does no I/O, keeps no clock and logs nothing: it returns
decisions with their reasons, time is a parameter, and the adapters at the edge do the I/O and the logging."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mcrd

CORE = ["route", "rib", "policy", "config/model.py", "config/rules.py", "config/devices.py", "config/diff.py"]
FORBIDDEN = {"asyncio", "logging", "structlog", "socket", "os", "subprocess", "threading", "time", "random",
             "pyroute2", "aiomqtt", "exabgp", "uvloop", "io", "pathlib", "shutil"}


def core_files() -> list[Path]:
    root = Path(mcrd.__file__).parent
    files: list[Path] = []
    for part in CORE:
        path = root / part
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


@pytest.mark.parametrize("path", core_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path} imports {sorted(imported & FORBIDDEN)}"
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not calls & {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}, path


# The import arrows go one way: config, route <- policy <- rib; the core imports no adapter. The config names the
# Linux devices itself (config/devices.py): it imports nothing of mcrd's above it, the interface plan included.
LAYERS = {"config": set(), "route": set(), "policy": {"route", "config"}, "rib": {"route", "policy", "config"}}
ADAPTERS = {"bgp", "fib", "lg", "events", "bfd", "lab", "importers", "daemon", "cli", "log"}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_core_package_imports_only_the_layers_below(package: str) -> None:
    root = Path(mcrd.__file__).parent
    reached: set[str] = set()
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mcrd."):
                reached.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                reached |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("mcrd.")}
    reached.discard(package)
    assert not reached & ADAPTERS, f"mcrd.{package} imports adapters {sorted(reached & ADAPTERS)}"
    assert reached <= LAYERS[package], f"mcrd.{package} imports {sorted(reached - LAYERS[package])} from above it"


@pytest.mark.parametrize("module", ["mcrd.bgp.exabgp_launch", "mcrd.bgp.bridge"])
def test_what_runs_inside_exabgp_loads_no_config_model(module: str) -> None:
    """ExaBGP's process (the launcher and its fixes) and its API bridge import mcrd's wire code; pulling in pydantic
    and the config model with it doubled the bridge's memory (17 -> 33 MiB in the hub benchmark)."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'mcrd.config'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
