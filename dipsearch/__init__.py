"""dipsearch: Deep Image Prior architecture search, automatic stopping and reproducible runs."""

from .arch import ArchSpec, build_net, count_params
from .errors import DipsearchError
from .fit import FitConfig, FitHook, FitResult, StepState, fit
from .space import Genome, SearchSpace, load_space
from .tasks import Problem, make_problem

__all__ = [
    "ArchSpec",
    "DipsearchError",
    "FitConfig",
    "FitHook",
    "FitResult",
    "Genome",
    "Problem",
    "SearchSpace",
    "StepState",
    "build_net",
    "count_params",
    "fit",
    "load_space",
    "make_problem",
]
