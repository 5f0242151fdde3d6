"""The run folder of a search: evaluation log and cache, best architecture, best image, summary.

evaluations.jsonl is both the log and the cache: one line per finished evaluation, appended as results
arrive; a resumed search reads it back so that no architecture is fitted twice and nothing is lost but
the candidates that were in flight. Fits of the multi-fidelity rungs (search/rungs.py) are logged there too,
with their `rung` and `budget`; they are kept apart (`rung_cache`): their fitness is on another budget, so
they never compete with the screening for `best`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..families import spec_to_dict
from ..nets.space import SearchSpace
from ..scoring.evaluate import Evaluation
from ..store.runs import RunDir, write_atomic

EVALUATIONS = "evaluations.jsonl"
FINAL_IMAGES = "final"  # the final rung's outputs, one PNG per fit, named by candidate key


class SearchRecord:
    def __init__(self, run: RunDir, space: SearchSpace):
        self.run = run
        self.space = space
        self.cache: dict[str, Evaluation] = {}
        self.rung_cache: dict[str, Evaluation] = {}
        self.best: Evaluation | None = None
        self._reserved = -1
        for row in run.read_jsonl(EVALUATIONS):
            if row.get("rung") is not None:
                self.rung_cache[row["key"]] = Evaluation.from_row(row)
            else:
                self._remember(Evaluation.from_row(row))

    @property
    def path(self) -> Path:
        return self.run.path

    def __len__(self) -> int:
        return len(self.cache)

    def lookup(self, key: str) -> Evaluation | None:
        return self.cache.get(key)

    def lookup_any(self, key: str) -> Evaluation | None:
        """A finished fit with this key, of the screening or of a rung."""
        return self.cache.get(key) or self.rung_cache.get(key)

    def next_index(self) -> int:
        used = [e.index for e in (*self.cache.values(), *self.rung_cache.values())]
        return max([*used, self._reserved]) + 1

    def reserve(self, index: int) -> None:
        """An index handed to a fit still running, so that the next one gets another."""
        self._reserved = max(self._reserved, index)

    def add_rung(self, evaluation: Evaluation, extra: dict[str, Any]) -> None:
        """Log one rung fit (extra holds its rung and budget); a final-rung output is kept as final/<key>.png."""
        # The image before the row: a process killed between the two leaves an image without a row (fitted again
        # on resume), never a finished finalist whose output is missing from the paired test and the ensemble.
        if evaluation.image is not None and extra.get("rung") == "final":
            self.run.file(FINAL_IMAGES).mkdir(exist_ok=True)
            self.run.save_image(f"{FINAL_IMAGES}/{evaluation.key}.png", evaluation.image)
        self.run.append_jsonl(EVALUATIONS, {**evaluation.to_row(), **extra})
        self.rung_cache[evaluation.key] = evaluation
        evaluation.image = None

    def final_image(self, key: str):
        """The stopped output of a final-rung fit (a tensor), as kept in final/<key>.png; None if absent.
        The PNG is 8-bit: its rounding error (< 0.002 RMS) is far below any noise a search faces."""
        from ..store.imageio import load_image

        path = self.run.file(FINAL_IMAGES) / f"{key}.png"
        return load_image(path) if path.is_file() else None

    def _remember(self, evaluation: Evaluation) -> bool:
        self.cache[evaluation.key] = evaluation
        # A pruned evaluation's fitness is from a cut-short fit: it is logged but never the best.
        if (
            evaluation.fitness is not None
            and not evaluation.pruned
            and (self.best is None or evaluation.search_value > self.best.search_value)
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

    def write_best(
        self, evaluation: Evaluation, fit: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        """best_arch.toml (with `fit` settings over the genome's, `extra` in its [search] table) and
        best_output.png (the evaluation's image, or its final-rung PNG)."""
        arch = self.space.decode(evaluation.genome)
        self.run.write_toml(
            "best_arch.toml",
            {
                "arch": spec_to_dict(arch),
                "fit": {**self.space.fit_settings(evaluation.genome), **(fit or {})} or None,
                "search": {
                    "fitness": evaluation.fitness,
                    "psnr": evaluation.psnr,
                    "evaluation": evaluation.index,
                    "key": evaluation.key,
                    **(extra or {}),
                },
                "genome": evaluation.genome,
            },
        )
        kept = self.run.file(FINAL_IMAGES) / f"{evaluation.key}.png"
        if evaluation.image is not None:
            self.run.save_image("best_output.png", evaluation.image)
        elif kept.is_file():
            write_atomic(self.run.file("best_output.png"), kept.read_bytes())

    def summary(self, **fields: Any) -> dict[str, Any]:
        best = self.best
        return {
            "best_fitness": best.fitness if best else None,
            "best_psnr": best.psnr if best else None,
            "evaluations": len(self.cache),
            "failed": sum(1 for e in self.cache.values() if e.fitness is None),
            **fields,
        }
