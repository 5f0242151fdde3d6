"""Training-free pre-selection: score candidates from forward passes of their untrained networks."""

from .metrics import DEFAULT_METRIC, METRICS, get_metric
from .scoring import ScoreConfig, score_spec

__all__ = ["DEFAULT_METRIC", "METRICS", "ScoreConfig", "get_metric", "score_spec"]
