"""mcrd's fixes to ExaBGP's announce path (mcrd/bgp/exabgp_launch.py) give what stock ExaBGP gives.

The changes compared here are made by ExaBGP's own parser from the commands mcrd sends, for neighbors built by
ExaBGP's own configuration reader. The fixes are not installed in this process (`apply()` runs in a subprocess), so
`Neighbor.remove_self` below is ExaBGP's.
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from exabgp.bgp.message import Action  # type: ignore[import-untyped]
from exabgp.bgp.neighbor import Neighbor  # type: ignore[import-untyped]

from mcrd.bgp import exabgp_fastpath, exabgp_hook, exabgp_launch, exabgp_receive
from mcrd.bgp.commands import attributes_text
from mcrd.route.attributes import Origin, PathAttributes
from tests.bgp.conftest import NEIGHBORS

COMMANDS = [
    "announce attributes " + attributes_text(PathAttributes("self", (133937, 65000, 65001), Origin.IGP, med=100,
                                                            communities=("65000:1", "65000:2")))
    + " nlri 10.0.0.0/24 10.0.1.0/24 10.0.2.0/23",
    "announce attributes " + attributes_text(PathAttributes("self", (133937,), Origin.INCOMPLETE, local_pref=200))
    + " nlri 10.9.0.0/16",
    "announce attributes " + attributes_text(PathAttributes("self", (133937, 64512), Origin.EGP, as_set=(64600, 64601)))
    + " nlri 172.16.0.0/12",
    "announce attributes " + attributes_text(PathAttributes("self", (), Origin.IGP, local_pref=100, as_set=(64600,)))
    + " nlri 10.11.0.0/16",
    "announce attributes " + attributes_text(PathAttributes("192.0.2.9", (133937,))) + " nlri 10.10.0.0/16",
    "announce attributes " + attributes_text(PathAttributes("self", (133937, 65010))) + " nlri 2001:db8:1::/48",
    "withdraw attributes nlri 10.0.0.0/24 10.0.1.0/24",
    "withdraw attributes nlri 2001:db8:1::/48",
]


def _changes(exabgp: Any, command: str) -> tuple[list[Any], list[Any]]:
    conf, api = exabgp
    changes = api.api_attributes(command, list(conf.neighbors))
    assert changes, f"ExaBGP did not parse {command!r}"
    for change in changes:  # what ExaBGP's command callback does before injecting
        change.nlri.action = Action.ANNOUNCE if command.startswith("announce") else Action.WITHDRAW
    family = "ipv6" if ":" in command.rsplit("nlri", 1)[1] else "ipv4"
    neighbors = [n for name, n in conf.neighbors.items() if NEIGHBORS[name.split()[1]][1] == family]
    return changes, neighbors


def _seen(change: Any) -> tuple[object, ...]:
    """Everything of a change that ExaBGP reads afterwards: its text, indexes, next hop, action, attributes."""
    return (change.extensive(), change.index(), change.attributes.index(), change.attributes.json(),
            str(change.nlri.nexthop), change.nlri.action, sorted(change.attributes))


@pytest.mark.parametrize("command", COMMANDS)
def test_remove_self_gives_what_exabgps_own_gives(exabgp: Any, command: str) -> None:
    # Nothing is read from the injected changes before both versions ran: ExaBGP's deepcopy also copies the text
    # caches of the attribute set, so a cache filled before the copy would name `next-hop self` in the copy too
    # (ExaBGP fills none of them before; exabgp_launch clears them on the rewritten set).
    changes, neighbors = _changes(exabgp, command)
    results = [(exabgp_launch.remove_self(n, c), Neighbor.remove_self(n, c)) for c in changes for n in neighbors]
    for mine, stock in results:
        assert _seen(mine) == _seen(stock)
    pristine, _ = _changes(exabgp, command)
    assert [_seen(c) for c in changes] == [_seen(c) for c in pristine], "the injected change was modified"


def test_next_hop_self_becomes_each_sessions_own_address(exabgp: Any) -> None:
    changes, neighbors = _changes(exabgp, COMMANDS[0])
    got = {str(exabgp_launch.remove_self(n, changes[0]).nlri.nexthop) for n in neighbors}
    assert got == {"192.0.2.2", "198.51.100.2"}


def test_what_exabgp_changes_later_is_not_shared_with_the_injected_change(exabgp: Any) -> None:
    changes, [first, second] = _changes(exabgp, COMMANDS[0])
    change = changes[0]
    mine = exabgp_launch.remove_self(first, change)
    assert mine.nlri is not change.nlri
    assert mine.attributes is not change.attributes
    mine.nlri.action = Action.WITHDRAW  # OutgoingRIB and the watchdog set the action on stored changes
    assert change.nlri.action == Action.ANNOUNCE
    assert str(exabgp_launch.remove_self(second, change).nlri.nexthop) == "198.51.100.2"


def test_one_rewritten_attribute_set_per_session_and_command(exabgp: Any) -> None:
    changes, [first, second] = _changes(exabgp, COMMANDS[0])
    to_first = [exabgp_launch.remove_self(first, c) for c in changes]
    to_second = [exabgp_launch.remove_self(second, c) for c in changes]
    assert len({id(c.attributes) for c in to_first}) == 1
    assert to_first[0].attributes is not to_second[0].attributes
    [other], _ = _changes(exabgp, COMMANDS[1])  # a new command: a new set, with its own attributes
    assert exabgp_launch.remove_self(first, other).attributes.index() != to_first[0].attributes.index()
    assert "local-preference 200" in exabgp_launch.remove_self(first, other).attributes.index()


def test_sorting_by_index_gives_exabgps_order(exabgp: Any) -> None:
    rng = random.Random(7)
    prefixes = {f"10.{rng.randrange(256)}.{rng.randrange(0, 256, 2)}.0/{rng.choice((23, 24))}" for _ in range(300)}
    changes, _ = _changes(exabgp, "withdraw attributes nlri " + " ".join(prefixes))
    nlris = [c.nlri for c in changes]
    rng.shuffle(nlris)
    assert [id(n) for n in exabgp_launch.sort_by_index(nlris)] == [id(n) for n in sorted(nlris)]


def test_no_poll_timeout_while_commands_are_queued() -> None:
    assert exabgp_launch.poll_timeout(True, 10) == 0
    assert exabgp_launch.poll_timeout(False, 10) == 10


class _Pass:
    """What ExaBGP's `Reactor._wait_for_io` uses of the reactor: its poll, its command queue, its spin guard."""

    def __init__(self) -> None:
        self._poller: Any = select.poll()
        self.asynchronous = types.SimpleNamespace(ready=lambda: True)
        self.spins = 0

    def _prevent_spin(self) -> bool:
        self.spins += 1
        return False


def test_fix_1_forgets_a_closed_socket_the_reactor_left_in_its_poll() -> None:
    """A session's socket closed and left registered: stock ExaBGP counts every pass a spin (and sleeps 10 ms a
    pass past `speed` spins a second); with fix 1 the poll forgets it, and a live socket still wakes it."""
    from exabgp.reactor.loop import Reactor  # type: ignore[import-untyped]

    [(_, _, fixed)] = exabgp_launch._install_poll(exabgp_launch.resolve)
    for wait_for_io, spins in ((Reactor._wait_for_io, 3), (fixed, 0)):
        reactor = _Pass()
        closed, _ = socket.socketpair()
        live, peer = socket.socketpair()
        reactor._poller.register(closed.fileno(), select.POLLIN | select.POLLNVAL)
        reactor._poller.register(live.fileno(), select.POLLIN)
        closed.close()
        peer.send(b"x")
        for _ in range(3):
            assert list(wait_for_io(reactor, 0)) == [live.fileno()]
        assert reactor.spins == spins
        live.close()
        peer.close()


def test_fix_1_lets_the_reactor_unregister_a_descriptor_it_forgot() -> None:
    """The reactor unregisters a closed API descriptor itself when its process goes (no KeyError for one the poll
    forgot: its main loop would die of it); a descriptor registered again is polled again."""
    poller = exabgp_launch.ClosedForgotten(select.poll())
    closed, _ = socket.socketpair()
    fd = closed.fileno()
    poller.register(fd, select.POLLIN)
    closed.close()
    assert poller.poll(0) == []  # POLLNVAL: forgotten
    poller.unregister(fd)
    with pytest.raises(KeyError):
        poller.unregister(fd)  # only once, and only a forgotten one
    live, peer = socket.socketpair()
    poller.register(live.fileno(), select.POLLIN)
    peer.send(b"x")
    assert poller.poll(0) == [(live.fileno(), select.POLLIN)]
    live.close()
    peer.close()


def _snapshot() -> dict[str, Any]:
    """Every hooked name as the installed ExaBGP has it now."""
    return {str(hook): exabgp_launch.resolve(hook) for hooks in exabgp_launch.HOOKS.values() for hook in hooks}


def test_every_hooked_name_and_signature_matches_the_installed_exabgp() -> None:
    assert exabgp_launch.installed_release() == exabgp_launch.TUNED_FOR
    assert exabgp_launch.hook_problems(h for hooks in exabgp_launch.HOOKS.values() for h in hooks) == []


INSTALL_PROBE = """
import json, os, sys
from mcrd.bgp import exabgp_launch
from exabgp.reactor.api.command.command import Command
hooks = list(dict.fromkeys(h for hooks in exabgp_launch.HOOKS.values() for h in hooks))
before = {str(h): exabgp_launch.resolve(h) for h in hooks}
functions = list(Command.functions)
if sys.argv[1] == "break-last":  # the last fix fails once every other replacement, its own included, is made
    refresh = exabgp_launch._INSTALLERS["refresh"]
    exabgp_launch._INSTALLERS["refresh"] = lambda find: [*refresh(find), (object(), "x", 1)]
report = exabgp_launch.install(exabgp_launch.default_fixes())
exabgp_launch.publish(report)
from exabgp.environment import getenv
changed = sorted(str(h) for h in hooks if exabgp_launch.resolve(h) != before[str(h)])
print(json.dumps({"fixes": report.fixes, "reason": report.reason, "changed": changed,
                  "commands": sorted(set(Command.functions) - set(functions)),
                  "callbacks": sorted(k for k in Command.callback["text"] if k.startswith("announce " + "borr")
                                      or k.startswith("announce " + "eorr")),
                  "speed": getenv().reactor.speed,
                  "report": exabgp_launch.Report.from_json(os.environ[exabgp_launch.REPORT_ENV]) == report}))
"""

REPLACED = ["exabgp.bgp.message.open.capability.negotiated.Negotiated._negotiate",
            "exabgp.bgp.message.open.capability.negotiated.Negotiated.validate",
            "exabgp.bgp.message.update.Update._split_nlris", "exabgp.bgp.neighbor.Neighbor.remove_self",
            "exabgp.configuration.neighbor.ParseNeighbor._post_capa_rr",
            "exabgp.reactor.api.command.command.Command.functions", "exabgp.reactor.listener.Listener._new_socket",
            "exabgp.reactor.listener.Listener.incoming",
            "exabgp.reactor.loop.Reactor._listen_for_neighbors", "exabgp.reactor.loop.Reactor._wait_for_io",
            "exabgp.reactor.network.incoming.Incoming.__init__",
            "exabgp.reactor.peer.Peer._main", "exabgp.reactor.peer.Peer._send_ka",
            "exabgp.reactor.peer.Peer.handle_connection",
            "exabgp.reactor.peer.Peer.remove", "exabgp.reactor.peer.Peer.resend",
            "exabgp.reactor.peer.Peer.shutdown", "exabgp.reactor.protocol.Protocol.connect",
            "exabgp.rib.outgoing.OutgoingRIB._update_rib",
            "exabgp.rib.outgoing.OutgoingRIB.pending", "exabgp.rib.outgoing.OutgoingRIB.updates"]
MARKERS = ["announce borr", "announce eorr"]


def _install_probe(mode: str, stock_env: str | None = None, fast_path: str | None = None,
                   receive: str | None = None) -> dict[str, Any]:
    """`fast_path`, `receive`: the values of MCRD_FAST_PATH, MCRD_FAST_RECEIVE (None: not set)."""
    env = {k: v for k, v in os.environ.items()
           if k not in (exabgp_launch.STOCK_ENV, exabgp_fastpath.FAST_PATH_ENV, exabgp_receive.RECEIVE_ENV)}
    if stock_env:
        env[exabgp_launch.STOCK_ENV] = stock_env
    if fast_path is not None:
        env[exabgp_fastpath.FAST_PATH_ENV] = fast_path
    if receive is not None:
        env[exabgp_receive.RECEIVE_ENV] = receive
    out = subprocess.run([sys.executable, "-c", INSTALL_PROBE, mode], capture_output=True, text=True, env=env,
                         check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


FAST_PATH_REPLACED = ["exabgp.reactor.api.API.process", "exabgp.reactor.api.processes.Processes.down",
                      "exabgp.reactor.api.processes.Processes.up", "exabgp.reactor.api.response.json.JSON.down",
                      "exabgp.reactor.api.response.json.JSON.up",
                      "exabgp.reactor.network.connection.Connection.writer", "exabgp.reactor.peer.Peer.run"]
RECEIVE_REPLACED = ["exabgp.bgp.message.update.Update.unpack_message", "exabgp.reactor.api.response.json.JSON.update"]


def test_the_launcher_installs_every_fix_and_sets_the_speed_exabgp_reads() -> None:
    got = _install_probe("all")  # both fast paths included: they are on by default
    assert got == {"fixes": list(exabgp_launch.FIXES),
                   "reason": f"ExaBGP {exabgp_launch.TUNED_FOR}",
                   "changed": sorted(REPLACED + FAST_PATH_REPLACED + RECEIVE_REPLACED), "commands": MARKERS,
                   "callbacks": MARKERS,
                   "speed": float(exabgp_launch.SPEED_WITH_FIXES), "report": True}
    assert set(REPLACED) <= {str(h) for hooks in exabgp_launch.HOOKS.values() for h in hooks}  # all checked first
    assert set(FAST_PATH_REPLACED) <= {str(h) for h in exabgp_launch.HOOKS["fastpath"]}


def test_mcrd_fast_receive_0_leaves_the_receive_side_alone_out() -> None:
    got = _install_probe("all", receive="0")
    assert got["fixes"] == [f for f in exabgp_launch.FIXES if f != "receive"]
    assert got["changed"] == sorted(REPLACED + FAST_PATH_REPLACED)
    assert set(RECEIVE_REPLACED) <= {str(h) for h in exabgp_launch.HOOKS["receive"]}  # all checked first


def test_mcrd_fast_path_0_leaves_the_fast_path_out_and_keeps_the_other_fixes() -> None:
    got = _install_probe("all", fast_path="0")
    assert got == {"fixes": [f for f in exabgp_launch.FIXES if f not in ("fastpath", "receive")],
                   "reason": f"ExaBGP {exabgp_launch.TUNED_FOR}",
                   "changed": REPLACED, "commands": MARKERS, "callbacks": MARKERS,
                   "speed": float(exabgp_launch.SPEED_WITH_FIXES), "report": True}


def test_the_receive_fast_path_comes_with_the_send_one_and_can_be_left_out() -> None:
    assert {"fastpath", "receive"} <= set(exabgp_launch.default_fixes({}))
    assert {"fastpath", "receive"} <= set(exabgp_launch.default_fixes({exabgp_fastpath.FAST_PATH_ENV: "1"}))
    alone = exabgp_launch.default_fixes({exabgp_receive.RECEIVE_ENV: "0"})
    assert "fastpath" in alone
    assert "receive" not in alone
    assert not {"fastpath", "receive"} & set(exabgp_launch.default_fixes({exabgp_fastpath.FAST_PATH_ENV: "0"}))


def test_mcrd_exabgp_stock_installs_none_and_keeps_the_stock_speed() -> None:
    got = _install_probe("all", stock_env="1")
    assert got == {"fixes": [], "reason": f"{exabgp_launch.STOCK_ENV}=1", "changed": [], "commands": [],
                   "callbacks": [], "speed": float(exabgp_launch.SPEED_STOCK), "report": True}


def test_an_install_that_fails_halfway_puts_every_fix_back() -> None:
    got = _install_probe("break-last")
    assert (got["fixes"], got["changed"], got["commands"], got["callbacks"]) == ([], [], [], []), got
    assert got["reason"] == ("installing the fixes failed, none is installed: "
                             "TypeError('vars() argument must have __dict__ attribute')")
    assert got["speed"] == float(exabgp_launch.SPEED_STOCK)


def test_another_release_gets_none_of_the_fixes() -> None:
    before = _snapshot()
    report = exabgp_launch.install(release="5.1.0", environ={})
    assert report == exabgp_launch.Report("5.1.0", (), f"ExaBGP 5.1.0 installed; the fixes were read in "
                                          f"{exabgp_launch.TUNED_FOR}", exabgp_launch.SPEED_STOCK)
    assert _snapshot() == before


def test_one_hook_that_does_not_fit_and_none_is_installed() -> None:
    """ExaBGP as a later release might have it: one method with other parameters, one attribute gone."""
    def find(hook: exabgp_hook.Hook) -> Any:
        if hook.path == "Peer.remove":
            return lambda self, reason: None
        if hook.path == "FSM.OPENCONFIRM":
            raise AttributeError(hook.path)
        return exabgp_launch.resolve(hook)

    before = _snapshot()
    report = exabgp_launch.install(find=find, environ={})
    assert (report.fixes, report.reactor_speed) == ((), exabgp_launch.SPEED_STOCK)
    assert report.reason == ("ExaBGP differs from what the fixes were written against: "
                             "exabgp.reactor.peer.Peer.remove takes (self, reason), the fix expects (self); "
                             "exabgp.bgp.fsm.FSM.OPENCONFIRM is missing")
    assert _snapshot() == before


def test_the_launcher_starts_exabgp() -> None:
    out = subprocess.run([sys.executable, "-m", "mcrd.bgp.exabgp_launch", "version"], capture_output=True,
                         text=True, timeout=60)
    assert exabgp_launch.TUNED_FOR in out.stdout + out.stderr


def test_exabgp_still_starts_stock_when_checking_the_fixes_fails() -> None:
    probe = ("import os, sys\nfrom mcrd.bgp import exabgp_launch\n"
             "def broken(*args): raise AttributeError('no such method')\n"
             "exabgp_launch.install = broken\nsys.argv[1:] = ['version']\n"
             "run = exabgp_launch.run_exabgp\n"
             "exabgp_launch.run_exabgp = lambda: (print(os.environ[exabgp_launch.REPORT_ENV]), run())\n"
             "exabgp_launch.main()\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    report = exabgp_launch.Report.from_json(out.stdout.splitlines()[0])
    assert (report.fixes, report.reactor_speed) == ((), exabgp_launch.SPEED_STOCK)
    assert report.reason == "checking the fixes failed, none is installed: AttributeError('no such method')"
    assert exabgp_launch.TUNED_FOR in out.stdout + out.stderr


DEATH_PROBE = """
import ctypes, os, signal, sys
from mcrd.bgp import exabgp_launch
environ = {exabgp_launch.PARENT_ENV: sys.argv[1]} if sys.argv[1] else {}
try:
    exabgp_launch.die_with_parent(environ)
except SystemExit as exc:
    print("exit", exc.code)
    raise
got = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG
print(got.value == signal.SIGKILL, environ)
"""


@pytest.mark.parametrize(("parent", "expected", "code"), [
    ("self", "True {}", 0),  # the parent is alive: SIGKILL when it dies; the variable is not passed on
    ("1", "exit 1", 1),  # not our parent: the one that started us is gone already
    ("", "False {}", 0),  # started by hand: nothing asked
])
def test_exabgp_asks_to_die_with_the_daemon(parent: str, expected: str, code: int) -> None:
    argument = str(os.getpid()) if parent == "self" else parent
    out = subprocess.run([sys.executable, "-c", DEATH_PROBE, argument], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert (out.stdout.strip(), out.returncode) == (expected, code), out.stderr


NEGOTIATION_PROBE = """
import json, os, sys, tempfile
from exabgp.bgp.message import Action
from exabgp.bgp.message.open import Open, Version, ASN, HoldTime, RouterID
from exabgp.bgp.message.open.capability import Capabilities
from exabgp.bgp.message.open.capability.negotiated import Negotiated
from exabgp.bgp.message.refresh import RouteRefresh
from exabgp.configuration.configuration import Configuration
from exabgp.environment import getenv
from exabgp.logger.option import option
from exabgp.reactor.api import API
from exabgp.reactor.asynchronous import ASYNC
from mcrd.bgp import exabgp_launch

fixed = bool(exabgp_launch.install(["implied", "refresh"]).fixes) if sys.argv[1] == "fixed" else False
option.setup(getenv())
path = os.path.join(tempfile.mkdtemp(), "exabgp.conf")
with open(path, "w") as handle:
    handle.write("neighbor 192.0.2.1 { router-id 192.0.2.254; local-address 192.0.2.2; local-as 133937; "
                 "peer-as 64512; adj-rib-out false; family { ipv4 unicast; } capability { route-refresh enable; } }")
conf = Configuration([path])
assert conf.reload()
api = API(conf)
[(name, neighbor)] = conf.neighbors.items()
sent = Open(Version(4), ASN(133937), HoldTime(90), RouterID("192.0.2.254"), Capabilities().new(neighbor, False))
bare = Open(Version(4), ASN(64512), HoldTime(90), RouterID("192.0.2.1"), Capabilities())  # no capability at all
negotiated = Negotiated(neighbor)
negotiated.sent(sent)
negotiated.received(bare)
negotiated.validate(neighbor)
result = {"fixed": fixed, "adj-rib-out": neighbor["adj-rib-out"], "mismatch": len(negotiated.mismatch),
          "families": [f"{afi} {safi}" for afi, safi in negotiated.families]}


class Processes:
    def answer_done(self, service): answers.append("done")
    def answer_error(self, service): answers.append("error")


class Reactor:
    configuration, asynchronous, processes = conf, ASYNC(), Processes()
    def established_peers(self): return [name]


answers, reactor = [], Reactor()


def command(line):
    api.response(reactor, "mcrd", line, False)
    while reactor.asynchronous.run():
        pass


def announce(prefix):
    [change] = api.api_attributes("announce attributes next-hop 192.0.2.2 nlri " + prefix, [name])
    change.nlri.action = Action.ANNOUNCE
    conf.inject_change([name], change)


def sent_messages(updates):
    return ["BoRR" if m.TYPE == RouteRefresh.TYPE and m.reserved == RouteRefresh.start else
            "EoRR" if m.TYPE == RouteRefresh.TYPE and m.reserved == RouteRefresh.end else
            " ".join(sorted(str(nlri.cidr) for nlri in m.nlris)) for m in updates]


outgoing = neighbor.rib.outgoing
if fixed:
    command("neighbor 192.0.2.1 announce borr ipv4 unicast")
    result["pending after BoRR"] = outgoing.pending()
    announce("10.0.0.0/24")
    announce("10.0.1.0/24")
    command("neighbor 192.0.2.1 announce eorr ipv4 unicast")
    result["pass"] = sent_messages(outgoing.updates(True))
    # An EoRR queued while a pass is being sent waits for the next one, after the routes queued before it.
    command("neighbor 192.0.2.1 announce borr ipv4 unicast")
    announce("10.0.2.0/24")
    running = outgoing.updates(True)
    first = sent_messages([next(running), next(running)])
    announce("10.0.3.0/24")
    command("neighbor 192.0.2.1 announce eorr ipv4 unicast")
    result["split"] = [first + sent_messages(running), sent_messages(outgoing.updates(True))]
    command("neighbor 192.0.2.1 announce eorr ipv6 unicast")  # not this neighbor's family: ignored
    result["other family"] = sent_messages(outgoing.updates(True))
    command("neighbor 192.0.2.1 announce borr nonsense")
    result["answers"] = answers
print(json.dumps(result))
"""


def _negotiation_probe(mode: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", NEGOTIATION_PROBE, mode], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_stock_exabgp_negotiates_nothing_with_a_peer_without_capabilities_and_turns_its_adj_rib_out_on() -> None:
    """Why fixes 6 and 7 exist: measured on ExaBGP's own classes."""
    assert _negotiation_probe("stock") == {"fixed": False, "adj-rib-out": True, "mismatch": 1, "families": []}


def test_fix_6_negotiates_ipv4_unicast_with_a_peer_without_capabilities() -> None:
    result = _negotiation_probe("fixed")
    assert (result["fixed"], result["families"], result["mismatch"]) == (True, ["ipv4 unicast"], 0)


def test_fix_7_keeps_the_adj_rib_out_off_and_brackets_the_routes_between_borr_and_eorr() -> None:
    result = _negotiation_probe("fixed")
    assert result["adj-rib-out"] is False
    assert result["pending after BoRR"] is True
    assert result["pass"] == ["BoRR", "10.0.0.0/24 10.0.1.0/24", "EoRR"]
    assert result["split"] == [["BoRR", "10.0.2.0/24"], ["10.0.3.0/24", "EoRR"]]
    assert result["other family"] == []
    assert result["answers"] == ["done"] * 5 + ["error"]


# --- fix 8: the queue of changes to send ---------------------------------------------------------------------------

A1 = "announce attributes " + attributes_text(PathAttributes("self", (133937, 12076, 12076)))
A2 = "announce attributes " + attributes_text(PathAttributes("self", (133937, 64512)))
A3 = "announce attributes " + attributes_text(PathAttributes("self", (133937,), Origin.INCOMPLETE))
WITHDRAW = "withdraw attributes"


def _ribs() -> tuple[Any, Any]:
    """ExaBGP's OutgoingRIB as shipped, and the same with fix 8 installed (on a subclass: this process keeps
    ExaBGP's own)."""
    from exabgp.protocol.family import AFI, SAFI  # type: ignore[import-untyped]
    from exabgp.rib.outgoing import OutgoingRIB  # type: ignore[import-untyped]

    class Fixed(OutgoingRIB):  # type: ignore[misc]
        _update_rib = exabgp_launch.superseding(OutgoingRIB._update_rib)

    families = {(AFI.ipv4, SAFI.unicast)}
    return OutgoingRIB(False, families), Fixed(False, families)  # cache off: mcrd's `adj-rib-out false`


def _inject(exabgp: Any, rib: Any, command: str) -> str:
    """What ExaBGP does with a command for one session (`Configuration.inject_change`: `add_to_rib` whatever the
    action); the attributes injected."""
    changes, [neighbor, _] = _changes(exabgp, command)
    injected = [neighbor.remove_self(change) for change in changes]
    for change in injected:
        rib.add_to_rib(change)
    return str(injected[0].attributes.index())


def _send(rib: Any, held: dict[str, str], first: bool) -> list[tuple[str, str]]:
    """Send what `rib` has queued to a peer holding `held` (prefix -> attributes), as ExaBGP does: its Updates in
    order, without the withdrawals in a session's first batch (`Update.messages(..., include_withdraw=False)`)."""
    wire = []
    for update in rib.updates(True):  # group-updates true, as mcrd configures
        for nlri in update.nlris:
            prefix = nlri.cidr.prefix()
            if nlri.action == Action.ANNOUNCE:
                held[prefix] = update.attributes.index()
                wire.append(("announce", prefix))
            elif not first:
                held.pop(prefix, None)
                wire.append(("withdraw", prefix))
    return wire


@pytest.mark.parametrize(("batch", "stock_wire", "fixed_wire", "held"), [
    # The case seen in the lab: announced and withdrawn before the session's first batch. ExaBGP sent the route.
    ([f"{A1} nlri 10.10.0.0/16", f"{WITHDRAW} nlri 10.10.0.0/16"],
     [("announce", "10.10.0.0/16"), ("withdraw", "10.10.0.0/16")], [("withdraw", "10.10.0.0/16")], set()),
    # Withdrawn in a bucket opened earlier: the withdrawal went out first, then the announcement it cancels.
    ([f"{WITHDRAW} nlri 10.20.0.0/16", f"{A1} nlri 10.10.0.0/16", f"{WITHDRAW} nlri 10.10.0.0/16"],
     [("withdraw", "10.20.0.0/16"), ("withdraw", "10.10.0.0/16"), ("announce", "10.10.0.0/16")],
     [("withdraw", "10.20.0.0/16"), ("withdraw", "10.10.0.0/16")], set()),
    # Withdrawn then announced again in a bucket opened earlier: the announcement went out first, then the withdrawal.
    ([f"{A1} nlri 10.20.0.0/16", f"{WITHDRAW} nlri 10.10.0.0/16", f"{A1} nlri 10.10.0.0/16"],
     [("announce", "10.20.0.0/16"), ("announce", "10.10.0.0/16"), ("withdraw", "10.10.0.0/16")],
     [("announce", "10.20.0.0/16"), ("announce", "10.10.0.0/16")], {"10.20.0.0/16", "10.10.0.0/16"}),
])
@pytest.mark.parametrize("first", [True, False])
def test_a_later_command_replaces_what_is_queued_for_its_prefix(
    exabgp: Any, batch: list[str], stock_wire: list[tuple[str, str]], fixed_wire: list[tuple[str, str]],
    held: set[str], first: bool,
) -> None:
    # `first`: the session's first batch, sent without withdrawals (the peer holds nothing yet).
    stock, fixed = _ribs()
    for command in batch:
        _inject(exabgp, stock, command)
        _inject(exabgp, fixed, command)
    held_stock: dict[str, str] = {}
    held_fixed: dict[str, str] = {}
    drop = ("withdraw",) if first else ()
    assert _send(stock, held_stock, first) == [w for w in stock_wire if w[0] not in drop]
    assert _send(fixed, held_fixed, first) == [w for w in fixed_wire if w[0] not in drop]
    assert set(held_fixed) == held


def test_whatever_the_commands_the_peer_ends_with_the_last_one_for_each_prefix(exabgp: Any) -> None:
    # Random batches of announcements (three attribute sets) and withdrawals of four prefixes; after every batch
    # the peer holds, for each prefix, what the last command said. Stock ExaBGP fails this (counted below).
    rng = random.Random(6)
    prefixes = ["10.10.0.0/16", "10.20.0.0/16", "10.30.0.0/16", "10.40.0.0/16"]
    stock_wrong = 0
    for _ in range(60):
        stock, fixed = _ribs()
        held_stock: dict[str, str] = {}
        held_fixed: dict[str, str] = {}
        wanted: dict[str, str] = {}
        for batch in range(4):
            for _ in range(rng.randint(1, 8)):
                prefix = rng.choice(prefixes)
                command = f"{rng.choice([A1, A2, A3, WITHDRAW, WITHDRAW])} nlri {prefix}"
                _inject(exabgp, stock, command)
                attributes = _inject(exabgp, fixed, command)
                if command.startswith(WITHDRAW):
                    wanted.pop(prefix, None)
                else:
                    wanted[prefix] = attributes
            _send(stock, held_stock, batch == 0)
            _send(fixed, held_fixed, batch == 0)
            assert held_fixed == wanted
            stock_wrong += held_stock != wanted
    assert stock_wrong > 0


def test_a_new_session_starts_with_nothing_queued(exabgp: Any) -> None:
    # Changes queued while the session was down were sent by the daemon for the previous session: after `up` it
    # sends the whole table, so they must not reach the new one.
    conf, _ = exabgp
    neighbor = next(iter(conf.neighbors.values()))
    changes, _ = _changes(exabgp, f"{A1} nlri 10.10.0.0/16")
    neighbor.rib.outgoing.add_to_rib(neighbor.remove_self(changes[0]))
    assert neighbor.rib.outgoing.pending()

    def stock_main(peer: Any) -> Any:  # stands for Peer._main: what it finds queued when it starts
        yield peer.neighbor.rib.outgoing.pending()
        return "ended"

    peer = type("Peer", (), {"neighbor": neighbor})()
    main = exabgp_launch.fresh_session(stock_main)(peer)
    assert next(main) is False
    with pytest.raises(StopIteration) as ended:
        next(main)
    assert ended.value.value == "ended"
