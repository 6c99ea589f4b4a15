"""Event payloads from the route processor's effects and the daemon's happenings: no broker, no I/O."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

import mcrd
from mcrd.config.load import ConfigError, ConfigProblem, parse_config
from mcrd.events import payloads
from mcrd.events.payloads import (
    bfd_message,
    config_rejected_message,
    effects_messages,
    exabgp_restart_message,
    interface_message,
    iso_utc,
    problem_line,
    routes_message,
    topic,
)
from mcrd.events.sink import secrets_of
from mcrd.rib.effects import (
    Announce,
    ConfigApplied,
    Effects,
    InputIgnored,
    ReceivedChanged,
    RouteLimitReached,
    SessionChanged,
    Withdraw,
)
from mcrd.rib.inputs import PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import PathAttributes
from tests.core.helpers import peer_config, peer_ip

TS = "2024-05-01T12:00:00.000Z"
MCR = "lab-mcr"
ATTRS = PathAttributes("10.0.1.2", (64601,))
DOCS = Path(mcrd.__file__).parent.parent / "docs" / "events.md"


def messages(*rounds: Effects, secrets: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    return effects_messages(list(rounds), mcr=MCR, timestamp=TS, secrets=secrets)


def test_every_payload_has_type_mcr_and_timestamp() -> None:
    rounds = Effects(
        announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24",)),),
        best_added=("192.0.2.0/24",),
        records=(SessionChanged("10.0.1.2", "vxc1", "UP"), ConfigApplied(("10.0.1.2",), (), ()),
                 RouteLimitReached(10, 1, 1)),
    )
    out = [*messages(rounds), config_rejected_message([], mcr=MCR, timestamp=TS),
           exabgp_restart_message("ExaBGP exited with status 1", 1, mcr=MCR, timestamp=TS),
           interface_message("eth1", "aws-vxc", "interface eth1 is administratively down", mcr=MCR, timestamp=TS),
           bfd_message("10.0.1.2", "vxc1", "UP", "DOWN", "CONTROL_DETECTION_TIME_EXPIRED", mcr=MCR, timestamp=TS)]
    assert {suffix for suffix, _ in out} == set(payloads.SUFFIXES)
    for suffix, payload in out:
        assert payload["type"] == suffix
        assert payload["mcr"] == MCR
        assert payload["timestamp"] == TS
        json.dumps(payload)  # plain JSON


def test_session_changes_one_message_each_in_order() -> None:
    out = messages(
        Effects(records=(SessionChanged("10.0.1.2", "vxc1", "DOWN", "hold timer expired"),)),
        Effects(records=(SessionChanged("10.0.1.2", "vxc1", "UP"),)),
    )
    assert out == [
        ("session", {"type": "session", "mcr": MCR, "timestamp": TS, "peer": "10.0.1.2", "vxc": "vxc1",
                     "state": "DOWN", "reason": "hold timer expired"}),
        ("session", {"type": "session", "mcr": MCR, "timestamp": TS, "peer": "10.0.1.2", "vxc": "vxc1",
                     "state": "UP", "reason": None}),
    ]


def test_one_routes_message_per_round_with_prefixes_per_session() -> None:
    effects = Effects(
        announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24", "198.51.100.0/24")),
                  Announce("10.0.3.2", ATTRS, ("192.0.2.0/24",))),
        withdraw=(Withdraw("10.0.2.2", ("203.0.113.0/24",)),),
        best_added=("192.0.2.0/24", "198.51.100.0/24"),
        best_removed=("203.0.113.0/24",),
        records=(ReceivedChanged("10.0.1.2", ("192.0.2.0/24", "198.51.100.0/24"), ("203.0.113.0/24",), 2),),
    )
    out = messages(effects)
    assert len(out) == 1
    suffix, payload = out[0]
    assert suffix == "routes"
    assert payload["rounds"] == 1
    assert payload["sessions"] == [
        {"peer": "10.0.1.2", "received": {"accepted": ["192.0.2.0/24", "198.51.100.0/24"],
                                          "removed": ["203.0.113.0/24"], "rejected": 2},
         "sent": {"announced": [], "withdrawn": []}},
        {"peer": "10.0.2.2", "received": {"accepted": [], "removed": [], "rejected": 0},
         "sent": {"announced": ["192.0.2.0/24", "198.51.100.0/24"], "withdrawn": ["203.0.113.0/24"]}},
        {"peer": "10.0.3.2", "received": {"accepted": [], "removed": [], "rejected": 0},
         "sent": {"announced": ["192.0.2.0/24"], "withdrawn": []}},
    ]
    assert payload["best"] == {"added": ["192.0.2.0/24", "198.51.100.0/24"], "removed": ["203.0.113.0/24"]}


def test_rounds_of_a_batch_merge_into_one_message_the_last_action_winning() -> None:
    first = Effects(announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24", "198.51.100.0/24")),),
                    best_added=("192.0.2.0/24", "198.51.100.0/24"),
                    records=(ReceivedChanged("10.0.1.2", ("192.0.2.0/24", "198.51.100.0/24"), (), 0),))
    second = Effects(withdraw=(Withdraw("10.0.2.2", ("192.0.2.0/24",)),),
                     best_removed=("192.0.2.0/24",),
                     records=(ReceivedChanged("10.0.1.2", (), ("192.0.2.0/24",), 1),))
    third = Effects(announce=(Announce("10.0.2.2", ATTRS, ("203.0.113.0/24",)),), best_added=("203.0.113.0/24",),
                    records=(ReceivedChanged("10.0.1.2", ("203.0.113.0/24",), (), 0),))
    out = messages(first, second, third)
    assert [suffix for suffix, _ in out] == ["routes"]
    payload = out[0][1]
    assert payload["rounds"] == 3
    received, sent = payload["sessions"][0]["received"], payload["sessions"][1]["sent"]
    assert received == {"accepted": ["198.51.100.0/24", "203.0.113.0/24"], "removed": ["192.0.2.0/24"],
                        "rejected": 1}
    assert sent == {"announced": ["198.51.100.0/24", "203.0.113.0/24"], "withdrawn": ["192.0.2.0/24"]}
    assert payload["best"] == {"added": ["198.51.100.0/24", "203.0.113.0/24"], "removed": ["192.0.2.0/24"]}


def test_records_first_in_order_then_route_limit_then_routes() -> None:
    out = messages(
        Effects(records=(SessionChanged("10.0.1.2", "vxc1", "UP"), RouteLimitReached(5, 3, 3))),
        Effects(announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24",)),),
                records=(ConfigApplied(("10.0.4.2",), ("10.0.3.2",), ("10.0.1.2",)), RouteLimitReached(5, 2, 4),
                         InputIgnored("update from 10.0.9.2", "no such peer"))),
    )
    assert [suffix for suffix, _ in out] == ["session", "config", "route-limit", "routes"]
    config, limit = out[1][1], out[2][1]
    assert (config["result"], config["peers_added"], config["peers_removed"], config["reevaluated"]) == (
        "applied", ["10.0.4.2"], ["10.0.3.2"], ["10.0.1.2"])
    assert (limit["limit"], limit["refused"], limit["waiting"]) == (5, 5, 4)


def test_weight_counts_the_prefixes() -> None:
    effects = Effects(announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24", "198.51.100.0/24")),),
                      best_added=("192.0.2.0/24", "198.51.100.0/24"),
                      records=(ReceivedChanged("10.0.1.2", ("192.0.2.0/24", "198.51.100.0/24"), (), 0),))
    (_, routes), = messages(effects)
    assert payloads.weight(routes) == 1 + 2 + 2 + 2 + 2  # itself, two sessions, three lists of two prefixes
    assert payloads.weight(messages(Effects(records=(SessionChanged("p", "v", "UP"),)))[0][1]) == 1


def test_nothing_to_say_nothing_sent() -> None:
    assert messages(Effects()) == []
    assert messages() == []
    assert messages(Effects(records=(ReceivedChanged("10.0.1.2", (), (), 0), InputIgnored("x", "y")))) == []
    assert routes_message([Effects()], mcr=MCR, timestamp=TS) is None


def test_from_the_real_route_processor() -> None:
    processor = RouteProcessor()
    from mcrd.rib.inputs import ConfigChanged

    processor.handle(ConfigChanged(peer_config([{}, {}])), 0.0)
    ups = [processor.handle(PeerUp(peer_ip(n), f"1.1.1.{n}"), 1.0) for n in (1, 2)]
    announced = processor.handle(
        RoutesAnnounced(peer_ip(1), PathAttributes(peer_ip(1), (64601,)), ("192.0.2.0/24", "198.51.100.0/24")), 2.0)
    withdrawn = processor.handle(RoutesWithdrawn(peer_ip(1), ("192.0.2.0/24",)), 3.0)
    out = messages(*ups, announced, withdrawn)
    assert [(s, p.get("state")) for s, p in out] == [("session", "UP"), ("session", "UP"), ("routes", None)]
    routes = {s["peer"]: s for s in out[-1][1]["sessions"]}
    assert routes[peer_ip(1)]["received"] == {"accepted": ["198.51.100.0/24"], "removed": ["192.0.2.0/24"],
                                              "rejected": 0}
    assert routes[peer_ip(2)]["sent"] == {"announced": ["198.51.100.0/24"], "withdrawn": ["192.0.2.0/24"]}

    down = processor.handle(PeerDown(peer_ip(1), "hold timer expired"), 4.0)
    out = messages(down)
    assert out[0][1] | {"timestamp": None} == {"type": "session", "mcr": MCR, "timestamp": None,
                                                "peer": peer_ip(1), "vxc": "vxc1", "state": "DOWN",
                                                "reason": "hold timer expired"}
    routes = {s["peer"]: s for s in out[1][1]["sessions"]}
    assert routes[peer_ip(1)]["received"]["removed"] == ["198.51.100.0/24"]
    assert routes[peer_ip(2)]["sent"]["withdrawn"] == ["198.51.100.0/24"]


# --- secrets ------------------------------------------------------------------------------------------------------

CONN_PATH = "vxcs[0].vrouter.interfaces[0].bgpConnections[0]"


def _rejected_config(password_lines: str) -> list[ConfigProblem]:
    text = f"""
mcr:
  productName: x
vxcs:
  - productName: v
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [169.254.0.1/30]
          bgpConnections:
            - peerAsn: 65001
              localIpAddress: 169.254.0.1
              peerIpAddress: 169.254.0.2
{password_lines}
"""
    with pytest.raises(ConfigError) as error:
        parse_config(text, "mcrd.yaml")
    return error.value.problems


@pytest.mark.parametrize(
    ("lines", "secret_texts"),
    [
        ("              password: hunter2secret\n              password: other99secret",
         ["hunter2secret", "other99secret"]),
        ("              password: 123456789", ["123456789"]),
        ("              password: 12345678901234567890123456", ["12345678901234567890123456"]),
        ('              password: "abc\\u0001defghi"', ["defghi"]),
    ],
    ids=["duplicate-key", "not-a-string", "too-long", "unprintable"],
)
def test_config_rejected_never_quotes_a_password(lines: str, secret_texts: list[str]) -> None:
    problems = _rejected_config(lines)
    _, payload = config_rejected_message(problems, mcr=MCR, timestamp=TS)
    assert payload["result"] == "rejected"
    assert len(payload["problems"]) == len(problems) >= 1
    text = json.dumps(payload)
    for secret in secret_texts:
        assert secret not in text
    assert all(line.startswith("mcrd.yaml:") for line in payload["problems"])


def test_problem_lines_keep_what_is_safe() -> None:
    long = ConfigProblem("c.yaml", 13, f"{CONN_PATH}.password", "is 30 characters long, at most 25 allowed")
    assert problem_line(long) == str(long)
    quoted = ConfigProblem("c.yaml", 13, f"{CONN_PATH}.password", "123456 is not a string")
    assert problem_line(quoted) == (f"c.yaml:13: {CONN_PATH}.password: has an invalid value "
                                    "(not shown: the field holds a secret)")
    token = ConfigProblem("c.yaml", 3, "api.token", "'s3cr3t\\x00' is not a string")
    assert "s3cr3t" not in problem_line(token)
    other = ConfigProblem("c.yaml", 2, "mcr.mcrAsn", "'abc' is not an integer")
    assert problem_line(other) == str(other)
    duplicate = ConfigProblem("c.yaml", 9, "", 'duplicate key "description" with value "a" (original value: "b")')
    assert problem_line(duplicate) == str(duplicate)
    # A configured secret quoted anywhere (the running config's, given by the caller) becomes ****.
    anywhere = ConfigProblem("c.yaml", 5, "vxcs[0].productName", "'topsecret-md5' is not allowed here")
    assert problem_line(anywhere, ["topsecret-md5"]) == "c.yaml:5: vxcs[0].productName: '****' is not allowed here"


def test_reasons_are_redacted_with_the_configured_secrets() -> None:
    config = peer_config([{"password": "md5-secret-1"}], mcr={"productName": MCR})
    secrets = secrets_of(config)
    assert secrets == ["md5-secret-1"]
    _, payload = exabgp_restart_message("died: neighbor md5 md5-secret-1", 3, mcr=MCR, timestamp=TS,
                                        secrets=secrets)
    assert payload == {"type": "exabgp", "mcr": MCR, "timestamp": TS, "event": "restart",
                       "reason": "died: neighbor md5 ****", "restarts": 3}
    out = messages(Effects(records=(SessionChanged("10.0.1.2", "vxc1", "DOWN", "key md5-secret-1 refused"),)),
                   secrets=tuple(secrets))
    assert out[0][1]["reason"] == "key **** refused"


# --- topics, time ---------------------------------------------------------------------------------------------------


def test_topics() -> None:
    assert topic("mcrd", "lab-mcr", "session") == "mcrd/lab-mcr/session"
    assert topic("site/a/", "lab-mcr", "routes") == "site/a/lab-mcr/routes"
    assert topic("mcrd", "MCR #1 / Sydney+", "config") == "mcrd/MCR _1 _ Sydney_/config"


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1714564800.1234) == "2024-05-01T12:00:00.123Z"


def test_payloads_module_is_pure() -> None:
    path = Path(payloads.__file__)
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    io = {"asyncio", "logging", "structlog", "socket", "os", "subprocess", "threading", "time", "random",
          "aiomqtt", "paho", "io", "pathlib", "shutil", "json", "ssl"}
    assert not imported & io
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not calls & {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


# --- the documentation matches ---------------------------------------------------------------------------------------


def _doc_examples() -> dict[str, list[dict[str, Any]]]:
    examples: dict[str, list[dict[str, Any]]] = {}
    for block in re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.DOTALL):
        example = json.loads(block)
        if isinstance(example, dict) and "type" in example:
            examples.setdefault(example["type"], []).append(example)
    return examples


def test_docs_examples_have_the_fields_the_code_sends() -> None:
    examples = _doc_examples()
    effects = Effects(
        announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24",)),), best_added=("192.0.2.0/24",),
        records=(SessionChanged("10.0.1.2", "vxc1", "UP"), ConfigApplied(("10.0.1.2",), (), ()),
                 RouteLimitReached(10, 1, 1), ReceivedChanged("10.0.1.2", ("192.0.2.0/24",), (), 0)))
    produced = [*messages(effects), config_rejected_message([], mcr=MCR, timestamp=TS),
                exabgp_restart_message("x", 1, mcr=MCR, timestamp=TS),
                interface_message("eth1", "aws-vxc", "interface eth1 is administratively down", mcr=MCR, timestamp=TS),
           bfd_message("10.0.1.2", "vxc1", "UP", "DOWN", "CONTROL_DETECTION_TIME_EXPIRED", mcr=MCR, timestamp=TS)]
    for suffix, payload in produced:
        documented = examples.get(suffix, [])
        assert documented, f"no example for {suffix} in docs/events.md"
        wanted = {*payload, "seq"}  # the publisher adds seq
        same_kind = [e for e in documented if e.get("result", None) == payload.get("result", None)]
        assert same_kind, f"no example of {suffix} {payload.get('result')}"
        for example in same_kind:
            assert set(example) == wanted, f"{suffix}: {sorted(set(example) ^ wanted)}"
            if suffix == "routes":
                assert set(example["sessions"][0]) == set(payload["sessions"][0])
                assert set(example["sessions"][0]["received"]) == set(payload["sessions"][0]["received"])
                assert set(example["sessions"][0]["sent"]) == set(payload["sessions"][0]["sent"])
