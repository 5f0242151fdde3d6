"""SearchResult: what a finished search found, read from its run folder (GA or Bayesian, new or old)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DipsearchError
from ..scoring.evaluate import Evaluation
from ..store.runs import RunDir
from ..store.tomlio import load_toml
from .record import EVALUATIONS

BEST_ARCH, BEST_IMAGE, ENSEMBLE_IMAGE = "best_arch.toml", "best_output.png", "ensemble.png"


@dataclass
class SearchResult:
    """The answer of a search and where it lies.

    best_arch is the winning network (an ArchSpec, or another family's spec) and best_genome the genome it
    decodes from; with a final rung they are the final rung's choice, and best_fitness / best_psnr its scores.
    image is the winner's output (1xCxHxW in [0, 1]), read from best_output.png on first use.
    final lists the final rung's finalists (summary.json rows, the chosen one's index in summary["final_choice"]).
    ensemble describes the final rung's ensemble (method, members with their weights, scores; None without a final
    rung) and ensemble_image is its output, read from ensemble.png on first use.
    """

    run_dir: Path
    searcher: str
    best_genome: dict[str, Any] | None
    best_arch: Any
    best_fitness: float | None
    best_psnr: float | None
    summary: dict[str, Any]
    evaluations: list[Evaluation] = field(repr=False)
    final: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _images: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def image(self):  # noqa: ANN201 - a torch.Tensor; torch is imported with the run folder's files
        return self._read(BEST_IMAGE, "the search has no winner's image")

    @property
    def ensemble(self) -> dict[str, Any] | None:
        return self.summary.get("ensemble")

    @property
    def ensemble_image(self):  # noqa: ANN201 - a torch.Tensor, like image
        return self._read(ENSEMBLE_IMAGE, "the search has no ensemble (it ran without a final rung)")

    def _read(self, name: str, missing: str):  # noqa: ANN202
        if name not in self._images:
            path = self.run_dir / name
            if not path.is_file():
                raise DipsearchError(f"{self.run_dir} has no {name}: {missing}")
            from ..store.imageio import load_image

            self._images[name] = load_image(path)
        return self._images[name]

    @property
    def best_arch_file(self) -> Path:
        return self.run_dir / BEST_ARCH

    @classmethod
    def load(cls, run_dir: str | Path) -> SearchResult:
        """Read the result of a search run folder (`dipsearch search ga|bayes`, or this API)."""
        from ..families import load_spec

        run = RunDir.open(run_dir)
        config = load_toml(run.file("config.toml"), "run configuration")
        searcher = config.get("search", {}).get("searcher") or (
            "bayes" if "bayes" in config else "ga" if "ga" in config else None
        )
        if searcher is None:
            raise DipsearchError(
                f"{run.path} is not a search run folder (its config.toml has no [ga] or [bayes] table)"
            )
        summary_file = run.file("summary.json")
        if not summary_file.is_file():
            raise DipsearchError(f"{run.path} has no summary.json: the search has not finished; resume it first")
        import json

        summary = json.loads(summary_file.read_text())
        genome = arch = None
        if run.file(BEST_ARCH).is_file():
            genome = load_toml(run.file(BEST_ARCH), "architecture file").get("genome")
            arch = load_spec(run.file(BEST_ARCH))
        evaluations = [Evaluation.from_row(row) for row in run.read_jsonl(EVALUATIONS)]
        return cls(
            run.path,
            searcher,
            genome,
            arch,
            summary.get("best_fitness"),
            summary.get("best_psnr"),
            summary,
            evaluations,
            list(summary.get("final") or []),
        )
