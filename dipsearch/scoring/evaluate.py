"""Candidate evaluation: one short DIP fit of one architecture, scored by a fitness.

`evaluate(candidate)` is a module-level function of picklable arguments, so any
concurrent.futures.Executor (in-process, local process pool, Dask) can run it. It never raises for a
failing fit: the error is recorded and the candidate gets the worst fitness, so a search goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import ArgumentError, DipsearchError
from ..families import count_params_of, spec_to_dict
from ..fitting.fit import FitConfig, FitHook, StepState
from ..fitting.tensorboard import METRICS, TensorBoardHook, writer
from ..metrics import psnr
from ..nets.arch import ArchSpec
from ..nets.genes import config_settings
from ..problems.base import get_task
from ..problems.problem import Problem
from ..stopping.spec import StopSpec
from ..variants import candidate_variant, fit_variant, get_variant
from .fitness import make_fitness


class Reporter(Protocol):
    """Receives the running fitness during a fit (e.g. an Optuna trial); returns True to prune it."""

    def report(self, step: int, value: float) -> bool: ...


@dataclass
class Candidate:
    genome: dict[str, Any]
    arch: ArchSpec  # or any other family's spec (dipsearch.families)
    problem: Problem
    iters: int
    seed: int = 0
    fitness: str = "holdout"
    fit_settings: dict[str, Any] = field(default_factory=dict)  # lr, reg_noise_std, iters from the genome
    scale: float = 1.0  # evaluate on a 1/2 or 1/4 subsampled problem: a cheaper proxy
    device: str = "auto"
    index: int = 0
    output: str = "ema"  # which image is scored: the averaged output (ema) or the last one (final)
    reporter: Reporter | None = None
    report_every: int = 100
    # CPU float results depend on torch's intra-op thread count: a fixed count makes a fit bit-identical
    # wherever it runs (in-process, any pool size, Dask). None leaves the process's setting alone.
    threads: int | None = None
    # Online stopping (a StopSpec; its dict form is accepted): the fitness then scores the detector's chosen
    # output. None: no stopping.
    stop: StopSpec | None = None
    # FitConfig speed settings (precision, channels_last, compile); empty: exact fp32 eager
    fit_options: dict[str, Any] = field(default_factory=dict)
    # Warm start: a weights.pt (dipsearch.variants.warmstart) of this candidate's architecture. None: cold start.
    init: str | None = None
    # The seed of the held-out split when it must differ from the fit's: restarts of one network with other seeds
    # are judged on the pixels every other member of an ensemble withheld. None: the fit's seed.
    holdout_seed: int | None = None
    # TensorBoard logs (dipsearch.fitting.tensorboard): a folder where this evaluation writes its fit and scores as the
    # run candidate_<index>. None: no logs. Not part of the key: logging does not change the result.
    tensorboard: str | None = None

    def __post_init__(self) -> None:
        self.stop = StopSpec.of(self.stop)

    @property
    def key(self) -> str:
        return candidate_key(
            self.arch,
            self.fit_settings,
            self.iters,
            self.fitness,
            self.scale,
            self.seed,
            self.output,
            stop=self.stop,
            options=self.fit_options,
            init=self.init,
            holdout_seed=self.holdout_seed,
        )


STOP_REVISION = 2


def candidate_key(
    arch: ArchSpec,
    settings: dict,
    iters: int,
    fitness: str,
    scale: float,
    seed: int,
    output: str,
    stop: StopSpec | dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    init: str | None = None,
    holdout_seed: int | None = None,
) -> str:
    """Canonical hash: two genomes that decode to the same network and budget share one evaluation."""
    data = {
        "arch": spec_to_dict(arch),
        "fit": settings,
        "iters": iters,
        "fitness": fitness,
        "scale": scale,
        "seed": seed,
        "output": output,
    }
    if stop is not None:  # only then, so that keys without stopping stay what they were
        data["stop"] = stop.to_dict() if isinstance(stop, StopSpec) else stop
        # 2: the held-out detector scores the holdout fitness's pixels (it withheld a second split before) and its
        # rule takes the minimum of the smoothed statistic: stopped fits of run folders made before are not these
        data["stop_revision"] = STOP_REVISION
    if options:  # likewise: bf16 fits are not the fp32 ones
        data["options"] = options
    if init is not None:
        data["init"] = init
    if holdout_seed is not None:
        data["holdout_seed"] = holdout_seed
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Evaluation:
    index: int
    key: str
    genome: dict[str, Any]
    fitness: float | None  # None when the fit failed
    psnr: float | None  # true PSNR of the scored output, when a clean image is known
    params: int | None
    iters_run: int
    seconds: float
    error: str | None = None
    pruned: bool = False
    host: str = ""
    stopped_iter: int | None = None  # the iteration a stopping detector chose (its output was scored)
    image: torch.Tensor | None = field(default=None, repr=False)  # the scored output; not written to the log

    @property
    def search_value(self) -> float:
        """The value a searcher maximises: failed candidates rank below every real one."""
        return -math.inf if self.fitness is None or math.isnan(self.fitness) else self.fitness

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("image")
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Evaluation:
        known = {k: v for k, v in row.items() if k in cls.__dataclass_fields__ and k != "image"}
        return cls(**known)

    @classmethod
    def lost(cls, candidate: Candidate, err: BaseException) -> Evaluation:
        """The failed evaluation of a candidate whose executor raised instead of returning (a lost worker)."""
        return cls(
            index=candidate.index,
            key=candidate.key,
            genome=candidate.genome,
            fitness=None,
            psnr=None,
            params=None,
            iters_run=0,
            seconds=0.0,
            error=f"executor: {type(err).__name__}: {err}",
        )


class _RunningFitness(FitHook):
    name = "pruner"
    step_feed = "cadence"  # scores the live image at report steps only

    def __init__(self, candidate: Candidate, score):
        self.candidate = candidate
        self.score = score
        self.pruned = False

    def wants_live(self, step: int) -> bool:
        return step % self.candidate.report_every == 0

    def on_step(self, state: StepState) -> bool:
        if state.step % self.candidate.report_every:
            return False
        image = state.ema if self.candidate.output == "ema" else state.out
        value = self.score(image, state.problem)
        state.record["fitness"] = value
        self.pruned = bool(self.candidate.reporter.report(state.step, value))
        return self.pruned


def stop_hook(stop: StopSpec | dict[str, Any], seed: int, problem: Problem) -> FitHook:
    """The online stopping hook of a StopSpec (or its dict form); raises for a bad spec."""
    return StopSpec.of(stop).hook(seed, problem)


def subsample_stride(scale: float) -> int:
    """The pixel stride of an evaluation scale (1, 0.5 or 0.25)."""
    stride = round(1 / scale)
    if stride not in (1, 2, 4) or abs(1 / stride - scale) > 1e-9:
        raise ArgumentError("{eval_scale} must be 1, 0.5 or 0.25, got {value}", value=scale)
    return stride


def subsampled_shape(image_shape: tuple[int, int, int], scale: float) -> tuple[int, int, int]:
    """The (C, H, W) of the image `subsample` makes: every stride-th pixel, the first row and column included."""
    c, h, w = image_shape
    stride = subsample_stride(scale)
    return c, math.ceil(h / stride), math.ceil(w / stride)


def subsample(problem: Problem, scale: float) -> Problem:
    """Every (1/scale)-th pixel: keeps the noise statistics (unlike averaging), at 1/scale^2 the cost."""
    if scale == 1:
        return problem
    stride = subsample_stride(scale)
    if not get_task(problem.task).pointwise:
        raise DipsearchError(f"evaluation at reduced scale is not available for {get_task(problem.task).title}")
    take = lambda t: None if t is None else t[..., ::stride, ::stride].contiguous()  # noqa: E731
    observed = take(problem.observed)
    channels = problem.image_shape[0]
    return replace(
        problem,
        observed=observed,
        image_shape=(channels, observed.shape[-2], observed.shape[-1]),
        mask=take(problem.mask),
        clean=take(problem.clean),
        meta={**problem.meta, "eval_scale": scale},
    )


def evaluate(candidate: Candidate, loggers: Sequence[FitHook] = ()) -> Evaluation:
    """Fit and score one candidate. Module-level and picklable: runs in any executor.

    With candidate.threads set, torch runs with that many threads for the duration of the fit and the
    previous count is restored afterwards (torch's setting is process-wide). `loggers`: hooks that only watch
    the fit (a progress display), run after every other hook.
    """
    if candidate.threads is None:
        return _evaluate(candidate, loggers)
    previous = torch.get_num_threads()
    torch.set_num_threads(candidate.threads)
    try:
        return _evaluate(candidate, loggers)
    finally:
        torch.set_num_threads(previous)


def _evaluate(candidate: Candidate, loggers: Sequence[FitHook] = ()) -> Evaluation:
    if candidate.tensorboard is None:
        return _fit_and_score(candidate, list(loggers))
    logger = TensorBoardHook(candidate_logdir(candidate.tensorboard, candidate.index))
    try:
        evaluation = _fit_and_score(candidate, [*loggers, logger])
    finally:
        logger.close()
    log_evaluation(candidate.tensorboard, candidate, evaluation)
    return evaluation


def _fit_and_score(candidate: Candidate, loggers: list[FitHook]) -> Evaluation:
    """The evaluation; `loggers` run after every other hook (they read what the others decided)."""
    start = time.perf_counter()
    try:
        setup = FitSetup.of(candidate)
        result = fit_variant(setup.problem, candidate.arch, setup.config, setup.variant, [*setup.hooks, *loggers])
        return setup.scored(result, start)
    except Exception as err:  # noqa: BLE001 - a failing candidate must not stop the search
        return failed(candidate, err, start)


@dataclass
class FitSetup:
    """What a candidate's fit is made of (the problem to fit, its config, variant and hooks), and how its result is
    scored: the halves of an evaluation around the fit, shared by a fit of its own and a member of a batch."""

    candidate: Candidate
    fitness: Any
    problem: Problem  # prepared: the fitness's and the stopping's pixels withheld
    clean: torch.Tensor | None
    config: FitConfig
    variant: Any
    hooks: list[FitHook]
    running: _RunningFitness | None

    @classmethod
    def of(cls, candidate: Candidate) -> FitSetup:
        problem = subsample(candidate.problem, candidate.scale)
        fitness = make_fitness(candidate.fitness, problem)
        prepared = fitness.prepare(
            problem, candidate.seed if candidate.holdout_seed is None else candidate.holdout_seed
        )
        settings = config_settings(candidate.fit_settings)
        iters = int(candidate.fit_settings.get("iters", candidate.iters))
        config = FitConfig(
            iters=iters, seed=candidate.seed, device=candidate.device, ssim_every=0, **settings, **candidate.fit_options
        )
        hooks: list[FitHook] = fitness.hooks()  # first: a running score may read what they record
        if candidate.stop is not None:
            stopper = stop_hook(candidate.stop, candidate.seed, prepared)
            prepared = stopper.prepare(prepared)  # the held-out detector withholds its own pixels
            hooks.append(stopper)
        running = None
        if candidate.reporter is not None:
            running = _RunningFitness(candidate, fitness.score)
            hooks.append(running)
        variant = candidate_variant(candidate.fit_settings, iters, candidate.init)
        return cls(candidate, fitness, prepared, problem.clean, config, variant, hooks, running)

    def scored(self, result: Any, start: float) -> Evaluation:
        """The evaluation of the fit's result: the stopped output (or the variant's, or the EMA) scored."""
        candidate, fitness = self.candidate, self.fitness
        stopped_iter = result.summary_extra.get("stopped_iter") if candidate.stop is not None else None
        if stopped_iter is not None:
            image = result.extras["images"]["output_stopped"]
            fitness.select_step(int(stopped_iter))
        else:
            key = get_variant(self.variant.variant).output_image  # SGLD: the posterior mean
            image = result.extras.get("images", {}).get(key) if key else None
            if image is None:
                image = result.ema if (fitness.output or candidate.output) == "ema" else result.output
        value = fitness.score(image, self.problem)
        if math.isnan(value):
            raise DipsearchError(f"the fit diverged: its {candidate.fitness} fitness is NaN")
        true_psnr = psnr(image, self.clean) if self.clean is not None else None
        return Evaluation(
            **_identity(candidate),
            fitness=value,
            psnr=true_psnr,
            params=result.params,
            iters_run=result.iters_run,
            seconds=time.perf_counter() - start,
            pruned=bool(self.running and self.running.pruned),
            image=image,
            stopped_iter=stopped_iter,
        )


def _identity(candidate: Candidate) -> dict[str, Any]:
    return dict(index=candidate.index, key=candidate.key, genome=candidate.genome, host=socket.gethostname())


def failed(candidate: Candidate, err: Exception, start: float) -> Evaluation:
    """The evaluation of a candidate whose fit or score raised: the error recorded, the worst fitness."""
    detail = str(err) if isinstance(err, DipsearchError) else "".join(traceback.format_exception_only(err)).strip()
    params = None
    try:
        params = count_params_of(candidate.arch, candidate.problem.image_shape[0])
    except Exception:  # noqa: BLE001
        pass
    return Evaluation(
        **_identity(candidate),
        fitness=None,
        psnr=None,
        params=params,
        iters_run=0,
        seconds=time.perf_counter() - start,
        error=detail,
    )


# TensorBoard's view of a candidate lives here, not in tensorboard.py: that module logs fits and knows no
# Candidate or Evaluation, so evaluate() depends on it and not the other way round.
def candidate_logdir(root: str | Path, index: int) -> Path:
    """The run of one evaluated candidate of a search whose logs go to `root`."""
    return Path(root) / f"candidate_{index:05d}"


def _hparam(value: Any) -> int | float | str | bool:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def log_evaluation(root: str | Path, candidate: Candidate, evaluation: Evaluation) -> None:
    """The candidate's hparams (its genes, budget and evaluation scale) and metrics (its scores) in its run.

    Every candidate lists the same hparams and metric names, so whichever run TensorBoard reads the experiment
    from, the HParams view has a column for each; a score a candidate lacks (no clean image, a failed fit) is
    left out of its row.
    """
    from torch.utils.tensorboard.summary import hparams

    params = {k: _hparam(v) for k, v in candidate.genome.items()}
    params["budget"] = int(candidate.fit_settings.get("iters", candidate.iters))
    params["eval_scale"] = float(candidate.scale)
    names = [m for m in METRICS if m != "psnr" or candidate.problem.clean is not None]
    experiment, start, end = hparams(params, {f"hparam/{m}": 0.0 for m in names})
    with writer(candidate_logdir(root, evaluation.index)) as w:
        for summary in (experiment, start, end):
            w.file_writer.add_summary(summary)
        for name in names:
            value = getattr(evaluation, name)
            if value is not None and math.isfinite(value):
                w.add_scalar(f"hparam/{name}", float(value), evaluation.iters_run)
        if evaluation.error:
            w.add_text("error", evaluation.error)
