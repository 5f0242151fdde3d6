"""What a study found, read from its Optuna study: one row per trial, the pick under the cost cap, and the
per-instance comparison of the pick with the space default.

Only trials fitted on every instance can be picked or compared: a pruned trial's mean covers the instances it was
fitted on, which differ from trial to trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .instances import Instance
from .runner import GENOME, KEY, PRUNED_AFTER, trial_fits


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def trial_row(trial: FrozenTrial, n_instances: int) -> dict[str, Any]:
    fits = [f for f in trial_fits(trial).values() if f.get("error") is None and f.get("psnr") is not None]
    complete = trial.state == TrialState.COMPLETE and PRUNED_AFTER not in trial.user_attrs
    return {
        "trial": trial.number,
        "state": "pruned" if PRUNED_AFTER in trial.user_attrs else trial.state.name.lower(),
        "fits": len(fits),
        "complete": complete and len(fits) == n_instances,
        "mean_psnr": _mean([f["psnr"] for f in fits]),
        "seconds_per_fit": _mean([f["seconds"] for f in fits]),
        "iters_per_fit": _mean([f["iters_run"] for f in fits]),
        "key": trial.user_attrs.get(KEY),
        "genome": trial.user_attrs.get(GENOME),
    }


@dataclass
class Outcome:
    rows: list[dict[str, Any]]
    default: dict[str, Any] | None  # the space default's row (the first complete trial with its key)
    pick: dict[str, Any] | None
    cost_cap: float | None  # seconds per fit the pick may take (None: no cap, or no default to scale it by)
    note: str | None = None  # why the cap could not be applied

    def summary(self) -> dict[str, Any]:
        done = [r for r in self.rows if r["complete"]]
        out: dict[str, Any] = {
            "trials": len(self.rows),
            "complete": len(done),
            "pruned": sum(r["state"] == "pruned" for r in self.rows),
            "failed": sum(r["state"] == "fail" for r in self.rows),
            "cost_cap_seconds": self.cost_cap,
        }
        for name, row in (("default", self.default), ("winner", self.pick)):
            if row is not None:
                out[f"{name}_trial"] = row["trial"]
                out[f"{name}_mean_psnr"] = row["mean_psnr"]
                out[f"{name}_seconds_per_fit"] = row["seconds_per_fit"]
        if self.default and self.pick:
            out["winner_gain_db"] = self.pick["mean_psnr"] - self.default["mean_psnr"]
        if self.note:
            out["note"] = self.note
        return out


def outcome(study: optuna.Study, n_instances: int, default_key: str, max_cost: float | None) -> Outcome:
    """Rows of every finished trial, and the best mean PSNR among complete trials within the cost cap."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    rows = [trial_row(t, n_instances) for t in trials]
    done = [r for r in rows if r["complete"]]
    default = next((r for r in done if r["key"] == default_key), None)
    cap, note = None, None
    if max_cost is not None:
        if default is None:
            note = "no cost cap applied: the space default has not been fitted on every instance yet"
        else:
            cap = max_cost * default["seconds_per_fit"]
    allowed = [r for r in done if cap is None or r["seconds_per_fit"] <= cap]
    pick = max(allowed, key=lambda r: (r["mean_psnr"], -r["trial"]), default=None)
    return Outcome(rows, default, pick, cap, note)


def instance_table(
    study: optuna.Study, instances: list[Instance], default: dict[str, Any], pick: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per instance: the true PSNR, seconds and iterations of the space default and of the pick."""
    fits = {r["trial"]: trial_fits(study.trials[r["trial"]]) for r in (default, pick)}
    rows = []
    for instance in instances:
        d, w = fits[default["trial"]][instance.number], fits[pick["trial"]][instance.number]
        rows.append(
            {
                "instance": instance.name,
                "default_psnr": d["psnr"],
                "winner_psnr": w["psnr"],
                "gain_db": w["psnr"] - d["psnr"],
                "default_seconds": d["seconds"],
                "winner_seconds": w["seconds"],
                "default_iters": d["iters_run"],
                "winner_iters": w["iters_run"],
            }
        )
    return rows
