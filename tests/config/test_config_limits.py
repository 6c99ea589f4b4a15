"""What a config text may cost to read: alias bombs, deep nesting, huge numbers and values ruamel cannot build are
refused quickly as `FILE:LINE: ...` problems, never a crash, a hang or gigabytes (docs/THREAT-MODEL.md)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcrd.cli import main
from mcrd.config.load import ALIAS_VALUES, MAX_FLOW_DEPTH

from .config_testlib import TWO_SESSIONS, alias_bomb, problem, problems

BOMB_MESSAGE = f"YAML aliases expand the config past {ALIAS_VALUES} values more than it writes out (an alias bomb?)"
MEMORY = 256 << 20  # the children's address space: the old loader passed 1.5 GB on the 342-byte bomb

# Parse a file in a child process (so that an unbounded expansion cannot hurt the machine running the tests);
# `unbounded` lifts the alias bound, as the loader was before it had one.
CHILD = """
import sys
import mcrd.config.load as load
if sys.argv[2] == "unbounded":
    load.ALIAS_VALUES = 10**18
try:
    load.load_config(sys.argv[1])
    print("loaded")
except load.ConfigError as exc:
    print(exc)
"""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def parse_in_child(path: Path, mode: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(path), mode], preexec_fn=_limit_memory,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_billion_laughs_is_refused_quickly_with_the_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert len(bomb.read_bytes()) < 400
    start = time.monotonic()
    done = parse_in_child(bomb, "bounded", timeout=60)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    # The outermost alias being expanded when the bound is reached: `e: &e [*d, ...]` on line 5.
    assert done.stdout.strip() == f"{bomb}:5: e[0]: {BOMB_MESSAGE}: refused"
    print(f"billion laughs refused in {took:.2f} s (a child process: interpreter start included)")
    assert took < 20  # generous: the machine is shared; about 1 s, most of it the interpreter starting


def test_without_the_bound_the_same_bomb_does_not_finish(tmp_path: Path) -> None:
    # The loader before the bound: within 3 s and 256 MiB it neither refuses nor loads (it measured 28 s and a
    # MemoryError at 1.5 GiB). This is what the bound protects the event loop and the machine from.
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    try:
        done = parse_in_child(bomb, "unbounded", timeout=3)
    except subprocess.TimeoutExpired:
        return
    assert done.returncode != 0, done.stdout
    assert "MemoryError" in done.stderr


@pytest.mark.parametrize(("levels", "width"), [(7, 9), (5, 30), (30, 2)])
def test_alias_bombs_of_other_shapes(levels: int, width: int) -> None:
    start = time.monotonic()
    found = problems(alias_bomb(levels, width))
    assert len(found) == 1
    assert BOMB_MESSAGE in found[0]
    assert time.monotonic() - start < 5


def test_merge_keys_count_too() -> None:
    lines = ["a: &a {" + ", ".join(f"k{i}: {i}" for i in range(50)) + "}"]
    lines += [f"b{i}: &b{i} {{<<: *a, x: [" + ",".join(["*a"] * 9) + "]}" for i in range(30)]
    text = "\n".join(lines) + "\nc: [" + ",".join([f"*b{i}" for i in range(30)] * 10) + "]\n"
    assert BOMB_MESSAGE in problem(text)


def test_ordinary_aliases_are_fine() -> None:
    # A prefix filter list's entries written once and used by three more lists: a few aliases, a small expansion.
    lines = TWO_SESSIONS.splitlines(keepends=True)
    lines[5] = "    entries: &v4 [{action: permit, prefix: 10.0.0.0/8}, {action: permit, prefix: 172.16.0.0/12}]\n"
    copies = [f"  - {{id: {i}, description: copy{i}, addressFamily: IPv4, entries: *v4}}\n" for i in (3, 4, 5)]
    assert problems("".join(lines[:10] + copies + lines[10:])) == []


def test_deep_flow_nesting_is_refused_before_ruamel_reads_it() -> None:
    # ruamel's scanner is quadratic in flow depth: 5,000 levels took it 7 s before it gave up.
    for text, line in (('{"mcr": ' + "[" * 100_000 + "]" * 100_000 + "}\n", 1),
                       ("mcr:\n  x: " + "{a: " * 50_000 + "\n", 2)):
        start = time.monotonic()
        assert problem(text) == f"t.yaml:{line}: the config is nested too deeply"
        assert time.monotonic() - start < 2


def test_brackets_in_quotes_and_comments_do_not_count() -> None:
    deep = "[" * (MAX_FLOW_DEPTH // 2 + 1)  # twice per string: deeper than the bound if it counted
    text = TWO_SESSIONS.replace("productName: t}", f"productName: \"t{deep}\\\"{deep}\"}}  # {deep}")
    text = text.replace("description: v4", f"description: '{deep}''{deep}'")
    assert problems(text) == []


def test_a_quote_inside_a_plain_scalar_does_not_hide_brackets() -> None:
    # `a:'` and `it's` are plain text: taking their quote for an opening one would let a deep nesting through.
    for prefix in ("x: [a:'", "x: [it's, ", "x: [a - '"):
        text = prefix + "[" * 5000 + "]" * 5001 + "\n"
        start = time.monotonic()
        assert problem(text) == "t.yaml:1: the config is nested too deeply"
        assert time.monotonic() - start < 2


@pytest.mark.parametrize(("value", "message"), [
    ("9" * 5000, "9" * 37 + "...: a number of more than 4300 digits"),
    ("2020-13-45", "2020-13-45: month must be in 1..12"),
    ("!!int abc", "abc: invalid literal for int() with base 10: 'abc'"),
])
def test_values_ruamel_cannot_build_are_problems_with_a_line(value: str, message: str) -> None:
    text = TWO_SESSIONS.replace("description: v6", f"description: {value}")
    assert problem(text) == f"t.yaml:8: {message}"


def test_mcrd_check_refuses_the_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert main(["check", str(bomb)]) == 1
    assert capsys.readouterr().err == f"{bomb}:5: e[0]: {BOMB_MESSAGE}: refused\n"


def test_merge_keys_are_read() -> None:
    # `<<: *a` merges a mapping's keys in; they have no line of their own (this crashed with a KeyError).
    text = TWO_SESSIONS.replace("mcr: {productName: t}", "base: &base {productName: t}\nmcr: {<<: *base}")
    assert problems(text) == ["t.yaml:1: base: unknown field 'base'"]


def test_mcrd_run_refuses_the_bomb_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    start = time.monotonic()
    assert main(["run", "-c", str(bomb)]) == 1  # refused before the daemon (interfaces, ExaBGP) starts
    assert time.monotonic() - start < 5
    assert capsys.readouterr().err == f"{bomb}:5: e[0]: {BOMB_MESSAGE}: refused\n"
