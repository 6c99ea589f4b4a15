"""ExaBGP API commands rendered from the processor's effects."""

from __future__ import annotations

from mcrd.bgp.commands import announce_commands, withdraw_commands
from mcrd.rib.attributes import Origin, PathAttributes
from mcrd.rib.effects import Announce, Withdraw


def test_prefixes_sharing_attributes_go_in_one_command() -> None:
    attrs = PathAttributes("169.254.10.1", (133937, 133937, 12076), Origin.IGP, med=50, communities=("65000:1",))
    [command] = announce_commands(Announce("169.254.10.2", attrs, ("10.30.0.0/16", "10.31.0.0/16")))
    assert command == (
        "neighbor 169.254.10.2 announce attributes next-hop 169.254.10.1 origin igp "
        "as-path [ 133937 133937 12076 ] med 50 community [ 65000:1 ] nlri 10.30.0.0/16 10.31.0.0/16"
    )


def test_ibgp_local_preference_and_as_sets() -> None:
    attrs = PathAttributes("10.0.0.1", (), Origin.INCOMPLETE, local_pref=100, as_set=(1, 2))
    [command] = announce_commands(Announce("10.0.0.2", attrs, ("10.9.0.0/16",)))
    assert "origin incomplete as-path [  ( 1 2 ) ] local-preference 100 nlri 10.9.0.0/16" in command


def test_long_lists_are_split_and_nothing_is_lost() -> None:
    prefixes = tuple(f"10.{i // 256}.{i % 256}.0/24" for i in range(1234))
    commands = list(withdraw_commands(Withdraw("10.0.0.2", prefixes), size=500))
    assert len(commands) == 3
    sent = [p for c in commands for p in c.removeprefix("neighbor 10.0.0.2 withdraw attributes nlri ").split()]
    assert tuple(sent) == prefixes
