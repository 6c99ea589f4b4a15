"""`mcrd lab verify`: judge a running lab against an intents file (mcrd.lab.intents), from each node's own view.

Every intent is polled until it holds or its `within` passes; intents are polled side by side, so a run lasts as long
as its slowest intent, not the sum. An intent holds or fails on what a node answered; a node that
does not answer (until `within`) makes the run an error (exit 2), never a pass. Scenarios run after the top-level
intents: the `do` steps, the expectations (their convergence time is from the last `do` step until every one of them
holds), the `undo` steps, then the top-level intents again (restored).
"""

from __future__ import annotations

import ipaddress
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from mcrd.lab.intents import Intent, IntentsFile, Scenario, Step, prefix_key
from mcrd.lab.probe import NoAnswerError, Path, Probe
from mcrd.lab.system import LabError

POLL = 0.25
WORKERS = 8
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
PASS, FAIL, ERROR = "pass", "fail", "error"


@dataclass
class Verdict:
    intent: Intent
    result: str = ""
    seconds: float | None = None
    """Time until it held (from the start of the round, or from the last `do` step in a scenario)."""
    held: str = ""
    expected: str = ""

    def as_dict(self) -> dict[str, Any]:
        i = self.intent
        return {"name": i.name, "kind": i.kind, "node": i.at or i.from_node, "line": i.line, "result": self.result,
                "seconds": None if self.seconds is None else round(self.seconds, 3), "expected": self.expected,
                "held": self.held}


@dataclass
class ScenarioResult:
    scenario: Scenario
    result: str = PASS
    steps: list[str] = field(default_factory=list)
    expect: list[Verdict] = field(default_factory=list)
    restored: list[Verdict] = field(default_factory=list)
    convergence: float | None = None
    restore: float | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.scenario.name, "result": self.result, "steps": self.steps, "error": self.error,
                "convergenceSeconds": _r(self.convergence), "restoreSeconds": _r(self.restore),
                "expect": [v.as_dict() for v in self.expect], "restored": [v.as_dict() for v in self.restored]}


@dataclass
class Report:
    lab: str
    source: str
    intents: list[Verdict] = field(default_factory=list)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    @property
    def result(self) -> str:
        results = [v.result for v in self.intents] + [s.result for s in self.scenarios]
        if self.error or ERROR in results:
            return ERROR
        return FAIL if FAIL in results else PASS

    @property
    def exit_code(self) -> int:
        return {PASS: EXIT_PASS, FAIL: EXIT_FAIL, ERROR: EXIT_ERROR}[self.result]

    def as_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "intentsFile": self.source, "result": self.result, "error": self.error,
                "seconds": round(self.seconds, 3), "intents": [v.as_dict() for v in self.intents],
                "scenarios": [s.as_dict() for s in self.scenarios]}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


# --- judging one intent once ---------------------------------------------------------------------------------------


def _expected(i: Intent) -> str:
    if i.kind == "route":
        scope = " (or longer)" if i.or_longer else ""
        src = f" from {i.from_node}" if i.from_node else " as best route"
        if not i.present:
            return f"no {i.route}{scope}{src}"
        attrs = [f"[{' '.join(map(str, i.as_path))}]" if i.as_path is not None else "",
                 f"via {i.next_hop}" if i.next_hop else "", f"med {i.med}" if i.med is not None else ""]
        return " ".join(x for x in [f"{i.route}{scope}{src}", *attrs] if x)
    if i.kind == "exactly":
        return f"exactly [{', '.join(i.exactly)}]" + (f" from {i.from_node}" if i.from_node else "")
    if i.kind == "sessions":
        return "every BGP session Established"
    if i.kind == "ping":
        return f"{i.from_node} {'reaches' if i.reach else 'does not reach'} {i.ping}"
    why = f" ({i.reason})" if i.reason else ""
    return f"{i.rejected} rejected{why}" + (f" on session {i.session}" if i.session else "")


def _in(prefix: str, route: str, or_longer: bool) -> bool:
    if prefix == route:
        return True
    if not or_longer:
        return False
    a, b = ipaddress.ip_network(prefix), ipaddress.ip_network(route)
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def _matches(i: Intent, p: Path) -> bool:
    return ((i.as_path is None or p.as_path == i.as_path) and (i.next_hop is None or p.next_hop == i.next_hop)
            and (i.med is None or p.med == i.med))


def _candidates(i: Intent, probe: Probe) -> list[Path]:
    """The paths of `at`'s BGP table an intent looks at: all of them, or those learned from `from`."""
    paths = probe.paths(i.at)
    if i.from_node:
        peers = probe.addresses(i.from_node)
        return [p for p in paths if p.peer in peers]
    return paths


def judge(i: Intent, probe: Probe) -> tuple[bool, str]:
    """One look: (holds, what the node holds). Raises NoAnswerError when the node does not answer."""
    at = i.at
    if i.kind == "route":
        found = [p for p in _candidates(i, probe) if _in(p.prefix, i.route, i.or_longer)]
        held = f"{at} holds " + ("; ".join(p.show() for p in found) if found else f"no {i.route}")
        if not i.present:  # absent means no path at all, best or not
            return not found, held
        # Without `from` the node's choice is judged (its best path), with `from` what that neighbour sent.
        usable = found if i.from_node else [p for p in found if p.best]
        return any(_matches(i, p) for p in usable), held
    if i.kind == "exactly":
        have = sorted({p.prefix for p in _candidates(i, probe)}, key=prefix_key)
        missing = [p for p in i.exactly if p not in have]
        extra = [p for p in have if p not in i.exactly]
        held = f"{at} holds [{', '.join(have)}]"
        held += f"; missing [{', '.join(missing)}]" if missing else ""
        held += f"; unexpected [{', '.join(extra)}]" if extra else ""
        return not missing and not extra, held
    if i.kind == "sessions":
        sessions = probe.sessions(at)
        # A session shut down by configuration is meant to be down (the report says so, it does not fail).
        down = [f"{s.address} (AS {s.remote_as}): {s.state}" for s in sessions if not s.established
                and not s.admin_down]
        if not sessions:
            return False, f"{at} has no BGP session"
        if down:
            return False, f"{at}: {len(sessions) - len(down)} of {len(sessions)} Established; down: {'; '.join(down)}"
        return True, f"{at}: {len(sessions)} of {len(sessions)} Established"
    if i.kind == "ping":
        assert i.from_node is not None
        # Reachable: one reply, retried soon (a short wait keeps the time to hold precise). Unreachable: three
        # requests, none answered within 2 s each (a slow reply must never pass for isolation).
        ok, line = (probe.ping(i.from_node, i.ping, count=1, wait=0.5) if i.reach
                    else probe.ping(i.from_node, i.ping, count=3, wait=2.0))
        return ok == i.reach, f"{i.from_node} -> {i.ping}: {line}"
    session = i.session
    if session and session in probe.nodes:  # a node name: its address among the sessions of `at`
        ids = {s.address for s in probe.sessions(at)} & probe.addresses(session)
        session = next(iter(ids), session)
    rejections = probe.rejections(at, session)
    hits = [r for r in rejections if r.prefix == i.rejected]
    held = f"{at} rejected " + ("; ".join(f"{r.prefix} from {r.session} ({r.code})" for r in rejections)
                                if rejections else "nothing")
    return any(i.reason is None or r.code == i.reason for r in hits), held


def poll(intents: Sequence[Intent], probe: Probe, start: float | None = None,
         clock: Callable[[], float] = time.monotonic) -> list[Verdict]:
    """Poll every intent until it holds or its `within` passes (timed from `start`). Intents are polled side by side
    (a worker each, up to WORKERS), so a slow check (a ping that gets no answer) delays no other's time to hold."""
    start = clock() if start is None else start
    verdicts = [Verdict(i, expected=_expected(i)) for i in intents]

    def settle(v: Verdict) -> None:
        while True:
            try:
                ok, v.held = judge(v.intent, probe)
            except NoAnswerError as exc:
                ok, v.held = False, str(exc)
                if clock() - start > v.intent.within:
                    v.result = ERROR
                    return
            else:
                now = clock() - start
                if ok:
                    v.result, v.seconds = PASS, now
                    return
                if now > v.intent.within:
                    v.result = FAIL
                    return
            time.sleep(POLL)

    if verdicts:
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(verdicts))) as pool:
            list(pool.map(settle, verdicts))
    return verdicts


# --- a run --------------------------------------------------------------------------------------------------------


StepRunner = Callable[[Step], None]
"""Carries out one scenario step; raises LabError when it cannot."""


def run_verify(lab: str, intents: IntentsFile, probe: Probe, steps: StepRunner, out: TextIO) -> Report:
    t0 = time.monotonic()
    report = Report(lab, intents.source)
    unknown = sorted(intents.nodes() - set(probe.nodes))
    if unknown:
        report.error = (f"{intents.source}: no node {', '.join(unknown)} in lab {lab} "
                        f"(nodes: {', '.join(probe.nodes)})")
        return report
    try:  # every routing node answers before anything is judged: a dead daemon is an error, not a failure
        for node in sorted({i.at for i in intents.intents if i.at}):
            probe.sessions(node)
    except NoAnswerError as exc:
        report.error = str(exc)
        return report
    _say(out, f"verifying lab {lab} against {intents.source}: {len(intents.intents)} intents, "
              f"{len(intents.scenarios)} scenarios")
    report.intents = poll(intents.intents, probe)
    _print_verdicts(out, report.intents)
    for scenario in intents.scenarios:
        report.scenarios.append(run_scenario(scenario, intents.intents, probe, steps, out))
    report.seconds = time.monotonic() - t0
    return report


def run_scenario(scenario: Scenario, baseline: Sequence[Intent], probe: Probe, steps: StepRunner,
                 out: TextIO) -> ScenarioResult:
    res = ScenarioResult(scenario)
    _say(out, f"\nscenario: {scenario.name}")
    try:
        try:
            for step in scenario.do:
                _say(out, f"  do {step}")
                steps(step)
                res.steps.append(f"do {step}")
            res.expect = poll(scenario.expect, probe)
            _print_verdicts(out, res.expect, indent="  ")
            if all(v.result == PASS for v in res.expect):
                res.convergence = max((v.seconds or 0.0 for v in res.expect), default=0.0)
                _say(out, f"  converged in {res.convergence:.2f}s after the last do step")
        finally:
            for step in scenario.undo:
                _say(out, f"  undo {step}")
                steps(step)
                res.steps.append(f"undo {step}")
        res.restored = poll(baseline, probe)
        failed = [v for v in res.restored if v.result != PASS]
        if failed:
            _say(out, "  not restored after undo:")
            _print_verdicts(out, failed, indent="  ")
        else:
            res.restore = max((v.seconds or 0.0 for v in res.restored), default=0.0)
            _say(out, f"  restored in {res.restore:.2f}s after undo")
    except LabError as exc:
        res.error = str(exc)
        _say(out, f"  ERROR {exc}")
    results = [v.result for v in (*res.expect, *res.restored)]
    res.result = ERROR if res.error or ERROR in results else FAIL if FAIL in results else PASS
    return res


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _print_verdicts(out: TextIO, verdicts: Sequence[Verdict], indent: str = "") -> None:
    for v in verdicts:
        i = v.intent
        when = f"held after {v.seconds:.2f}s" if v.seconds is not None else f"not within {i.within:g}s"
        _say(out, f"{indent}{v.result.upper():5} {i.name}  ({when})")
        _say(out, f"{indent}      expected: {v.expected}")
        _say(out, f"{indent}      held:     {v.held}")


def summary_line(report: Report) -> str:
    n = len(report.intents)
    passed = sum(v.result == PASS for v in report.intents)
    sc = len(report.scenarios)
    sc_ok = sum(s.result == PASS for s in report.scenarios)
    conv = [f"{s.scenario.name}: {s.convergence:.2f}s" for s in report.scenarios if s.convergence is not None]
    text = f"{report.result.upper()}: {passed}/{n} intents hold, {sc_ok}/{sc} scenarios pass"
    return text + (f" (convergence {'; '.join(conv)})" if conv else "") + f" in {report.seconds:.1f}s"


# --- report files -------------------------------------------------------------------------------------------------


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def to_junit(report: Report) -> str:
    """JUnit XML: one testcase per intent, per scenario expectation and per restored intent."""
    suites = ET.Element("testsuites", name=f"mcrd lab verify {report.lab}")
    cases: list[tuple[str, Verdict]] = [("intents", v) for v in report.intents]
    for s in report.scenarios:
        cases += [(f"scenario: {s.scenario.name}", v) for v in s.expect]
        cases += [(f"scenario: {s.scenario.name} (restored)", v) for v in s.restored]
    suite = ET.SubElement(suites, "testsuite", name=report.lab, time=f"{report.seconds:.3f}")
    for cls, v in cases:
        case = ET.SubElement(suite, "testcase", classname=cls, name=v.intent.name, time=f"{v.seconds or 0.0:.3f}")
        text = f"expected: {v.expected}\nheld: {v.held}"
        if v.result == FAIL:
            ET.SubElement(case, "failure", message=f"not within {v.intent.within:g}s").text = text
        elif v.result == ERROR:
            ET.SubElement(case, "error", message="the node did not answer").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    for s in report.scenarios:
        if s.error:
            case = ET.SubElement(suite, "testcase", classname=f"scenario: {s.scenario.name}", name="steps")
            ET.SubElement(case, "error", message="a step failed").text = s.error
    if report.error:
        case = ET.SubElement(suite, "testcase", classname="lab", name="the lab can be judged")
        ET.SubElement(case, "error", message="the lab could not be judged").text = report.error
    testcases = suite.findall("testcase")
    suite.set("tests", str(len(testcases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in testcases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in testcases)))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
