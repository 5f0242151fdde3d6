"""The searcher plug-in: a small base class, and the registry that maps `--searcher`-style names to classes.

A searcher turns a problem and a SearchSpec into a run folder under runtime.out/search/ and can continue one.
Each is one class with:
  name            the registry name (`dipsearch search NAME`, SearchSpec.searcher, config.toml [search] searcher)
  settings_type() its settings dataclass (SearchSpec.settings), e.g. GAConfig; the command line makes flags
                  from its fields unless it has a module of its own for the searcher (its SEARCHER_COMMANDS)
  start / resume  a run in a new folder / the run of an existing folder; both return a SearchRun
Every searcher takes the SearchSpec's shared settings (space, budget, fitness, stopping, final rung, seeding).

Names are mapped to classes only here, and lazily ("module:Class"), so that `import dipsearch.search` and
building the command line import no searcher's dependencies (DEAP, Optuna). A new searcher is one module
plus one line in SEARCHERS (or a `register` call from the caller's own code).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import ArgumentError

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..problems.problem import Problem
    from ..problems.recipe import ProblemRecipe
    from ..scoring.evaluate import Evaluation
    from .result import SearchResult
    from .spec import Runtime, SearchSpec

SEARCHERS: dict[str, str | type[Searcher]] = {
    "ga": "dipsearch.search.ga.searcher:GASearcher",
    "bayes": "dipsearch.search.bayes:BayesSearcher",
    "random": "dipsearch.search.random:RandomSearcher",
}


class SearchRun(Protocol):
    """A started or resumed search as its driver sees it; result() is what any caller gets back."""

    @property
    def run_dir(self) -> Path: ...

    def result(self) -> SearchResult: ...


class Searcher(ABC):
    """One search strategy. Subclasses set `name` and `summary` and implement the four methods."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `dipsearch search --help`

    @classmethod
    @abstractmethod
    def settings_type(cls) -> type:
        """The settings dataclass this searcher reads from SearchSpec.settings."""

    def default_settings(self, spec: SearchSpec) -> Any:
        """The settings of a spec that gives none."""
        return self.settings_type()()

    def restore_settings(self, budget: Any, seed: int) -> Any | None:
        """The settings `dipsearch restore --search NAME` runs at a restore budget (dipsearch.pipelines.choosers.Budget);
        None: the searcher is not offered there."""
        return None

    def most_candidates(self, settings: Any) -> int:
        """An upper bound of the candidates a search with these settings scores (restore --ensemble checks it)."""
        return settings.trials

    @abstractmethod
    def start(self, problem: Problem | ProblemRecipe, spec: SearchSpec, runtime: Runtime) -> SearchRun:
        """Search `problem` in a new run folder under runtime.out/search/."""

    @abstractmethod
    def resume(self, run_dir: str | Path, runtime: Runtime, **changes: Any) -> SearchRun:
        """Continue the run of `run_dir` (changes: settings fields a resumed run may take anew)."""


def searcher_names() -> list[str]:
    return list(SEARCHERS)


def register(name: str, searcher: str | type[Searcher]) -> None:
    """Add a searcher: a class, or "module:Class" imported on first use."""
    SEARCHERS[name] = searcher


def searcher_class(name: str, argument: str = "searcher") -> type[Searcher]:
    """The class registered as `name`; an unknown name is an ArgumentError naming `argument` and the choices."""
    where = SEARCHERS.get(name)
    if where is None:
        raise ArgumentError(
            f"{{{argument}}} must be one of {{choices}}, got {{value!r}}", value=name, choices=", ".join(SEARCHERS)
        )
    if not isinstance(where, str):
        return where
    module, _, cls = where.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_searcher(name: str, argument: str = "searcher") -> Searcher:
    return searcher_class(name, argument)()


def evaluation_result(future: Future) -> Evaluation:
    """A screening fit's result. evaluate() never raises for a failing fit, so an exception here is the
    executor's (a dead worker process, a lost Dask worker): everything finished so far is on record, and the
    run can be resumed."""
    from concurrent.futures.process import BrokenProcessPool

    from ..errors import DipsearchError

    try:
        return future.result()
    except BrokenProcessPool:
        raise DipsearchError("a worker process died (out of memory?); resume the run from its folder") from None
    except Exception as err:  # noqa: BLE001
        raise DipsearchError(
            f"an evaluation failed on the executor ({type(err).__name__}: {err}); resume the run from its folder"
        ) from err


def searcher_of_folder(run_dir: Path) -> str:
    """The searcher that made a run folder: config.toml [search] searcher, or, in folders made before that
    key, the one whose settings table the config holds."""
    from ..errors import DipsearchError
    from ..store.runs import RunDir
    from ..store.tomlio import load_toml

    config = load_toml(RunDir.open(run_dir).file("config.toml"), "run configuration")
    name = config.get("search", {}).get("searcher") or next((n for n in SEARCHERS if n in config), None)
    if name is None:
        raise DipsearchError(
            f"{run_dir} is not a search run folder (its config.toml names no searcher of {', '.join(SEARCHERS)})"
        )
    return name
