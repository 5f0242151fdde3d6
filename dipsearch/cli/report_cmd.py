"""`dipsearch report RUN_DIR`: write RUN_DIR/report.html for any run folder."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a command runs, not when the parser is built
    from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="write an HTML report of a run folder",
        description="Write RUN_DIR/report.html: images side by side with zoomed crops, PSNR curves, tables and "
        "settings of a fit, search, stop-bench, baseline, restore or reproduce run folder (and of the "
        "run folders inside it). Open it in any browser; its images sit next to it.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. runs/restore/<stamp>_<image>")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..pipelines.report import write_report

    path = write_report(args.run_dir)
    console.print(f"report: [bold]{path}[/bold]", soft_wrap=True, highlight=False)
    return 0
