"""The rows of the published DIP results table (docs/reference.md, section 4) and the figures it quotes for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError, DipsearchError


@dataclass(frozen=True)
class Row:
    name: str
    task: str
    sets: tuple[str, ...]  # folders under --data
    problem: dict[str, Any]  # make_problem keywords besides the images
    description: str
    published: dict[str, dict[str, float]] = field(default_factory=dict)  # set -> method -> PSNR (dB)
    note: str = ""  # about the published DIP figure


ROWS: dict[str, Row] = {
    "denoise": Row(
        "denoise",
        "denoise",
        ("classic9",),
        {"noise": "gaussian", "level": 25},
        "colour denoising, Gaussian sigma 25",
        {"classic9": {"dip": 31.00, "cbm3d": 31.42, "nlm": 30.26}},
        "published DIP: average of two runs with output averaging, 512 px images",
    ),
    "sr4": Row(
        "sr4",
        "sr",
        ("set5", "set14"),
        {"factor": 4},
        "super-resolution x4, Lanczos-2 downsampler",
        {"set5": {"dip": 28.89, "bicubic": 28.44}, "set14": {"dip": 27.00, "bicubic": 26.05}},
    ),
    "sr8": Row(
        "sr8",
        "sr",
        ("set5", "set14"),
        {"factor": 8},
        "super-resolution x8, Lanczos-2 downsampler",
        {"set5": {"dip": 25.88, "bicubic": 24.37}, "set14": {"dip": 24.14, "bicubic": 23.09}},
    ),
    "inpaint": Row(
        "inpaint",
        "inpaint",
        ("classic9",),
        {"mask_ratio": 0.5},
        "inpainting, 50 % Bernoulli-missing pixels",
        {"classic9": {"dip": 33.48}},
        "published figure is on the seed's 'standard 11 images', which are not available here: the "
        "classic-9 images stand in, so it is not the same benchmark",
    ),
}

DIP_METHODS = ("dip", "dip-stop", "restore")


def get_rows(names: list[str]) -> list[Row]:
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise DipsearchError(f"unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}")
    return [ROWS[n] for n in dict.fromkeys(names)]


def methods_for(row: Row, methods: list[str]) -> list[str]:
    """The methods that apply to `row` (baselines solve one task each), in the order given."""
    from ..baselines import BASELINES

    return [m for m in methods if m in DIP_METHODS or row.task in BASELINES[m].tasks]


def check_methods_apply(rows: list[Row], methods: list[str], every_method: bool = False) -> None:
    """Every row gets a method (and with `every_method`, as for a list the user wrote, every method a row): a
    baseline solves one task, and a row left empty is a mistake, refused as `baseline` refuses a method for
    another task. The default list, every installed method, holds baselines for each task, so it is not held
    to `every_method`."""
    from ..baselines.registry import get_baseline

    if not methods:
        raise ArgumentError("{methods} names no method; choose from {known}", known=", ".join(all_methods(False)))
    for row in rows:
        if not methods_for(row, methods):
            try:
                get_baseline(methods[0], row.task)
            except DipsearchError as err:
                raise DipsearchError(f"no method given applies to row {row.name}: {err}") from None
    for method in methods if every_method else ():
        if not any(method in methods_for(row, [method]) for row in rows):
            try:
                get_baseline(method, rows[0].task)
            except DipsearchError as err:
                raise DipsearchError(f"method {method} applies to none of the rows given: {err}") from None


def all_methods(available_only: bool) -> list[str]:
    from ..baselines import BASELINES

    return [*DIP_METHODS, *(n for n, b in BASELINES.items() if n != "bm3d" and (b.available() or not available_only))]


def check_methods(names: list[str]) -> list[str]:
    from ..baselines import BASELINES

    known = [*DIP_METHODS, *BASELINES]
    for name in names:
        if name not in known:
            raise DipsearchError(f"unknown method {name!r}; choose from {', '.join(known)}")
        if name in BASELINES:
            BASELINES[name].require()
    return list(dict.fromkeys(names))
