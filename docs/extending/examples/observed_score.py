"""A toy candidate score: the PSNR of a fit's output against the noisy observation itself.

It is a poor score on purpose (a network that copies the noise scores best), which makes it a clear
example: a score is a Fitness subclass with a `name`, a `score` and, if some problems cannot be scored,
a `check`; register_fitness makes it a `fitness=` value of every search.

    python docs/extending/examples/observed_score.py     # scores two candidates of a small random search
"""

from __future__ import annotations

from dipsearch.errors import ArgumentError
from dipsearch.metrics import psnr
from dipsearch.scoring.fitness import Fitness, register_fitness


@register_fitness
class ObservedFitness(Fitness):
    name = "observed"

    def check(self, problem) -> None:
        if problem.task != "denoise":  # other tasks observe a different image than the output
            raise ArgumentError("fitness 'observed' scores denoising only, not {task!r}", task=problem.task)

    def score(self, output, problem) -> float:
        return psnr(output, problem.observed.to(output.device))


def main(out: str = "runs") -> dict:
    """A random search of two candidates on a 32x32 synthetic image, scored by this fitness."""
    import tempfile
    from pathlib import Path

    import torch

    from dipsearch.search import ProblemRecipe, Runtime, SearchSpec
    from dipsearch.search.api import run
    from dipsearch.search.random import RandomSettings
    from dipsearch.store.imageio import save_image

    folder = Path(tempfile.mkdtemp())
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    save_image(torch.stack([ys, xs, (ys + xs) / 2]).unsqueeze(0), folder / "clean.png")
    spec = SearchSpec(
        space="demo",
        iters=20,
        fitness="observed",
        device="cpu",
        rungs=None,
        searcher="random",
        settings=RandomSettings(trials=2),
    )
    result = run(ProblemRecipe(clean=str(folder / "clean.png"), sigma=25), spec, Runtime(out=out))
    print(f"best 'observed' score {result.best_fitness:.2f} dB (true PSNR {result.best_psnr:.2f} dB)")
    return result.summary


if __name__ == "__main__":
    main()
