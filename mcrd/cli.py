"""The `mcrd` command line.

Each subcommand is one `_add_<name>(commands)` function that registers its parser and sets
`handler`, a function from the parsed arguments to the exit status. `main` only dispatches.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mcrd.config.load import ConfigError, load_config
from mcrd.config.model import Config

Handler = Callable[[argparse.Namespace], int]

EXIT_OK = 0
EXIT_INVALID = 1  # the input is bad: a config that does not load
EXIT_USAGE = 2  # argparse's own status for a bad command line


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit status (the console script passes it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    return handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcrd", description="An emulator of the Megaport Cloud Router.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(commands)
    _add_run(commands)
    _add_lab(commands)
    _add_lg(commands)
    _add_import(commands)
    return parser


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="validate config files",
        description="Load each config and report every problem as FILE:LINE: field.path: message.",
    )
    check.add_argument("configs", nargs="+", metavar="CONFIG", help="a YAML or JSON config file")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.configs:
        try:
            config = load_config(path)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            status = EXIT_INVALID
            continue
        print(f"{path}: ok: {summary(config)}")
    return status


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run the MCR: BGP sessions through ExaBGP, best routes into the kernel",
        description="Run in the foreground until SIGTERM or SIGINT; SIGHUP re-reads the config.",
    )
    run.add_argument("-c", "--config", required=True, metavar="CONFIG", help="a YAML or JSON config file")
    run.add_argument("--log-format", choices=["json", "console"], default=None,
                     help="default: console on a terminal, JSON otherwise")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    run.add_argument("--state-dir", default=None,
                     help="where ExaBGP's configuration and API socket live (default: a new temporary directory)")
    run.add_argument("--exabgp-processes", type=_processes, default=1, metavar="N",
                     help="split the BGP sessions over N ExaBGP processes, for many sessions or large tables on a "
                          "machine with cores to spare (~37 MiB each; default 1)")
    run.add_argument("--kernel-scan-interval", type=_scan_interval, default=None, metavar="SECONDS",
                     help="how often mcrd compares the kernel's routes of protocol 252 with the best routes and fixes "
                          "what differs (default 60, as BIRD's kernel scan)")
    run.set_defaults(handler=_run)


def _processes(text: str) -> int:
    from mcrd.bgp.pool import MAX_PROCESSES

    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PROCESSES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes 1..{MAX_PROCESSES}")
    return int(text)


def _scan_interval(text: str) -> float:
    from mcrd.fib.worker import MIN_SCAN_INTERVAL

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not MIN_SCAN_INTERVAL <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds {MIN_SCAN_INTERVAL}..86400")
    return value


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    from mcrd import daemon, log  # the daemon's libraries load only for `run`

    log.configure(args.log_format, args.log_level)
    from mcrd.fib.worker import DEFAULT_SCAN_INTERVAL

    scan = args.kernel_scan_interval or DEFAULT_SCAN_INTERVAL
    return daemon.main(args.config, config, args.state_dir, args.exabgp_processes, scan)


def _add_lab(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = commands.add_parser(
        "lab",
        help="build a containerlab topology on network namespaces (up, verify, status, exec, list, down)",
        description="Build a containerlab topology file on bare network namespaces (one per node, named "
        "clab-<lab>-<node>, a veth pair per link) with mcrd, FRR, BIRD and host nodes; needs root. "
        "What was created is recorded in /run/mcrd-lab/<lab>/ so that `down` removes exactly that. "
        "LAB is the topology file or, once the lab is up, its name.",
    )
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="build the lab, return once it has converged")
    up.add_argument("topology", metavar="TOPOLOGY", help="a containerlab topology file (*.clab.yml)")
    up.add_argument("--timeout", type=float, default=90.0, metavar="SECONDS",
                    help="how long to wait for every BGP session and every BGP table to settle (default 90)")
    verify = actions.add_parser(
        "verify", help="check the lab against an intents file (exit 0 all hold, 1 one fails, 2 cannot judge)",
        description="Judge each intent from the named node's own view (FRR: vtysh, BIRD: birdc, mcrd: its looking "
        "glass), polled until it holds or its `within` passes; then run the scenarios. Exit 0 when everything "
        "holds, 1 when something fails, 2 when the lab cannot be judged. --record prints the lab's state as "
        "intents instead.")
    verify.add_argument("lab", metavar="LAB")
    verify.add_argument("intents", nargs="?", metavar="INTENTS", help="an intents file (YAML)")
    verify.add_argument("--junit", metavar="FILE", type=Path, help="also write the report as JUnit XML")
    verify.add_argument("--json", metavar="FILE", type=Path, dest="json_path", help="also write it as JSON")
    verify.add_argument("--up", action="store_true", help="bring the lab up first (LAB: its file), down after")
    verify.add_argument("--timeout", type=float, default=90.0, metavar="SECONDS", help="--up's timeout")
    verify.add_argument("--docker", nargs="?", const="docker", metavar="COMMAND",
                        help="a lab deployed by containerlab (LAB: its topology file): reach node N with "
                        "`docker exec clab-<lab>-N` (COMMAND: another docker, e.g. podman)")
    verify.add_argument("--record", action="store_true",
                        help="print the running lab's state as intents (a baseline to review, not to trust)")
    actions.add_parser("list", help="the labs that are up")
    status = actions.add_parser("status", help="show the nodes, their processes and BGP sessions")
    status.add_argument("lab", metavar="LAB")
    down = actions.add_parser("down", help="remove everything the lab created (also after a crash)")
    down.add_argument("lab", metavar="LAB")
    run_in = actions.add_parser("exec", help="run a command in a node: mcrd lab exec LAB NODE -- COMMAND...")
    run_in.add_argument("lab", metavar="LAB")
    run_in.add_argument("node", metavar="NODE")
    run_in.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    lab.set_defaults(handler=_lab)


def _lab(args: argparse.Namespace) -> int:
    from mcrd.lab.system import LabError
    from mcrd.lab.topology import TopologyError

    try:
        return _lab_action(args)
    except TopologyError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except LabError as exc:
        print(f"mcrd lab {args.lab_command}: {exc}", file=sys.stderr)
        return 2 if args.lab_command == "verify" else EXIT_INVALID
    except BrokenPipeError:  # `mcrd lab status LAB | head -1`: the reader has gone, so has the need to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INVALID
    except KeyboardInterrupt:
        target = getattr(args, "topology", None) or getattr(args, "lab", "LAB")
        print(f"mcrd lab {args.lab_command}: interrupted; `mcrd lab down {target}` removes what was "
              "created", file=sys.stderr)
        return 130


def _lab_action(args: argparse.Namespace) -> int:
    from mcrd.lab import runner  # the lab runner loads only for `lab`

    action = args.lab_command
    if action == "list":
        return runner.list_labs(sys.stdout)
    if action == "up":
        ref = runner.resolve(args.topology, need_file=True)
        assert ref.topology is not None
        return runner.up(ref.topology, sys.stdout, args.timeout)
    ref = runner.resolve(args.lab)
    if action == "verify":
        from mcrd.lab import verifycmd

        if args.record:
            return verifycmd.record_command(ref, sys.stdout)
        if args.intents is None:
            print("mcrd lab verify: give an intents file (or --record to write one)", file=sys.stderr)
            return EXIT_USAGE
        return verifycmd.verify_command(ref, Path(args.intents), sys.stdout, sys.stderr, junit=args.junit,
                                        json_path=args.json_path, bring_up=args.up, timeout=args.timeout,
                                        docker=args.docker)
    if action == "status":
        return runner.status(ref, sys.stdout)
    if action == "down":
        return runner.down(ref, sys.stdout)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return runner.exec_in(ref, args.node, command)


def _add_lg(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mcrd.lg.cli import DEFAULT_API, add_arguments

    lg = commands.add_parser(
        "lg",
        help="the looking glass: sessions, routes, BGP table, a peer's routes (through the daemon's HTTP API)",
        description="Query a running mcrd's looking glass. Tables by default, --json for scripts; --api URL "
        f"points at another daemon (default: $MCRD_API, else {DEFAULT_API}).",
    )
    add_arguments(lg)
    lg.set_defaults(handler=_lg)


def _lg(args: argparse.Namespace) -> int:
    from mcrd.lg.cli import run

    return run(args)


def _add_import(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = commands.add_parser(
        "import",
        help="turn another tool's description of an MCR design into an mcrd config (terraform)",
        description="Import an MCR design. Warnings (what mcrd cannot carry) go to stderr; exit 0 with warnings, "
        "1 when the input cannot be imported.",
    )
    sources = imp.add_subparsers(dest="import_source", required=True, metavar="SOURCE")
    tf = sources.add_parser(
        "terraform",
        help="the JSON of `terraform show -json` (a state or a saved plan) with the megaport provider",
        description="Write an mcrd config for one MCR of a Megaport Terraform design (`terraform show -json` of a "
        "state, or of a saved plan), with a comment per object naming its Terraform address.",
    )
    tf.add_argument("file", metavar="FILE", help="the output of `terraform show -json [PLANFILE]` (- for stdin)")
    tf.add_argument("--mcr", metavar="ADDRESS", help="the MCR to import when there are several (Terraform address)")
    tf.add_argument("-o", "--output", metavar="CONFIG", help="write the config here (default: stdout)")
    tf.add_argument("--lab", metavar="DIR", help="also write a containerlab topology into DIR for `mcrd lab up`")
    tf.add_argument("--prefixes", metavar="FILE",
                    help="YAML: VXC product name or Terraform address -> the prefixes its far end announces (lab)")
    imp.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from mcrd.importers.cli import run_terraform

    return run_terraform(args)


def summary(config: Config) -> str:
    """One line saying what the config holds, e.g. `MCR lab-mcr (AS 133937), 2 VXCs, ...`."""
    interfaces = [iface for vxc in config.vxcs for iface in vxc.vrouter.interfaces]
    return ", ".join(
        [
            f"MCR {config.mcr.product_name} (AS {config.mcr.mcr_asn})",
            _count(len(config.vxcs), "VXC"),
            _count(len(config.connections()), "BGP connection"),
            _count(len(config.prefix_filter_lists), "prefix filter list"),
            _count(sum(len(iface.ip_routes) for iface in interfaces), "static route"),
        ]
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
