"""StopSpec: the one form of an online stopping setting (detector, rule and detector parameters).

Candidates, rungs, restore and the command line all carry a StopSpec; its dict form (to_dict) is what run
folders store and what a candidate's cache key hashes, so keys stay as they were before this class existed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError

if TYPE_CHECKING:
    from ..fitting.fit import FitHook
    from ..problems.problem import Problem

INDEXINGS = ("end", "start")
AUTO = "auto"  # the recommended stopping for the problem's task and noise, not a detector


@dataclass
class StopSpec:
    """Online stopping of a fit: a detector and its rule (dipsearch.stopping). None fields: the detector's default.

    sigma is on the 0-1 scale (or "estimate"); `parse` takes the command line's 0-255 value.
    """

    detector: str
    patience: int | None = None
    delta: float | None = None
    indexing: str | None = None
    window: int | None = None
    fraction: float | None = None  # holdout: share of the observed pixels withheld from the loss
    sigma: float | str | None = None  # sure: the noise sigma; None: the problem's

    @classmethod
    def parse(
        cls,
        detector: str | None,
        *,
        patience: int | None = None,
        delta: float | None = None,
        indexing: str | None = None,
        window: int | None = None,
        fraction: float | None = None,
        sure_sigma: float | str | None = None,
    ) -> StopSpec | None:
        """The spec of the `--stop` settings; None for no stopping ("none"). sure_sigma: 0-255 scale or "estimate"."""
        from . import DETECTORS

        name = detector or "none"
        if name not in (AUTO, "none") and name not in DETECTORS:
            raise ArgumentError(
                "unknown detector {value!r}; choose one of {choices}, auto (the recommended stopping) or none "
                "(no stopping)",
                value=name,
                choices=", ".join(DETECTORS),
            )
        if name == "none":
            return None
        sigma: float | str | None = sure_sigma
        if sigma is not None and sigma != "estimate":
            try:
                sigma = float(sigma) / 255.0
            except ValueError:
                raise ArgumentError(
                    "{sure_sigma} takes a number (0-255 scale) or 'estimate', got {value!r}", value=sure_sigma
                ) from None
        spec = cls(
            name, patience=patience, delta=delta, indexing=indexing, window=window, fraction=fraction, sigma=sigma
        )
        spec.check()
        return spec

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StopSpec | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The stored form (config.toml, evaluations.jsonl, a candidate's cache key): only the settings given."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def of(cls, value: StopSpec | dict[str, Any] | None) -> StopSpec | None:
        """A StopSpec from itself or its stored dict form (None, {} and {"detector": "none"}: no stopping)."""
        if isinstance(value, dict):
            return None if value.get("detector", "none") == "none" else cls.from_dict(value)
        return value

    def __eq__(self, other: object) -> bool:
        # Equal to its stored dict form too, which run folders and callers of earlier versions hold.
        if isinstance(other, dict):
            return self.to_dict() == other
        return isinstance(other, StopSpec) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable, like every dataclass with eq

    def check(self) -> None:
        if self.indexing is not None and self.indexing not in INDEXINGS:
            raise ArgumentError("{indexing} must be end or start, got {value!r}", value=self.indexing)
        if self.patience is not None and self.patience < 1:
            raise ArgumentError("{patience} must be >= 1, got {value}", value=self.patience)

    def hook(self, seed: int, problem: Problem) -> FitHook:
        """The online stopping hook; raises for a detector that cannot work on this problem."""
        from . import StoppingHook, make_detector

        if self.detector == AUTO:  # the recommended stopping for the task and noise (stopping/auto.py)
            from .auto import auto_hook

            return auto_hook(problem, seed, self.patience, self.fraction, self.window)
        detector = make_detector(self.detector, seed=seed, window=self.window, fraction=self.fraction, sigma=self.sigma)
        detector.check(problem)
        rule = detector.rule(patience=self.patience, delta=self.delta or 0.0, indexing=self.indexing or "end")
        return StoppingHook.online(detector, rule)
