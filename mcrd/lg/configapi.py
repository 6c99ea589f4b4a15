"""The config API's pure parts: the running config with its secrets hidden, secrets carried over from the running
config into a new one, and the outcome of applying a config.

Secrets are the BGP connections' `password` (TCP MD5 keys), `api.token` and `events.mqtt.password`. `GET /config`
replaces each by `SECRET_MARKER`. A config sent back with the marker in one of those places keeps the running value
there (matched by peer address for a BGP connection), so that GET, edit, PUT never writes the marker as a key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mcrd.config.load import ConfigProblem, format_path
from mcrd.config.model import Config
from mcrd.rib.effects import ConfigApplied

SECRET_MARKER = "********"

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigOutcome:
    """What applying a config did: refused with `problems`, or applied (`applied` from the route processor)."""

    problems: tuple[ConfigProblem, ...] = ()
    applied: ConfigApplied | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def dump(config: Config) -> dict[str, Any]:
    """The config as written (fields left out stay out), in the file's camelCase names."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data


def redacted(config: Config) -> dict[str, Any]:
    """The config with every secret replaced by `SECRET_MARKER`."""
    data = dump(config)
    for loc, _ in _secrets(data):
        _set(data, loc, SECRET_MARKER)
    return data


def problem_record(problem: ConfigProblem) -> dict[str, Any]:
    return {"line": problem.line, "path": problem.path, "message": problem.message, "text": str(problem)}


def keep_running_secrets(new: Config, running: Config, source: str) -> tuple[Config, list[ConfigProblem]]:
    """`new` with each `SECRET_MARKER` replaced by the running config's secret in the same place; a marker with
    no running secret to stand for is a problem."""
    data = dump(new)
    marked = [(loc, key) for loc, key in _secrets(data) if _get(data, loc) == SECRET_MARKER]
    if not marked:
        return new, []
    running_data = dump(running)
    by_key = {key: loc for loc, key in _secrets(running_data)}
    problems: list[ConfigProblem] = []
    for loc, key in marked:
        old = by_key.get(key)
        value = _get(running_data, old) if old is not None else None
        if isinstance(value, str):
            _set(data, loc, value)
        else:
            problems.append(ConfigProblem(source, 0, format_path(loc), (
                f"is the marker {SECRET_MARKER!r} of GET /config, but the running config has no "
                f"{_describe(key)} to keep: give the secret itself")))
    if problems:
        return new, problems
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:  # the running secrets were valid where they were: not expected
        return new, [ConfigProblem(source, 0, format_path(tuple(err["loc"])), err["msg"]) for err in exc.errors()]


def _describe(key: str) -> str:
    kind, _, peer = key.partition(" ")
    return f"password for the BGP connection with {peer}" if kind == "bgp" else key


def _secrets(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Where secrets are in a dumped config, each with a key that names the same secret in another config."""
    for v, vxc in enumerate(_list(data.get("vxcs"))):
        for i, iface in enumerate(_list(_dict(vxc.get("vrouter")).get("interfaces"))):
            for c, conn in enumerate(_list(iface.get("bgpConnections"))):
                if conn.get("password") is not None:
                    loc: Loc = ("vxcs", v, "vrouter", "interfaces", i, "bgpConnections", c, "password")
                    yield loc, f"bgp {conn.get('peerIpAddress')}"
    if _dict(data.get("api")).get("token") is not None:
        yield ("api", "token"), "api.token"
    if _dict(_dict(data.get("events")).get("mqtt")).get("password") is not None:
        yield ("events", "mqtt", "password"), "events.mqtt.password"


def _list(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _get(data: Any, loc: Loc) -> Any:
    for step in loc:
        data = data[step]
    return data


def _set(data: Any, loc: Loc, value: Any) -> None:
    _get(data, loc[:-1])[loc[-1]] = value
