"""The fit trace recorded on the reference engine, and how a run on this CPU is compared with it.

The loop reproduces the recorded losses, but metrics and sums are float32 reductions whose last bits depend on
the CPU's vector width (AVX2 and AVX-512 split a sum differently): on another CPU the first step's PSNR moves in
the ninth digit and twelve Adam steps carry that to about 1e-5 of the loss. A comparison with another run on the
same machine stays exact; one with the recording allows that rounding.
"""

import json
from pathlib import Path

import pytest

RECORDED = json.loads((Path(__file__).parent / "data" / "fit_trace_main.json").read_text())
ROUNDING = 1e-4  # relative: ten times the drift seen across CPUs, far below what a change to the step makes


def rows_of(result):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in result.trace]


def assert_matches_recorded(result):
    rows = rows_of(result)
    assert [sorted(row) for row in rows] == [sorted(row) for row in RECORDED["rows"]]
    assert rows == [{k: pytest.approx(v, rel=ROUNDING) for k, v in row.items()} for row in RECORDED["rows"]]
    assert result.output.double().sum().item() == pytest.approx(RECORDED["output_sum"], rel=ROUNDING)
    assert result.ema.double().sum().item() == pytest.approx(RECORDED["ema_sum"], rel=ROUNDING)


def recorded_column(name):
    return [pytest.approx(row[name], rel=ROUNDING) for row in RECORDED["rows"] if name in row]
