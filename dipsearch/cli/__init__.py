"""The `dipsearch` command line. Each subcommand lives in its own module and registers itself here.

Adding a subcommand: write dipsearch/cli/<name>_cmd.py with `register(subparsers)` (which adds the parser
and `set_defaults(func=run)`) and `run(args, console) -> int`, then list the module in SUBCOMMANDS.

The start-up rule: `dipsearch --help` builds every subcommand's parser, so importing a *_cmd module and
calling its register() must stay cheap. At module level import only the standard library, `..errors`,
`.names` (the choices and defaults help texts need) and other *_cmd modules; import torch, numpy,
Optuna, DEAP, matplotlib, rich and every dipsearch module that pulls them in inside run() and the
helpers it calls. tests/test_cli_startup.py fails when building the parser imports one of them.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING

from ..errors import ArgumentError, DipsearchError
from . import (
    baseline_cmd,
    fit_cmd,
    preselect_cmd,
    pretrain_cmd,
    report_cmd,
    reproduce_cmd,
    restore_cmd,
    search_cmd,
    stop_cmd,
    study_cmd,
    worker_cmd,
)

if TYPE_CHECKING:
    from rich.console import Console

SUBCOMMANDS = [
    fit_cmd,
    search_cmd,
    stop_cmd,
    worker_cmd,
    preselect_cmd,
    baseline_cmd,
    restore_cmd,
    study_cmd,
    reproduce_cmd,
    report_cmd,
    pretrain_cmd,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dipsearch",
        description="Deep Image Prior research toolkit: fits, architecture search and automatic stopping.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles; when not a terminal, lines are never wrapped (copied commands stay whole)."""
    from ..console import make_console

    return make_console(), make_console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    errors = None
    try:
        console, errors = consoles()
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if getattr(args, "uses_optuna", False):
                _quiet_optuna()
            return int(args.func(args, console) or 0)
    except ArgumentError as err:
        _print_error(errors, err.render(argument_flags(parser, args)))
        return 2
    except DipsearchError as err:
        _print_error(errors, str(err))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def argument_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Library argument name -> the flag that sets it, for the subcommand that ran: its flags by their
    destination, then the names a subcommand maps itself (set_defaults(argument_flags={"sigma": "--mut-step"}))."""
    flags: dict[str, str] = {}
    while parser is not None:
        chosen = None
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.option_strings:
                flags[action.dest] = next(
                    (o for o in action.option_strings if o.startswith("--")), action.option_strings[0]
                )
            elif action.dest != "help":
                flags[action.dest] = action.metavar or action.dest.upper()
        parser = chosen
    flags.update(getattr(args, "argument_flags", None) or {})
    return flags


def _quiet_optuna() -> None:
    """Commands that run Optuna (set_defaults(uses_optuna=True)) show their own progress, so Optuna's INFO line per
    trial is turned off here, when such a command runs: importing dipsearch leaves a library user's logging alone."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    # One line, like the errors: a user needs the message, not the source line that raised it.
    print(f"warning: {message}", file=sys.stderr)


def _print_error(errors: Console | None, message: str) -> None:
    if errors is None:
        print(f"error: {message}", file=sys.stderr)
        return
    from rich.markup import escape

    errors.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
