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
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from mcrd.config.model import Config
from mcrd.config.rules import PROBLEMS_ERROR

Loc = tuple[str | int, ...]

# Bounds on what a config text may cost to read (docs/THREAT-MODEL.md). Written out, a config has at most one value
# per character; YAML aliases (`*a`) may add ALIAS_VALUES more, no further: a 300-byte alias bomb would otherwise
# expand to millions of values, seconds and gigabytes. ruamel's scanner is quadratic in the depth of `[`/`{`
# nesting, so deeper flow nesting than MAX_FLOW_DEPTH is refused before ruamel reads it (a config needs about 10).
ALIAS_VALUES = 10_000
MAX_FLOW_DEPTH = 64
NESTED_TOO_DEEPLY = "the config is nested too deeply"


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


def read_document(path: Path, what: str) -> str:
    """The text of a config-like file (`what` names it in the message), or a ConfigError saying why not."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigProblem(str(path), 0, "", f"cannot read the {what}: {reason}")]) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    return parse_config(read_document(path, "config"), str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    data, lines = parse_document(text, source)
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


def parse_document(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    if text.lstrip().startswith(("{", "[")):
        # JSON: a tab is only ever whitespace outside strings there (JSON strings cannot hold a raw tab),
        # and YAML forbids tabs as indentation, so spaces keep lines and meaning.
        text = text.replace("\t", " ")
    deep = _flow_too_deep(text)
    if deep:
        raise ConfigError([ConfigProblem(source, deep, "", NESTED_TOO_DEEPLY)])
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Constructor = _Constructor
    try:
        doc = yaml.load(text)
        lines: dict[Loc, int] = {(): 1}
        return _Plain(len(text) + ALIAS_VALUES, lines).plain(doc, ()), lines
    except _AliasBombError as exc:
        message = (f"YAML aliases expand the config past {ALIAS_VALUES} values more than it writes out "
                   "(an alias bomb?): refused")
        raise ConfigError([ConfigProblem(source, exc.line, format_path(exc.loc), message)]) from None
    except _BadValueError as exc:
        raise ConfigError([ConfigProblem(source, exc.line, "", exc.message)]) from None
    except RecursionError:
        # ruamel's parser and `_plain` both recurse once per nesting level.
        raise ConfigError([ConfigProblem(source, 1, "", NESTED_TOO_DEEPLY)]) from None
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


def _flow_too_deep(text: str) -> int:
    """The line where `[`/`{` nesting passes MAX_FLOW_DEPTH, or 0. Brackets in quoted scalars and comments do not
    count; a quote opens a scalar only where one can start (`it's` is plain text), as in YAML. Brackets inside
    plain scalars do count: that can only over-count, and no config nests 64 deep."""
    depth = 0
    state = ""  # "" outside quotes, '"' or "'" inside a quoted scalar, "#" in a comment
    skip = -1  # the character after a backslash in a double-quoted scalar
    for match in _FLOW_CHARS.finditer(text):
        char, pos = match.group(), match.start()
        if pos == skip:
            continue
        if state == '"':
            if char == "\\":
                skip = pos + 1
            elif char == '"':
                state = ""
        elif state == "'":
            if char == "'" and text.startswith("'", pos + 1):
                skip = pos + 1  # `''` is a quote inside the scalar
            elif char == "'":
                state = ""
        elif state == "#":
            state = "" if char == "\n" else state
        elif char in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                return text.count("\n", 0, pos) + 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "#":
            state = "#" if pos == 0 or text[pos - 1] in " \t\n" else ""
        elif char in "\"'" and _scalar_starts(text, pos):
            state = char
    return 0


_FLOW_CHARS = re.compile(r"""[\[\]{}"'#\n\\]""")


def _scalar_starts(text: str, pos: int) -> bool:
    """Whether a quote at `pos` opens a quoted scalar for ruamel too: after `[`, `{`, `,`, `: `, a JSON key's `:`,
    an indentation's `- ` or `? `, or at the start of a line. Elsewhere it is part of a plain scalar, and taking
    it for a quote could hide real brackets from the count."""
    j = pos - 1
    while j >= 0 and text[j] in " \t":  # walks back over the spaces just before `pos` only
        j -= 1
    if j < 0 or text[j] in "\n[{,":
        return True
    spaced = j < pos - 1
    if text[j] == ":":
        return spaced or (j > 0 and text[j - 1] in "\"'")
    if text[j] in "-?" and spaced:
        start = text.rfind("\n", max(0, j - 200), j) + 1  # an indentation of `- ` and `? ` (a bounded look)
        return (start > 0 or j < 200) and not text[start:j].strip(" \t-?")
    return False


class _AliasBombError(Exception):
    def __init__(self, line: int, loc: Loc) -> None:
        self.line = line
        self.loc = loc


class _BadValueError(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, with the line of a value it cannot build (`2020-13-45`, an integer of
    more than 4300 digits): it raises a bare ValueError otherwise."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:
            if isinstance(exc, _BadValueError):
                raise
            what = "a number of more than 4300 digits" if "integer string conversion" in str(exc) else str(exc)
            value = str(node.value)
            value = value if len(value) <= 40 else value[:37] + "..."
            raise _BadValueError(node.start_mark.line + 1, f"{value}: {what}") from None


class _Plain:
    """Plain dicts, lists and scalars (ruamel's subclasses confuse strict validation), recording lines; at most
    `budget` values, so that aliases cannot expand the config without bound."""

    def __init__(self, budget: int, lines: dict[Loc, int]) -> None:
        self.budget = budget
        self.lines = lines
        self.seen: set[int] = set()  # the collections met so far: meeting one again is meeting an alias of it
        self.alias_at: Loc | None = None  # the outermost alias being expanded, named when the budget runs out

    def plain(self, node: Any, loc: Loc) -> Any:
        self.budget -= 1
        if self.budget < 0:
            at = self.alias_at if self.alias_at is not None else loc
            raise _AliasBombError(_line(self.lines, at[:-1]), at)  # the line of the key or list that holds the alias
        if not isinstance(node, CommentedMap | CommentedSeq):
            return _scalar(node)
        self.lines.setdefault(loc, node.lc.line + 1)
        outermost = self.alias_at is None and id(node) in self.seen
        if outermost:
            self.alias_at = loc
        self.seen.add(id(node))
        out = self._map(node, loc) if isinstance(node, CommentedMap) else self._seq(node, loc)
        if outermost:
            self.alias_at = None
        return out

    def _map(self, node: CommentedMap, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            # Every key the model knows is a string; `1:` or `? [a]` becomes an unknown field with its name.
            kloc = (*loc, str(key))
            self.lines[kloc] = _key_line(node, key)
            out[str(key)] = self.plain(value, kloc)
        return out

    def _seq(self, node: CommentedSeq, loc: Loc) -> list[Any]:
        items = []
        for i, value in enumerate(node):
            iloc = (*loc, i)
            self.lines[iloc] = node.lc.item(i)[0] + 1
            items.append(self.plain(value, iloc))
        return items


def _key_line(node: CommentedMap, key: Any) -> int:
    # A key merged in by `<<: *a` has no position of its own in this mapping: the mapping's line stands for it.
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, TypeError):
        return int(node.lc.line) + 1


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
