"""`dipsearch fit`: one DIP fit of one image, saved as a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..nets.genes import BUDGET_GENE, CONFIG_GENES, check_fit_settings, check_fit_table
from .log_args import add_log_flag, log_hooks, wants_tensorboard
from .names import CUDA_GRAPH_MODES, name_arguments
from .problem_args import add_problem_args, problem_from_args, problem_tag
from .variant_args import add_variant_args, split_settings, variant_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from ..fitting.fit import FitConfig


def add_fit_settings(parser: argparse.ArgumentParser, iters_default: int | None = None) -> None:
    group = parser.add_argument_group("fit settings")
    group.add_argument("--iters", type=int, default=iters_default, help="iterations (default 2400, or the arch file's)")
    group.add_argument("--lr", type=float, help="Adam learning rate (default 0.01, or the space/arch file's)")
    group.add_argument("--reg-noise", type=float, dest="reg_noise_std", help="input noise sigma_p (default 1/30)")
    group.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    group.add_argument(
        "--threads", type=int, metavar="N", help="torch threads (default: torch's; CPU results depend on it)"
    )
    add_fast_flags(group)
    # Only here: a search's fits take the default, auto (captured on CUDA where the hooks allow it).
    group.add_argument(
        "--cuda-graph",
        choices=CUDA_GRAPH_MODES,
        default="auto",
        help="replay the training step as one CUDA graph: auto (default: on CUDA when every hook allows it), on, off",
    )
    group.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    add_log_flag(group)


def add_fast_flags(group: Any) -> None:
    group.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="fp32 (default, exact) or bf16 autocast of the network (faster on recent GPUs)",
    )
    group.add_argument("--channels-last", action="store_true", help="channels_last memory format (GPU speed)")
    group.add_argument("--compile", action="store_true", help="torch.compile the network (CUDA only)")


def fast_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The FitConfig speed settings the flags ask for: only those that differ from the exact fp32 default."""
    from ..fitting.fit import FitConfig

    fast = {
        "precision": getattr(args, "precision", "fp32"),
        "channels_last": getattr(args, "channels_last", False),
        "compile": getattr(args, "compile", False),
        "cuda_graph": getattr(args, "cuda_graph", "auto"),
    }
    return {k: v for k, v in fast.items() if v != FitConfig.__dataclass_fields__[k].default}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fit",
        help="fit the DIP hourglass to one image",
        description="Fit a DIP hourglass to one corrupted image and save the run under runs/fit/.",
    )
    add_problem_args(parser)
    arch = parser.add_mutually_exclusive_group()
    arch.add_argument(
        "--space", metavar="PATH", help="use this search space's default genome (default: the seed network)"
    )
    arch.add_argument(
        "--arch", metavar="PATH", help="an architecture file (best_arch.toml of a search, or ArchSpec TOML/JSON)"
    )
    add_fit_settings(parser)
    add_variant_args(parser)
    from .stop_cmd import add_stop_args, stop_hook_from_args  # here: the module's own helpers come first

    add_stop_args(parser)
    parser.set_defaults(func=run, extra_hooks=[stop_hook_from_args])
    name_arguments(parser, spec="--arch")  # the network spec a fit gets


def resolve_arch(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The ArchSpec, the fit settings that came with it, and where it came from."""
    from ..families import load_spec
    from ..nets.arch import ArchSpec
    from ..nets.space import find_space, load_space
    from ..store.tomlio import load_toml

    if getattr(args, "arch", None):
        spec = load_spec(args.arch)
        data = load_toml(args.arch, "architecture file") if Path(args.arch).suffix.lower() != ".json" else {}
        settings = check_fit_table(data.get("fit", {}), args.arch)
        _check_variant_genes(settings, args.arch)
        return spec, settings, {"arch_file": str(Path(args.arch).resolve())}
    if getattr(args, "space", None):
        space = load_space(find_space(args.space))
        genome = space.default()
        return space.decode(genome), space.fit_settings(genome), {"space_file": space.source}
    return ArchSpec(), {}, {"arch": "seed default"}


def _check_variant_genes(settings: dict[str, Any], source: str) -> None:
    """The variant genes of a [fit] table, refused with the file and table named (the rule is the variants')."""
    from ..errors import DipsearchError
    from ..variants import VariantSettings

    try:
        VariantSettings.from_settings(split_settings(settings)[1])
    except DipsearchError as err:
        raise DipsearchError(f"{err} (in [fit] of {source})") from None


def fit_config(args: argparse.Namespace, from_arch: dict[str, Any]) -> FitConfig:
    from ..fitting.fit import FitConfig

    settings = dict(from_arch)
    for name in (*CONFIG_GENES, BUDGET_GENE):
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    check_fit_settings(settings)
    return FitConfig(seed=args.seed, device=args.device, **settings, **fast_settings(args))


def run(args: argparse.Namespace, console: Console) -> int:
    from ..families import family_of
    from ..fitting.fit import FitHook, check_size, resolve_device
    from ..fitting.loop import Engine
    from ..fitting.memory import check_fit_memory
    from ..fitting.parts import check_fast_settings
    from ..fitting.progress import ProgressHook, fit_progress, summary_table
    from ..stopping import prepare_problem
    from ..store.runs import RunDir
    from ..variants import get_variant, variant_parts
    from ..variants.outputs import save_variant_outputs
    from ..variants.warmstart import FinalWeights
    from .restore_cmd import set_threads

    set_threads(args.threads)
    problem = problem_from_args(args)
    spec, from_arch, source = resolve_arch(args)
    from_arch, variant_genes = split_settings(from_arch)
    variant = variant_from_args(args, variant_genes)
    default_iters = get_variant(variant.variant).default_iters
    if default_iters is not None and args.iters is None and "iters" not in from_arch:
        from_arch["iters"] = default_iters
    config = fit_config(args, from_arch)
    check_size(problem, spec)
    variant.check(config)
    parts, variant_hooks = variant_parts(spec, problem.image_shape[0], config, variant)
    device = str(resolve_device(config.device))
    check_fast_settings(config, resolve_device(config.device))
    check_fit_memory(problem, spec, resolve_device(config.device))
    hooks: list[FitHook] = [h for h in (factory(args, problem) for factory in args.extra_hooks) if h is not None]
    problem = prepare_problem(problem, hooks)  # e.g. --stop holdout withholds its pixels from the loss
    hooks += [*variant_hooks, FinalWeights()]
    wants_tensorboard(args)  # a missing extra fails before the run folder exists

    run_dir = RunDir.create(args.out, "fit", problem_tag(args))
    try:
        hooks += log_hooks(args, run_dir.path)
        run_dir.write_toml(
            "config.toml",
            {
                "source": source,
                "problem": problem.meta,
                "fit": config.to_dict(),
                "arch": family_of(spec).to_dict(),
                "variant": variant.to_dict(),
            },
        )
        run_dir.write_versions(device)
        for name, picture in problem.pictures().items():  # observed.png and the task's own (kernel)
            run_dir.save_image(name, picture)
        if problem.clean is not None:
            run_dir.save_image("clean.png", problem.clean)
        progress = fit_progress(console, transient=False)
        if not args.no_progress:
            hooks.append(ProgressHook(progress, description="fit"))
            with progress:
                result = Engine(spec, config, parts).run(problem, hooks)
        else:
            result = Engine(spec, config, parts).run(problem, hooks)
        run_dir.write_csv("trace.csv", result.trace)
        run_dir.save_image("output.png", result.output)
        run_dir.save_image("output_ema.png", result.ema)
        for name, image in result.extras.get("images", {}).items():
            run_dir.save_image(f"{name}.png", image)
        save_variant_outputs(run_dir, result, spec, problem.image_shape[0])
        summary = result.summary(problem)
        run_dir.write_json("summary.json", summary)
    except BaseException:
        run_dir.discard()
        raise
    console.print(summary_table(f"{problem.task}: {result.iters_run} iterations on {device}", summary))
    if result.restores:
        kept = f"; the output is that of step {result.restored_to}" if result.restored_to else ""
        console.print(
            f"warning: the fit diverged {result.restores} time(s) (at steps {result.restore_steps}) and the "
            f"guard restored the last good parameters{kept}; a smaller --lr (now {config.lr:g}) may help",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    console.print(f"run folder: [bold]{run_dir.path}[/bold]", soft_wrap=True, highlight=False)
    return 0
