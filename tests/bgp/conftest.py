"""ExaBGP's own configuration reader and API parser, for tests that check what mcrd sends against ExaBGP itself."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NEIGHBORS = {  # peer -> (local address, family)
    "192.0.2.1": ("192.0.2.2", "ipv4"),
    "198.51.100.1": ("198.51.100.2", "ipv4"),
    "2001:db8::1": ("2001:db8::2", "ipv6"),
}

@pytest.fixture(scope="session")
def exabgp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from exabgp.configuration.configuration import Configuration  # type: ignore[import-untyped]
    from exabgp.environment import getenv  # type: ignore[import-untyped]
    from exabgp.logger.option import option  # type: ignore[import-untyped]
    from exabgp.reactor.api import API  # type: ignore[import-untyped]

    option.setup(getenv())
    conf_path = tmp_path_factory.mktemp("exabgp") / "exabgp.conf"
    conf_path.write_text("".join(
        f"neighbor {peer} {{ router-id 192.0.2.254; local-address {local}; local-as 133937; peer-as 64512;"
        f" family {{ {family} unicast; }} }}\n"
        for peer, (local, family) in NEIGHBORS.items()
    ))
    conf = Configuration([str(conf_path)])
    assert conf.reload(), "ExaBGP did not read the test configuration"
    return conf, API(conf)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A daemon state directory for a real ExaBgpSpeaker, under /tmp: the API socket's path has a length limit."""
    path = Path(tempfile.mkdtemp(prefix="mcrd-speaker-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
