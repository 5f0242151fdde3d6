"""The run folder of a search: evaluation log and cache, best architecture, best image, summary.

evaluations.jsonl is both the log and the cache: one line per finished evaluation, appended as results
arrive; a resumed search reads it back so that no architecture is fitted twice and nothing is lost but
the candidates that were in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluate import Evaluation
from ..families import spec_to_dict
from ..runs import RunDir
from ..space import SearchSpace

EVALUATIONS = "evaluations.jsonl"


class SearchRecord:
    def __init__(self, run: RunDir, space: SearchSpace):
        self.run = run
        self.space = space
        self.cache: dict[str, Evaluation] = {}
        self.best: Evaluation | None = None
        for row in run.read_jsonl(EVALUATIONS):
            self._remember(Evaluation.from_row(row))

    @property
    def path(self) -> Path:
        return self.run.path

    def __len__(self) -> int:
        return len(self.cache)

    def lookup(self, key: str) -> Evaluation | None:
        return self.cache.get(key)

    def _remember(self, evaluation: Evaluation) -> bool:
        self.cache[evaluation.key] = evaluation
        # A pruned evaluation's fitness is from a cut-short fit: it is logged but never the best.
        if evaluation.fitness is not None and not evaluation.pruned and (
            self.best is None or evaluation.search_value > self.best.search_value
        ):
            self.best = evaluation
            return True
        return False

    def add(self, evaluation: Evaluation, extra: dict[str, Any] | None = None) -> bool:
        """Log one finished evaluation; returns True when it is the new best (then its files are written)."""
        self.run.append_jsonl(EVALUATIONS, {**evaluation.to_row(), **(extra or {})})
        is_best = self._remember(evaluation)
        if is_best:
            self.write_best(evaluation)
        return is_best

    def write_best(self, evaluation: Evaluation) -> None:
        arch = self.space.decode(evaluation.genome)
        self.run.write_toml(
            "best_arch.toml",
            {
                "arch": spec_to_dict(arch),
                "fit": self.space.fit_settings(evaluation.genome) or None,
                "search": {
                    "fitness": evaluation.fitness,
                    "psnr": evaluation.psnr,
                    "evaluation": evaluation.index,
                    "key": evaluation.key,
                },
                "genome": evaluation.genome,
            },
        )
        if evaluation.image is not None:
            self.run.save_image("best_output.png", evaluation.image)

    def summary(self, **fields: Any) -> dict[str, Any]:
        best = self.best
        return {
            "best_fitness": best.fitness if best else None,
            "best_psnr": best.psnr if best else None,
            "evaluations": len(self.cache),
            "failed": sum(1 for e in self.cache.values() if e.fitness is None),
            **fields,
        }
