"""A toy searcher: the space's default network and mutations of it (a local search around the default).

It reuses the random searcher's run folder, resume, final rung and command line and changes only which
genomes are fitted, so the whole searcher is the `draws` method below plus one `register` call.

    python docs/extending/examples/neighbour_searcher.py            # runs it on a small synthetic image
"""

from __future__ import annotations

import random

from dipsearch.search.base import register
from dipsearch.search.ga.operators import mutate
from dipsearch.search.random import RandomSearcher, RandomSettings


class NeighbourSearcher(RandomSearcher):
    name = "neighbours"
    summary = "the default network and its mutations"

    def draws(self, setup, settings: RandomSettings, initial: list[dict]) -> list[dict]:
        rng = random.Random(setup.spec.seed)  # seeded: a resumed run draws the same genomes again
        default = setup.space.default()
        return [default] + [mutate(setup.space, default, rng) for _ in range(settings.trials - 1)]


register(NeighbourSearcher.name, NeighbourSearcher)


def main(out: str = "runs") -> dict:
    """Search a 32x32 synthetic image with three candidates and return the run's summary."""
    import tempfile
    from pathlib import Path

    import torch

    from dipsearch.search import ProblemRecipe, Runtime, SearchSpec
    from dipsearch.search.api import run
    from dipsearch.store.imageio import save_image

    folder = Path(tempfile.mkdtemp())
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    save_image(torch.stack([ys, xs, (ys + xs) / 2]).unsqueeze(0), folder / "clean.png")
    spec = SearchSpec(
        space="demo", iters=20, device="cpu", rungs=None, searcher="neighbours", settings=RandomSettings(trials=3)
    )
    result = run(ProblemRecipe(clean=str(folder / "clean.png"), sigma=25), spec, Runtime(out=out))
    print(
        f"best fitness {result.best_fitness:.2f} dB of {result.summary['evaluations']} candidates in {result.run_dir}"
    )
    return result.summary


if __name__ == "__main__":
    main()
