"""A search set up on its problem: the spec checked against the problem, the space cut to the image,
and the Candidate of each genome (SearchSetup), shared by the GA, the Bayesian driver and its workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import ArgumentError, DipsearchError
from ..nets.space import Genome, SearchSpace, find_space, load_space
from ..problems.base import get_task
from ..problems.problem import Problem
from ..problems.recipe import ProblemRecipe
from ..scoring.evaluate import Candidate, subsampled_shape
from ..store.tomlio import dumps_toml, load_toml
from .rungs import RungPlan
from .spec import SearchSpec

SPACE_SNAPSHOT = "space.toml"  # a search run folder's copy of its space


@dataclass
class SearchSetup:
    """What every searcher needs, resolved and validated before any run folder is created."""

    problem: Problem
    space: SearchSpace
    spec: SearchSpec
    recipe: ProblemRecipe
    note: str | None = None  # how the space was cut down to the networks that fit the image, for the user
    init_weights: Any = None  # the verified warm-start WeightsFile (dipsearch.variants.warmstart), if any
    threads: int | None = None  # torch threads per fit, as resolved for this run
    tensorboard: str | None = None  # where each candidate writes its TensorBoard run (dipsearch.fitting.tensorboard)

    def log_into(self, run_path: Path, tensorboard: bool) -> None:
        """Once the run folder exists: with `tensorboard`, the candidates log into its tensorboard/ folder."""
        from ..fitting.tensorboard import FOLDER

        self.tensorboard = str(Path(run_path) / FOLDER) if tensorboard else None

    def candidate(self, genome: Genome, index: int, **extra: Any) -> Candidate:
        spec = self.spec
        arch = self.space.decode(genome)
        if self.init_weights is not None:
            from ..variants.warmstart import arch_mismatch

            if arch_mismatch(self.init_weights, arch, self.problem.image_shape[0]) is None:
                extra.setdefault("init", str(self.init_weights.path))
        if spec.stop is not None:
            extra.setdefault("stop", spec.stop)
        if self.threads is not None:
            extra.setdefault("threads", self.threads)
        if self.tensorboard is not None:
            extra.setdefault("tensorboard", self.tensorboard)
        return Candidate(
            genome=genome,
            arch=arch,
            problem=self.problem,
            iters=spec.iters,
            seed=spec.seed,
            fitness=spec.fitness,
            fit_settings=self.space.fit_settings(genome),
            scale=spec.eval_scale,
            device=spec.device,
            fit_options=spec.fit_options,
            index=index,
            **extra,
        )

    def plan(self) -> RungPlan | None:
        return self.spec.rungs

    def config(self) -> dict[str, Any]:
        """The [search], [problem], [rungs], [recipe] and [spec] tables of config.toml."""
        spec = self.spec
        search = {
            "space_file": self.space.source,
            "iters": spec.iters,
            "fitness": spec.fitness,
            "eval_scale": spec.eval_scale,
            "seed": spec.seed,
            "device": spec.device,
            **spec.fit_options,
        }
        if self.init_weights is not None:
            search["init"] = str(self.init_weights.path.resolve())
        return {
            "rungs": spec.rungs.to_dict() if spec.rungs else {"final": 0},
            "problem": self.problem.meta,
            "search": search,
            "recipe": self.recipe.to_dict(),
            "spec": spec.to_dict(),
        }


def prepare(problem: Problem, recipe: ProblemRecipe, spec: SearchSpec, remote: bool = False) -> SearchSetup:
    """Check `spec` on `problem` and cut its space to the image; nothing is written. `spec.eval_scale` None
    becomes the default rule's value. remote: the fits run elsewhere (Dask), so this machine's device is not checked."""
    from ..scoring.fitness import make_fitness

    spec.check()
    space = spec.space if isinstance(spec.space, SearchSpace) else load_space(find_space(spec.space))
    if not space.genes:
        raise DipsearchError(
            f"{space.source} declares no gene to search (no [genes.*] or [levels.*] table); "
            "add the genes to vary, or fit one network with `dipsearch fit --space/--arch`"
        )
    from ..nets.genes import check_fit_settings

    check_fit_settings(space.fixed, f"in [fixed] of {space.source}")
    make_fitness(spec.fitness, problem)  # unknown fitness, or psnr without a clean image: fail before any work
    if spec.eval_scale is None:
        spec.eval_scale = default_eval_scale(problem, space)
    if spec.eval_scale != 1 and not get_task(problem.task).pointwise:
        raise ArgumentError(
            "{eval_scale} is for denoising and inpainting; {value} candidates are scored at full scale (drop {eval_scale})",
            value=get_task(problem.task).title,
        )
    if not remote:
        from ..fitting.fit import FitConfig, resolve_device
        from ..fitting.memory import check_fit_memory
        from ..fitting.parts import check_fast_settings

        check_fast_settings(FitConfig(**spec.fit_options), resolve_device(spec.device))
        check_fit_memory(problem, space.decode(space.default()), resolve_device(spec.device))
    if spec.stop is not None:
        spec.stop.hook(spec.seed, problem)  # a detector that cannot work here fails now
    if spec.rungs is not None:
        check_final_stop(spec.rungs, problem, spec.seed)
        spec.rungs.check_weights(make_fitness(spec.fitness, problem))
    space, note = fit_space_to_image(space, problem, spec.eval_scale)
    if not space.genes:
        raise DipsearchError(f"{note}; that leaves a single network and nothing to search: use a larger image")
    init = None
    if spec.init:
        from ..variants.warmstart import load_weights_file

        init = load_weights_file(spec.init)  # a missing or damaged file fails before any run folder exists
    return SearchSetup(problem, space, spec, recipe, note, init, spec.threads)


def default_eval_scale(problem: Problem, space: SearchSpace) -> float:
    """0.5 (screening on every other pixel, see bench/fidelity.py) unless the task cannot be subsampled
    (super-resolution) or the half image is too small for the space's default network."""
    from ..fitting.fit import check_size

    if not get_task(problem.task).pointwise:
        return 1.0
    try:  # the half image: every other pixel, as evaluate's scale 0.5 takes them
        check_size(
            SimpleNamespace(image_shape=subsampled_shape(problem.image_shape, 0.5)), space.decode(space.default())
        )
    except DipsearchError:
        return 1.0
    return 0.5


def least_final_iters(plan: RungPlan, problem: Problem, seed: int) -> tuple[int, int]:
    """The smallest final-rung budget the plan's stopping can work in, and the warm-up or window (in steps) that
    sets it. Every detector of the hook counts: the recommended (auto) stopping also runs EMV for its image.
    Raises for a detector that cannot work on the problem (SURE without Gaussian noise)."""
    hook = plan.stop.hook(seed, problem)
    need = max(max(getattr(d, "warmup", 0) + 1, d.window) for d in hook.detectors)
    return need + 1, need - 1


def check_final_stop(plan: RungPlan, problem: Problem, seed: int) -> None:
    if plan.stop is None:  # no stopping: nothing to fit inside the budget
        return
    least, steps = least_final_iters(plan, problem, seed)
    if plan.final_iters < least:
        raise ArgumentError(
            "{final_iters} {value} is too short for {final_stop:{stop}}: it needs at least {least} iterations (a "
            "{steps}-step warm-up or window comes first); give {final_iters} >= {least}, or {final_stop:none} to "
            "run any budget",
            value=plan.final_iters,
            stop=plan.stop.detector,
            least=least,
            steps=steps,
        )


def fit_space_to_image(space: SearchSpace, problem: Problem, scale: float = 1.0) -> tuple[SearchSpace, str | None]:
    """The space cut down to the networks that can fit the image the candidates are scored on."""
    from ..fitting.fit import check_size

    c, h, w = subsampled_shape(problem.image_shape, scale)  # candidates see every (1/scale)-th pixel
    scored = SimpleNamespace(image_shape=(c, h, w))  # all the size rule reads of a problem

    def refuse(arch: Any) -> str | None:
        try:
            check_size(scored, arch)
        except DipsearchError as err:
            return str(err)
        return None

    if scale == 1:
        return space.fitting(refuse, f"{w}x{h} image")
    # The scale is an argument of the search: its error names it the way ArgumentError does (the CLI: the flag).
    marker = "\0eval_scale\0"
    where = (
        f"{w}x{h} image the candidates see (the {problem.image_shape[2]}x{problem.image_shape[1]} image at {marker})"
    )
    try:
        space, note = space.fitting(refuse, where)
    except DipsearchError as err:
        template = str(err).replace("{", "{{").replace("}", "}}").replace(marker, f"{{eval_scale:{scale:g}}}")
        raise ArgumentError(template) from None
    return space, note and note.replace(marker, f"eval_scale {scale:g}")


def starting_genomes(
    setup: SearchSetup, room: int, keep: int | None = None
) -> tuple[list[Genome], dict[str, Any] | None]:
    """The searcher's first genomes (spec.seeding) and their record; ([], None) when there is no seeding."""
    from ..fitting.fit import resolve_device
    from ..preselect import DEFAULT_METRIC
    from ..preselect.seeding import SeedPlan, initial_genomes

    seeding = setup.spec.seeding
    if seeding.preselect_keep is None and keep is not None:
        keep = min(keep, seeding.preselect) if seeding.preselect else None
    plan = SeedPlan(
        preselect=seeding.preselect,
        keep=seeding.preselect_keep if seeding.preselect_keep is not None else keep,
        metric=seeding.preselect_metric or DEFAULT_METRIC,
        seed_from=list(seeding.seed_from),
        start_from=list(seeding.start_from),
    )
    plan.check()
    if not plan.active:
        return [], None
    device = resolve_device(setup.spec.device)
    return initial_genomes(
        setup.space,
        setup.problem,
        plan,
        room,
        seed=setup.spec.seed,
        device=str(device),
        threads=1 if device.type == "cpu" else None,
    )


def describe_seeding(info: dict[str, Any], with_default: bool = True) -> str:
    parts = ["the default genome"] if with_default else []
    if info.get("from_study"):
        parts.append(f"{info['from_study']} best genome(s) of {len(info['start_from'])} study(ies)")
    if info["from_archive"]:
        parts.append(f"{info['from_archive']} winner(s) of {len(info['seed_from_folders'])} earlier run(s)")
    if info["preselect"]:
        parts.append(f"the {info['preselected']} best by {info['metric']} of {info['scored']} scored samples")
    return "starting from " + ", ".join(parts)


def no_winner(evaluations: list[Any], run_path: Any) -> str:
    """Why a search has no winner: its evaluations failed (the most common error is the likely cause) or were pruned."""
    errors = [str(e.error).strip().splitlines()[-1] for e in evaluations if e.fitness is None and e.error]
    pruned = sum(1 for e in evaluations if e.pruned)
    parts = []
    if errors:
        common = max(set(errors), key=errors.count)
        parts.append(f"{len(errors)} failed ({errors.count(common)} with: {common})")
    if pruned:
        parts.append(f"{pruned} were pruned")
    return (
        f"the search has no winner: of its {len(evaluations)} evaluations {' and '.join(parts) or 'none finished'}; "
        f"the log is in {run_path}"
    )


def space_snapshot(spec: SearchSpec) -> str:
    """SPACE_SNAPSHOT of a run folder: the space as given (a resumed run cuts it to the image again)."""
    from ..nets.space import SearchSpace, find_space, space_to_dict

    if isinstance(spec.space, SearchSpace):
        return dumps_toml(space_to_dict(spec.space))
    return dumps_toml(load_toml(find_space(spec.space), "search-space file"))
