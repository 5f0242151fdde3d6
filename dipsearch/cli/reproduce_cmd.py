"""`dipsearch reproduce ROW...`: the seed's results table recomputed, resumable, with an HTML report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .restore_cmd import set_threads
from .search_cmd import refuse_resume_flags, remember_resume_defaults

if TYPE_CHECKING:  # rich is imported when a command runs, not when the parser is built
    from rich.console import Console
    from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    from ..pipelines.reproduce_rows import DIP_METHODS, ROWS
    from .names import BASELINE_TASKS

    rows = "; ".join(f"{r.name}: {r.description} on {'/'.join(r.sets)}" for r in ROWS.values())
    parser = sub.add_parser(
        "reproduce",
        help="recompute the seed's results table (DIP, restore, classical baselines)",
        description=f"Recompute rows of the seed's results table. Rows: {rows}. Writes per_image.csv, summary.csv "
        "(with the published figures), the images and report.html to runs/reproduce/<stamp>_<rows>/; "
        "a killed run continues with --resume RUN_DIR.",
    )
    parser.add_argument("rows", nargs="*", metavar="ROW", help=f"rows to compute: {', '.join(ROWS)}")
    parser.add_argument(
        "--data",
        default="../shared/data",
        metavar="DIR",
        help="folder with classic9/, set5/ and set14/ (default ../shared/data)",
    )
    parser.add_argument(
        "--size", default="auto", help="full, or a centre-crop side in px (default auto: full on a GPU, 128 on a CPU)"
    )
    parser.add_argument("--images", type=int, metavar="K", help="the first K images of each set (default all)")
    parser.add_argument(
        "--iters",
        type=int,
        default=2400,
        metavar="N",
        help="the budget of every DIP method: dip's fixed length, dip-stop's and restore's refit "
        "maximum (default 2400)",
    )
    parser.add_argument(
        "--methods",
        metavar="LIST",
        help=f"comma-separated (default: all installed): {', '.join([*DIP_METHODS, *(n for n in BASELINE_TASKS if n != 'bm3d')])}",
    )
    parser.add_argument("--patience", type=int, metavar="P", help="EMV patience of dip-stop and restore (default 1000)")
    parser.add_argument("--search", default="ga", help="restore's architecture choice (default ga)")
    parser.add_argument(
        "--search-iters",
        type=int,
        dest="search_iters",
        help="restore: iterations per search candidate (default iters / 4)",
    )
    parser.add_argument("--pop", type=int, help="restore: GA population (default: the budget's)")
    parser.add_argument("--gens", type=int, help="restore: GA generations (default: the budget's)")
    parser.add_argument("--ensemble", type=int, default=1, metavar="K", help="restore: average the K best refits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions and fits (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's)")
    parser.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a killed reproduce run (its settings are kept)")
    parser.add_argument("--no-report", action="store_true", help="do not write report.html")
    parser.set_defaults(func=run)
    remember_resume_defaults(parser, RESUME_FREE)


RESUME_FREE = {"rows", "threads", "no_report", "out"}  # what --resume takes again; its run folder decides the rest


def summary_table(rows: list[dict]) -> Table:
    from rich.table import Table

    table = Table(title="reproduction (mean PSNR / SSIM over the images; published: the seed's figure)")
    for col in ("row", "set", "method", "images", "PSNR", "SSIM", "published"):
        table.add_column(col, justify="left" if col in ("row", "set", "method") else "right")
    fmt = lambda v, d: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for r in rows:
        table.add_row(
            r["row"],
            r["set"],
            r["method"],
            str(r["images"]),
            fmt(r["psnr"], 2),
            fmt(r["ssim"], 3),
            fmt(r["published"], 2),
        )
    return table


RESTORE_ONLY = ("search", "search_iters", "pop", "gens", "ensemble")  # flags only the restore method reads


def refuse_unused_restore_flags(args: argparse.Namespace, methods: list[str]) -> None:
    """A restore flag without the restore method would be ignored: refused instead, naming the flag."""
    if "restore" in methods:
        return
    from ..errors import DipsearchError

    given = [
        flag
        for dest, (flag, default) in args.resume_fixed.items()
        if dest in RESTORE_ONLY and getattr(args, dest) != default
    ]
    if given:
        raise DipsearchError(
            f"{', '.join(given)} {'is a setting' if len(given) == 1 else 'are settings'} of the restore method, "
            f"which --methods leaves out: add restore to --methods or drop {', '.join(given)}"
        )


def run(args: argparse.Namespace, console: Console) -> int:
    from ..errors import DipsearchError
    from ..pipelines.reproduce import ReproduceSettings, Reproduction
    from ..pipelines.reproduce_rows import all_methods, check_methods, check_methods_apply, get_rows

    set_threads(args.threads)
    if args.resume:
        if args.rows:
            raise DipsearchError("--resume continues the rows stored in the run folder; drop the ROW arguments")
        refuse_resume_flags(args, ["--threads", "--no-report", "--out"])
        job = Reproduction.resume(args.resume, console)
        console.print(f"resuming {job.run.path}: {len(job.done)} cells on record", highlight=False)
    else:
        if not args.rows:
            raise DipsearchError("name at least one ROW (denoise, sr4, sr8, inpaint), or --resume RUN_DIR")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else all_methods(True)
        refuse_unused_restore_flags(args, methods)
        if args.methods is not None:  # a list the user wrote: each method must apply to one of the rows
            check_methods_apply(get_rows(args.rows), check_methods(methods), every_method=True)
        settings = ReproduceSettings(
            rows=args.rows,
            methods=methods,
            data=args.data,
            size=args.size,
            images=args.images,
            iters=args.iters,
            patience=args.patience,
            search=args.search,
            search_iters=args.search_iters,
            pop=args.pop,
            gens=args.gens,
            ensemble=args.ensemble,
            seed=args.seed,
            device=args.device,
        )
        job = Reproduction.create(args.out, settings, console)
    try:
        job.run_all()
    except BaseException:
        console.print(f"continue with: dipsearch reproduce --resume {job.run.path}", highlight=False)
        raise
    console.print(summary_table(job.write_tables()))
    notes = {r.note for r in job.rows if r.note}
    for note in sorted(notes):
        console.print(f"note: {note}", highlight=False)
    if not args.no_report:
        from ..pipelines.report import write_report

        write_report(job.run.path)
    console.print(f"run folder: [bold]{job.run.path}[/bold]", soft_wrap=True, highlight=False)
    return 0
