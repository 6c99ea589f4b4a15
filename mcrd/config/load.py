"""Read a config file (YAML, or JSON) into a `Config`, with every problem as `FILE:LINE: path: message`."""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from mcrd.config.model import Config
from mcrd.config.rules import PROBLEMS_ERROR

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    source: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        # Line 0 means the problem is with the file as a whole (it cannot be read): no line to name.
        at = f"{self.source}:{self.line}" if self.line else self.source
        where = f"{self.path}: " if self.path else ""
        return f"{at}: {where}{self.message}"


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds every problem found, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigProblem(str(path), 0, "", f"cannot read the config: {reason}")]) from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    data, lines = _parse_document(text, source)
    if data is None:
        raise ConfigError([ConfigProblem(source, 1, "", "the config is empty: it needs at least mcr: or vxcs:")])
    if not isinstance(data, dict):
        message = f"the config is {_shape(data)}; it must be a mapping (with mcr:, vxcs:, ...)"
        raise ConfigError([ConfigProblem(source, 1, "", message)])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(source, lines, err) for err in exc.errors(include_url=False)]
        expanded = [p for group in problems for p in group]
        expanded.sort(key=lambda p: (p.line, p.path))
        raise ConfigError(expanded) from None


def _parse_document(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    if text.lstrip().startswith(("{", "[")):
        # JSON: a tab is only ever whitespace outside strings there (JSON strings cannot hold a raw tab),
        # and YAML forbids tabs as indentation, so spaces keep lines and meaning.
        text = text.replace("\t", " ")
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
        lines: dict[Loc, int] = {(): 1}
        return _plain(doc, (), lines), lines
    except RecursionError:
        # ruamel's parser and `_plain` both recurse once per nesting level.
        raise ConfigError([ConfigProblem(source, 1, "", "the config is nested too deeply")]) from None
    except DuplicateKeyError as exc:
        # Not a syntax error: a key given twice, where YAML would silently keep one of the two.
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        what = _one_line(exc.problem or "duplicate key").removeprefix("found ")
        if re.match(r'duplicate key "(password|token)"', what):
            what = what.split(" with value ")[0]  # the values are keys: never shown
        raise ConfigError([ConfigProblem(source, line, "", what)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = _one_line(" ".join(filter(None, [exc.context, exc.problem])) or "syntax error")
        if "'\\t'" in what:
            what += " (indent YAML with spaces, not tabs)"
        raise ConfigError([ConfigProblem(source, line, "", f"YAML syntax error: {what}")]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(source, 1, "", f"YAML error: {_one_line(str(exc))}")]) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plain(node: Any, loc: Loc, lines: dict[Loc, int]) -> Any:
    """Plain dicts, lists and scalars (ruamel's subclasses confuse strict validation), recording lines."""
    if isinstance(node, CommentedMap):
        lines.setdefault(loc, node.lc.line + 1)
        out: dict[Any, Any] = {}
        for key, value in node.items():
            # Every key the model knows is a string; `1:` or `? [a]` becomes an unknown field with its name.
            kloc = (*loc, str(key))
            lines[kloc] = node.lc.key(key)[0] + 1
            out[str(key)] = _plain(value, kloc, lines)
        return out
    if isinstance(node, CommentedSeq):
        lines.setdefault(loc, node.lc.line + 1)
        items = []
        for i, value in enumerate(node):
            iloc = (*loc, i)
            lines[iloc] = node.lc.item(i)[0] + 1
            items.append(_plain(value, iloc, lines))
        return items
    return _scalar(node)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, ScalarBoolean):  # an anchored `&a true` (an int subclass, not a bool)
        return bool(value)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _problem(source: str, lines: dict[Loc, int], err: Any) -> list[ConfigProblem]:
    loc: Loc = tuple(err["loc"])
    if err["type"] == PROBLEMS_ERROR:
        return [
            ConfigProblem(source, _line(lines, (*loc, *sub)), format_path((*loc, *sub)), message)
            for sub, message in err["ctx"]["problems"]
        ]
    return [ConfigProblem(source, _line(lines, loc), format_path(loc), _message(err, loc))]


def _message(err: Any, loc: Loc) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind in ("bool_type", "bool_parsing"):
        return f"{_shape(value)} is not true or false"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{_shape(value)} where a mapping is expected"
    if kind in ("tuple_type", "list_type"):
        return f"{_shape(value)} where a list is expected"
    msg: str = err["msg"]
    return msg


def _shape(value: object) -> str:
    if value is None:
        return "null"  # the YAML spelling, e.g. a key with nothing after it
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _unknown_field(loc: Loc) -> str:
    # Suggest the nearest known field: `peerASN` for `peerAsn` is the common slip.
    name = str(loc[-1])
    known = _fields_at(Config, loc[:-1])
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if known else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {name!r}{hint}"


def _fields_at(cls: Any, loc: Loc) -> list[str]:
    for step in loc:
        if isinstance(step, int):
            continue
        field = next((f for f in cls.model_fields.values() if f.alias == step), None)
        if field is None:
            return []
        cls = _model_in(field.annotation)
        if cls is None:
            return []
    return [f.alias for f in cls.model_fields.values() if f.alias]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _line(lines: dict[Loc, int], loc: Loc) -> int:
    while loc not in lines:
        loc = loc[:-1]
    return lines[loc]


def format_path(loc: Loc) -> str:
    out = ""
    for step in loc:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out
