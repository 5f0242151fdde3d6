"""Scoring candidates without training: seeded forward passes of the untrained network, then metrics.

The network is initialised exactly as fit() would initialise it for the same seed, and the first of the
K random inputs is the input fit() would use, so the score describes the very network a later fit starts
from. Inputs go through one at a time: batch norm runs on the statistics of a single image in every fit
(docs/reference.md, section 2), and a batch of K inputs would normalise them together.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import DipsearchError, check_at_least
from ..families import family_of
from ..fitting.fit import min_size, resolve_device
from ..nets.arch import ArchSpec
from ..nets.space import Genome, SearchSpace
from ..problems.problem import Problem
from .metrics import METRICS, get_metric


@dataclass(frozen=True)
class ScoreConfig:
    inputs: int = 4  # random inputs (forward passes) per candidate
    seed: int = 0  # network initialisation and inputs; the fit seed of the candidates scored
    device: str = "auto"
    input_scale: float = 0.1  # U(0, 0.1) inputs, as fit() draws them
    metrics: tuple[str, ...] = tuple(METRICS)
    # torch intra-op threads while scoring (restored afterwards); None leaves the process setting alone.
    # One thread on a shared CPU: tiny forward passes lose many times over to spinning OpenMP threads.
    threads: int | None = None

    def __post_init__(self) -> None:
        check_at_least("inputs", self.inputs, 1)  # the CLI names --inputs
        for name in self.metrics:
            get_metric(name)


@torch.no_grad()
def forward_outputs(problem: Problem, spec: ArchSpec, config: ScoreConfig) -> Tensor:
    """K x C x h x w: the untrained network's outputs for K seeded inputs, mapped into observation space."""
    device = resolve_device(config.device)
    channels, height, width = problem.image_shape
    family = family_of(spec)  # the same seeded network and input a fit of this seed starts from
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = family.build(channels).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    operator = problem.to(device).operator
    outputs = []
    for _ in range(config.inputs):
        z = family.make_input(height, width, config.input_scale, generator).to(device)
        outputs.append(operator(net(z)[:, :, :height, :width]))
    return torch.cat(outputs)


def score_spec(problem: Problem, spec: ArchSpec, config: ScoreConfig = ScoreConfig()) -> dict[str, float]:
    """Every metric of config.metrics for one network (lower is better for each)."""
    outputs = forward_outputs(problem, spec, config)
    observed = problem.observed.to(outputs.device)
    return {name: get_metric(name).fn(outputs, observed) for name in config.metrics}


@dataclass
class Scored:
    genome: Genome
    spec: ArchSpec
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def fits(problem: Problem, spec: ArchSpec) -> bool:
    _, h, w = problem.image_shape
    return min(h, w) >= min_size(spec)


def sample_candidates(
    space: SearchSpace, problem: Problem, n: int, rng: random.Random, include: list[Genome] = ()
) -> list[Scored]:
    """Up to n distinct genomes (by the network and fit settings they decode to) whose networks fit the image.

    `include` genomes come first (when they fit). Sampling gives up after 50 draws per wanted candidate,
    so a small space returns fewer than n; a space with no network that fits raises.
    """
    out: list[Scored] = []
    seen: set[str] = set()
    tries = 0

    def offer(genome: Genome) -> None:
        spec = space.decode(genome)
        key = spec.canonical_key() + repr(sorted(space.fit_settings(genome).items()))
        if key not in seen and fits(problem, spec):
            seen.add(key)
            out.append(Scored(dict(genome), spec))

    for genome in include:
        if len(out) < n:
            offer(genome)
    while len(out) < n and tries < 50 * n:
        tries += 1
        offer(space.sample(rng))
    if not out:
        _, h, w = problem.image_shape
        raise DipsearchError(
            f"no network of space {space.name!r} fits the {w}x{h} px image in {tries} samples "
            f"(the smallest side needed is {min_size(space.decode(space.default()))} px for its default); "
            "use a larger image or a space with fewer levels"
        )
    return out


def score_all(problem: Problem, candidates: list[Scored], config: ScoreConfig, progress=None) -> None:
    """Scores every candidate in place; `progress(i)` is called after each one."""
    previous = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        for i, candidate in enumerate(candidates):
            start = time.perf_counter()
            candidate.scores = score_spec(problem, candidate.spec, config)
            candidate.seconds = time.perf_counter() - start
            if progress is not None:
                progress(i)
    finally:
        torch.set_num_threads(previous)


def ranked(candidates: list[Scored], metric: str) -> list[Scored]:
    """Best first (lowest score); a NaN score ranks last."""
    get_metric(metric)
    return sorted(candidates, key=lambda c: (c.scores[metric] != c.scores[metric], c.scores[metric]))
