"""The decoder on ExaBGP 5.0.15's real output for the malformed-UPDATE case table (tests/bgp/malformed.py), captured
with `python -m tests.bgp.capture` into fixtures/exabgp-5.0.15-malformed.jsonl: announcements that must not be used
are withdrawn, the withdrawals of an UPDATE are never lost, and a line that cannot be decoded names its peer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcrd.bgp.messages import Decoded, Decoder, Malformed, UpdateError
from mcrd.rib.inputs import PeerDown, RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import Origin
from tests.bgp.malformed import CASES

FIXTURE = Path(__file__).parent / "fixtures" / "exabgp-5.0.15-malformed.jsonl"
PEER, PREFIX = "127.0.0.2", "10.201.0.0/24"


def _captured() -> dict[str, list[str]]:
    cases: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("# ") and not line.startswith("# ExaBGP") and not line.startswith("# Each"):
            lines = cases.setdefault(line[2:].split(" NOTIFICATION")[0], [])
        elif line.startswith("{"):
            lines.append(line)
    return cases


CAPTURED = _captured()


def _decode(kind: str) -> list[Decoded]:
    decoder = Decoder()
    return [parsed for line in CAPTURED[kind] for parsed in decoder.decode(line)]


def _first_update(kind: str, prefix: str) -> list[Decoded]:
    """What the case's own UPDATE (the one carrying `prefix`) decodes to."""
    decoder = Decoder()
    for line in CAPTURED[kind]:
        parsed = decoder.decode(line)
        if prefix in line and json.loads(line)["type"] == "update":
            return parsed
    return []


def test_every_case_was_captured() -> None:
    assert {case.kind for case in CASES} <= set(CAPTURED)


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_each_case_decodes_to_what_the_table_says(case: object) -> None:
    from tests.bgp.malformed import Case
    assert isinstance(case, Case)
    prefix = (case.prefix or PREFIX).format(hub="127.0.0.1")
    if case.outcome == "reset":
        assert isinstance(case.code, tuple)
        downs = [p for p in _decode(case.kind) if isinstance(p, PeerDown)]
        assert downs
        assert downs[0].reason == f"notification sent ({case.code[0]},{case.code[1]})"
        return
    parsed = _first_update(case.kind, prefix)
    assert not [p for p in parsed if isinstance(p, Malformed)], parsed
    announced = {pfx for p in parsed if isinstance(p, RoutesAnnounced) for pfx in p.prefixes}
    withdrawn = {pfx for p in parsed if isinstance(p, RoutesWithdrawn) for pfx in p.prefixes}
    if case.outcome == "withdraw":
        assert prefix in withdrawn, parsed
        assert prefix not in announced, parsed
        assert any(isinstance(p, UpdateError) and p.action == "treat-as-withdraw" for p in parsed), parsed
    else:  # used, discarded attribute, or left to the processor's import rules
        assert prefix in announced, parsed
        assert prefix not in withdrawn, parsed


@pytest.mark.parametrize("kind", ["withdraw-and-no-next-hop", "withdraw-and-bad-origin", "withdraw-and-next-hop-zero"])
def test_the_withdrawals_of_an_update_are_never_lost(kind: str) -> None:
    parsed = _first_update(kind, PREFIX)
    withdrawn = {pfx for p in parsed if isinstance(p, RoutesWithdrawn) for pfx in p.prefixes}
    assert "10.9.0.0/16" in withdrawn
    announced = {pfx for p in parsed if isinstance(p, RoutesAnnounced) for pfx in p.prefixes}
    # An unusable announcement is withdrawn too; a zero next hop is the processor's to refuse (and show).
    assert (PREFIX in announced) == (kind == "withdraw-and-next-hop-zero")
    assert (PREFIX in withdrawn) != (PREFIX in announced)


def test_an_undefined_origin_is_never_taken_as_incomplete() -> None:
    parsed = _first_update("origin-undefined-value", PREFIX)
    assert not any(isinstance(p, RoutesAnnounced) and p.attrs.origin == Origin.INCOMPLETE for p in parsed)
    [error] = [p for p in parsed if isinstance(p, UpdateError)]
    assert error == UpdateError(PEER, "treat-as-withdraw", "ORIGIN 'invalid' is undefined (RFC 7606 7.1)", 1)


def test_a_line_that_cannot_be_decoded_names_the_peer_it_came_from() -> None:
    line = CAPTURED["next-hop-zero"][-1].replace('"10.202.0.0/24"', '"10.202.0.0/99"')
    [result] = Decoder().decode(line)
    assert isinstance(result, Malformed)
    assert result.peer == PEER
    [state] = Decoder().decode(CAPTURED["next-hop-zero"][0].replace('"connected"', '{"bad"'))
    assert isinstance(state, Malformed)
    assert state.peer is None
