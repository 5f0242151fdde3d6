"""The trace of a fit: device scalars (Lazy) fetched together every `trace_every` rows (Trace)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class Lazy:
    """A scalar still on the device. float(x) or formatting fetches it; the engine fetches all at once."""

    __slots__ = ("tensor", "transform", "_value")

    def __init__(self, tensor: Tensor, transform: Callable[[float], float] | None = None):
        self.tensor, self.transform, self._value = tensor, transform, None

    def resolve(self, value: float) -> float:
        self._value = self.transform(value) if self.transform else value
        return self._value

    def __float__(self) -> float:
        if self._value is None:
            self.resolve(float(self.tensor))
        return self._value

    def __format__(self, spec: str) -> str:
        return format(float(self), spec)

    def __repr__(self) -> str:
        return f"Lazy({float(self)})"


def mse_to_psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


class Trace:
    """Trace rows whose Lazy values are fetched in one transfer every `every` rows; `on_flush` then sees them."""

    def __init__(self, every: int, dtype: torch.dtype, on_flush: Callable[[list[dict[str, Any]]], None] | None = None):
        self.every, self.dtype, self.on_flush = every, dtype, on_flush
        self.rows: list[dict[str, Any]] = []
        self.pending = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.pending += 1
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        start = len(self.rows) - self.pending
        lazies = [(row, key) for row in self.rows[start:] for key, v in row.items() if isinstance(v, Lazy)]
        if lazies:
            values = torch.stack([row[key].tensor.to(self.dtype) for row, key in lazies]).tolist()
            for (row, key), value in zip(lazies, values):
                row[key] = row[key].resolve(value) if row[key]._value is None else row[key]._value
        # A step whose loss was not finite took no valid update (the guard undid it): it leaves no row.
        self.rows[start:] = [row for row in self.rows[start:] if math.isfinite(row["loss"])]
        self.pending = 0
        if self.on_flush is not None and len(self.rows) > start:
            self.on_flush(self.rows[start:])
