"""structlog set-up: JSON lines when not on a terminal, readable lines on one; secrets never printed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog


class Redactor:
    """Replaces every configured secret (MD5 keys, tokens) wherever it appears in an event."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def set(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if self.secrets:
            for key, value in event.items():
                if isinstance(value, str):
                    for secret in self.secrets:
                        value = value.replace(secret, "****")
                    event[key] = value
        return event


REDACTOR = Redactor()


def configure(log_format: str | None = None, level: str = "info") -> None:
    fmt = log_format or ("console" if sys.stderr.isatty() else "json")
    renderer: Any = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
