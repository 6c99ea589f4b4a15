"""`mcrd import terraform`: files in and out around the pure importer and lab writer."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mcrd.config.load import ConfigError, parse_config
from mcrd.importers.lab import node_name, write_lab
from mcrd.importers.terraform import TerraformImportError, import_terraform, parse_json

EXIT_OK, EXIT_INVALID = 0, 1


class _InputError(Exception):
    pass


def run_terraform(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (TerraformImportError, _InputError) as exc:
        print(f"mcrd import terraform: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _prefixes(path: str) -> dict[str, list[str]]:
    try:
        data: Any = YAML(typ="safe").load(_read(path))
    except YAMLError as exc:
        raise _InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise _InputError(f"{path}: must map a VXC's product name or Terraform address to a list of prefixes")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            try:
                ipaddress.ip_network(str(item))
            except ValueError:
                raise _InputError(f"{path}: {key}: {item!r} is not a prefix (e.g. 10.10.0.0/16)") from None
        out[str(key)] = [str(i) for i in items]
    return out


def _run(args: argparse.Namespace) -> int:
    if args.prefixes and not args.lab:
        raise _InputError("--prefixes says what the lab's routers announce: it needs --lab DIR")
    source = "stdin" if args.file == "-" else args.file
    imported = import_terraform(parse_json(_read(args.file), source), args.mcr, source)
    prefixes = _prefixes(args.prefixes) if args.prefixes else None
    text = imported.text()
    # Both variants must load; the last one loaded (the lab's, with --lab) is what the lab writer reads.
    for variant in (text, imported.text(lab=True)) if args.lab else (text,):
        try:
            config = parse_config(variant, args.output or "<imported config>")
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"mcrd import terraform: the design of {imported.mcr_address} is not a config mcrd accepts "
                  "(problems above)", file=sys.stderr)
            return EXIT_INVALID
    warnings = list(imported.warnings)
    files: dict[str, str] = {}
    if args.lab:
        lab_dir = Path(args.lab)
        name = node_name(lab_dir.resolve().name)
        files, lab_warnings = write_lab(config, imported.far_ends, imported.text(lab=True), name, source, prefixes)
        warnings += lab_warnings
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {imported.mcr_address}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.lab:
        for rel, body in files.items():
            path = Path(args.lab) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
        topo = next(rel for rel in files if rel.endswith(".clab.yml"))
        print(f"wrote the lab {Path(args.lab) / topo}: bring it up with `mcrd lab up {Path(args.lab) / topo}`",
              file=sys.stderr)
    return EXIT_OK
