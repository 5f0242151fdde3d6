"""The GA's checkpoint, ga_state.json: everything the loop needs to continue after its last generation.

JSON rather than pickle: readable, diffable, and independent of DEAP's creator classes. Written atomically
(RunDir.write_json), after the generation's evaluations are on record, so it is the commit point of a
generation. Failed candidates have fitness -inf in memory and null here (JSON has no infinities).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

from ...errors import DipsearchError
from ...store.runs import RunDir

STATE = "ga_state.json"
VERSION = 1


def save(run: RunDir, state: dict[str, Any]) -> None:
    run.write_json(STATE, {"version": VERSION, **state})


def load(run: RunDir) -> dict[str, Any] | None:
    """The saved state, or None when the run has not finished a generation yet."""
    path = run.file(STATE)
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as err:  # cannot happen through write_json; a hand-edited file can
        raise DipsearchError(f"{path} is not valid JSON ({err}); remove it to restart the run from its log") from None
    if state.get("version") != VERSION:
        raise DipsearchError(f"{path} has format version {state.get('version')}, this dipsearch reads {VERSION}")
    return state


def rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, saved: list) -> None:
    version, internal, gauss = saved
    rng.setstate((version, tuple(internal), gauss))


def dump(individuals: list) -> list[dict[str, Any]]:
    return [{"genome": dict(ind), "fitness": _finite_or_none(ind.fitness.values[0])} for ind in individuals]


def restore(rows: list[dict[str, Any]], make: Callable[[dict], Any]) -> list:
    """Individuals (built by `make(genome)`) with their fitness back."""
    out = []
    for row in rows:
        ind = make(row["genome"])
        ind.fitness.values = (-math.inf if row["fitness"] is None else row["fitness"],)
        out.append(ind)
    return out


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
