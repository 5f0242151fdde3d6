"""The `dipsearch` command line. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from ..errors import DipsearchError
from . import fit_cmd, pretrain_cmd, search_cmd, stop_cmd, worker_cmd

SUBCOMMANDS = [fit_cmd, search_cmd, stop_cmd, worker_cmd, pretrain_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dipsearch",
        description="Deep Image Prior research toolkit: fits, architecture search and automatic stopping.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    errors = Console(stderr=True)
    try:
        return int(args.func(args, console) or 0)
    except DipsearchError as err:
        errors.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


def run() -> None:
    sys.exit(main())
