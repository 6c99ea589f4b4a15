"""A structlog stand-in for tests: records what the code under test logs."""

from __future__ import annotations

from typing import Any


class RecordingLog:
    """Every call `log.<level>(event, **fields)` kept in `lines` as (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        """The fields of each `name` event, in order."""
        return [fields for _, event, fields in self.lines if event == name]

    def leveled(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """(level, fields) of each `name` event, in order."""
        return [(level, fields) for level, event, fields in self.lines if event == name]
