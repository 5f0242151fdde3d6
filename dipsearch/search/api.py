"""run and resume: any registered searcher's search, started or continued, as a library caller runs it.

Above both the registry (base.py) and the spec (spec.py): it is the one place that needs them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import get_searcher, searcher_of_folder

if TYPE_CHECKING:
    from ..problems.problem import Problem
    from ..problems.recipe import ProblemRecipe
    from .result import SearchResult
    from .spec import Runtime, SearchSpec


def run(problem: Problem | ProblemRecipe, spec: SearchSpec, runtime: Runtime | None = None) -> SearchResult:
    """Run the search spec.searcher names (None: the GA) and return its SearchResult."""
    from .spec import Runtime

    searcher = get_searcher(spec.searcher or "ga")
    return searcher.start(problem, spec, runtime or Runtime()).result()


def resume(run_dir: str | Path, runtime: Runtime | None = None, **changes: Any) -> SearchResult:
    """Continue any search run folder with the searcher that made it."""
    from .spec import Runtime

    searcher = get_searcher(searcher_of_folder(Path(run_dir)), "run_dir")
    return searcher.resume(run_dir, runtime or Runtime(), **changes).result()
