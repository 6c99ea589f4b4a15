"""What the looking glass (the HTTP API and the web page) reads and asks of the daemon."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mcrd.config.model import Config
from mcrd.lg.configapi import ConfigOutcome
from mcrd.lg.metrics import DaemonMetrics
from mcrd.rib.processor import RouteProcessor


class Backend(Protocol):
    """What the API reads and asks of the daemon."""

    @property
    def processor(self) -> RouteProcessor: ...

    @property
    def config(self) -> Config: ...

    @property
    def metrics(self) -> DaemonMetrics: ...

    def health(self) -> list[str]:
        """Why the daemon is not healthy; empty when it is."""
        ...

    def bfd_status(self) -> Mapping[str, Any]:
        """The BFD sessions (mcrd.bfd.BfdStatus) by peer address."""
        ...

    async def apply_config(self, config: Config, source: str) -> ConfigOutcome:
        """Validate `config` against the running one and apply it, as SIGHUP does."""
        ...
