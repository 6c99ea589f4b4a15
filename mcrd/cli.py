"""The `mcrd` command line.

Each subcommand is one `_add_<name>(commands)` function that registers its parser and sets
`handler`, a function from the parsed arguments to the exit status. `main` only dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

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
    # Later subcommands register here the same way:
    #   _add_lg(commands)   # `mcrd lg ...`: the looking glass client
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
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    from mcrd import daemon, log  # the daemon's libraries load only for `run`

    log.configure(args.log_format, args.log_level)
    return daemon.main(args.config, config, args.state_dir)


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
