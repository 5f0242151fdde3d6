"""Stopping rules: when to stop and which iteration to return, given one statistic per step.

The same tracker object serves the online hook and the offline replay, so a rule replayed on a recorded
trace stops exactly where the online fit stopped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import DipsearchError

INDEXINGS = ("end", "start")


@dataclass(frozen=True)
class Decision:
    chosen: int | None  # the iteration whose output the rule returns (None: the statistic never existed)
    fired_at: int | None  # the iteration where the rule stopped the fit; None = it never fired (ran to the end)

    @property
    def fired(self) -> bool:
        return self.fired_at is not None


class Tracker(Protocol):
    def update(self, step: int, value: float | None) -> tuple[bool, bool]:
        """Feed one step; returns (keep, stop): keep = this step's image is now the choice, stop = stop here."""

    def decision(self, last_step: int) -> Decision: ...


class Rule(Protocol):
    stat: str  # the trace column the rule reads, e.g. "stat_wmv"
    label: str

    def tracker(self) -> Tracker: ...


@dataclass(frozen=True)
class PatienceRule:
    """A new minimum (below best - delta*|best|) resets a counter; stop when it reaches `patience`.

    The returned iteration is that of the minimum: the newest frame of its window ("end", the published
    default) or the oldest ("start": minimum step - window + 1). delta = 0.01 is the "VAR < 0.99 best" variant.
    """

    stat: str
    patience: int = 1000
    delta: float = 0.0
    indexing: str = "end"
    window: int = 1
    image: str | None = None  # another recorded detector whose image is returned (see ProgressRule)
    # the statistic's exponential moving average (this factor on the past) is what the minimum is taken of:
    # a statistic measured on a few hundred pixels jitters, and the minimum of a jittering curve comes early
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise DipsearchError(f"patience must be >= 1, got {self.patience}")
        if not 0 <= self.smoothing < 1:
            raise DipsearchError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not 0 <= self.delta < 1:
            raise DipsearchError(f"relative threshold delta must be in [0, 1), got {self.delta}")
        if self.indexing not in INDEXINGS:
            raise DipsearchError(f"indexing must be 'end' or 'start', got {self.indexing!r}")

    @property
    def label(self) -> str:
        extra = (
            (f", delta {self.delta:g}" if self.delta else "")
            + (", window-start" if self.indexing == "start" else "")
            + (f", EMA {self.smoothing:g}" if self.smoothing else "")
        )
        return f"{self.stat.removeprefix('stat_')} (P {self.patience}{extra}{_image_label(self.image)})"

    def tracker(self) -> PatienceTracker:
        return PatienceTracker(self)


class PatienceTracker:
    def __init__(self, rule: PatienceRule) -> None:
        self.rule = rule
        self.best = math.inf
        self.best_step: int | None = None
        self.counter = 0
        self.fired_at: int | None = None
        self.level: float | None = None  # the smoothed statistic

    def update(self, step: int, value: float | None) -> tuple[bool, bool]:
        if value is None or math.isnan(value):
            return False, False  # a window still filling counts neither as a minimum nor against patience
        if self.rule.smoothing:
            a = self.rule.smoothing
            self.level = value if self.level is None else a * self.level + (1 - a) * value
            value = self.level
        if self.best_step is None or value < self.best - self.rule.delta * abs(self.best):
            self.best, self.best_step, self.counter = value, step, 0
            return True, False
        self.counter += 1
        if self.counter >= self.rule.patience and self.fired_at is None:
            self.fired_at = step
            return False, True
        return False, False

    def decision(self, last_step: int) -> Decision:
        if self.best_step is None:
            return Decision(None, self.fired_at)
        lag = self.rule.window - 1 if self.rule.indexing == "start" else 0
        return Decision(max(1, self.best_step - lag), self.fired_at)


@dataclass(frozen=True)
class ProgressRule:
    """A minimum rule whose every threshold is relative to the fit's own statistic and pace, so that it holds on
    networks with other learning rates, widths and depths.

    * Settling: a minimum only counts once the statistic has fallen below `settle` x its own running maximum.
      A slow network (small learning rate, narrow) moves little at first, so its variance starts low, rises
      while it learns the image and falls again: the early dip is a quiet start, not convergence, and an
      absolute minimum rule stops there.
    * Patience: tied to the fit's progress: stop once no new minimum came for `ratio` x the minimum's own
      iteration (at least `floor` steps). A fit twice as slow waits twice as long, in steps.

    Both are ratios, so rescaling the statistic (another image contrast, loss scale) changes nothing. Like
    PatienceRule, a new minimum must be below best - delta*|best|, and the chosen iteration is the minimum's.
    When the statistic never settles the rule never fires and returns the last iteration (the full budget).

    `image` names another detector recorded in the same fit whose image is returned at the chosen iteration
    instead of the output (e.g. "emv": the held-out error picks the iteration, EMV's running average is the
    image, which removes part of the step-to-step jitter of the output).
    """

    stat: str
    settle: float = 0.5
    ratio: float = 0.5
    floor: int = 200
    delta: float = 0.0
    image: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.settle <= 1:
            raise DipsearchError(f"settle must be in (0, 1], got {self.settle}")
        if self.ratio <= 0:
            raise DipsearchError(f"patience ratio must be > 0, got {self.ratio}")
        if self.floor < 1:
            raise DipsearchError(f"patience floor must be >= 1, got {self.floor}")
        if not 0 <= self.delta < 1:
            raise DipsearchError(f"relative threshold delta must be in [0, 1), got {self.delta}")

    @property
    def label(self) -> str:
        return (
            f"{self.stat.removeprefix('stat_')} (settle {self.settle:g}, patience {self.ratio:g} x best, "
            f">= {self.floor}{f', delta {self.delta:g}' if self.delta else ''}{_image_label(self.image)})"
        )

    def tracker(self) -> ProgressTracker:
        return ProgressTracker(self)


def _image_label(image: str | None) -> str:
    return f", {image} image" if image else ""


class ProgressTracker:
    def __init__(self, rule: ProgressRule) -> None:
        self.rule = rule
        self.peak = -math.inf  # the statistic's running maximum
        self.settled = False
        self.best = math.inf
        self.best_step: int | None = None
        self.fired_at: int | None = None

    def update(self, step: int, value: float | None) -> tuple[bool, bool]:
        if value is None or math.isnan(value) or self.fired_at is not None:
            return False, False
        self.peak = max(self.peak, value)
        if not self.settled:
            self.settled = value <= self.rule.settle * self.peak
            if not self.settled:
                return False, False
        if self.best_step is None or value < self.best - self.rule.delta * abs(self.best):
            self.best, self.best_step = value, step
            return True, False
        if step - self.best_step >= max(self.rule.floor, self.rule.ratio * self.best_step):
            self.fired_at = step
            return False, True
        return False, False

    def decision(self, last_step: int) -> Decision:
        return Decision(self.best_step if self.best_step is not None else last_step, self.fired_at)


@dataclass(frozen=True)
class PlateauRule:
    """Stop when the mean of the last n values differs from the mean of the n before by less than eps
    (the spectral-ratio rule). It returns the iteration where it stops, or the last one if it never does."""

    stat: str
    n: int = 100
    eps: float = 0.01

    @property
    def label(self) -> str:
        return f"{self.stat.removeprefix('stat_')} (plateau n {self.n}, eps {self.eps:g})"

    def tracker(self) -> PlateauTracker:
        return PlateauTracker(self)


class PlateauTracker:
    def __init__(self, rule: PlateauRule) -> None:
        self.rule = rule
        self.values: deque[float] = deque(maxlen=2 * rule.n)
        self.older = self.newer = 0.0  # running sums of the two halves
        self.fired_at: int | None = None

    def update(self, step: int, value: float | None) -> tuple[bool, bool]:
        if value is None or math.isnan(value) or self.fired_at is not None:
            return False, False
        n = self.rule.n
        if len(self.values) == 2 * n:
            self.older -= self.values[0]
        if len(self.values) >= n:
            moving = self.values[-n]  # leaves the newer half for the older one
            self.newer -= moving
            self.older += moving
        self.values.append(value)
        self.newer += value
        if len(self.values) == 2 * n and abs(self.older - self.newer) / n < self.rule.eps:
            self.fired_at = step
            return True, True
        return False, False

    def decision(self, last_step: int) -> Decision:
        return Decision(self.fired_at if self.fired_at is not None else last_step, self.fired_at)


@dataclass(frozen=True)
class FixedRule:
    """No detector: stop at a fixed iteration (the seed's 2400-iteration budget), the baseline to beat."""

    at: int = 2400
    stat: str = "step"

    @property
    def label(self) -> str:
        return f"fixed {self.at}"

    def tracker(self) -> FixedTracker:
        return FixedTracker(self.at)


class FixedTracker:
    def __init__(self, at: int) -> None:
        self.at, self.last = at, 0

    def update(self, step: int, value: float | None) -> tuple[bool, bool]:
        self.last = step
        return step <= self.at, step == self.at

    def decision(self, last_step: int) -> Decision:
        return Decision(min(self.at, last_step), self.at if last_step >= self.at else None)


def replay(trace: Iterable[dict[str, Any]], rule: Rule) -> Decision:
    """Run `rule` over a recorded trace (rows with 'step' and the rule's statistic column), without refitting.

    Missing cells (None, '' or NaN) are steps where the statistic did not exist yet. A trace in which the
    column never appears is an error: that statistic was not recorded.
    """
    rows = list(trace)
    if not any(rule.stat in row for row in rows):
        raise DipsearchError(
            f"the trace has no column {rule.stat!r}: that detector was not recorded in this fit "
            f"(recorded: {', '.join(sorted({k for r in rows for k in r if k.startswith('stat_')})) or 'none'})"
        )
    tracker = rule.tracker()
    last = 0
    for row in rows:
        last = int(row["step"])
        value = row.get(rule.stat)
        if tracker.update(last, None if value in (None, "") else float(value))[1]:
            break
    return tracker.decision(last)
