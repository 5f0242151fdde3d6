"""Shared bits of the benchmarks: where the data is, where results go, machine facts."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

from dipsearch.store.runs import write_atomic

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
    return path


def gain_stats(values: list[float]) -> dict[str, Any]:
    """Differences to a reference (dB): mean, worst, best, how many fall more than 0.1 dB below it."""
    import statistics

    return {
        "mean": statistics.mean(values),
        "worst": min(values),
        "best": max(values),
        "below_0.1": sum(v < -0.1 for v in values),
        "images": len(values),
    }
