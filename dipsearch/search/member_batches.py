"""A rung's fits of one network as batches of replicas, each fit still its own evaluation.

Candidates that differ only in their seed and held-out split (a restore's default and its restarts, a final
rung's restarts of the pick) fit one network: `batches` groups them and `evaluate_members` fits a group as one
batch (dipsearch.fitting.members: each member its own seed, split and stopping) and scores each member as
`evaluate` would score its separate fit. Replicas mode (`--replicas`):
  auto  on a GPU, batch the groups of two or more whose batch the memory estimate allows (the largest that
        fits); on a CPU, every fit on its own: there a batch of K costs K fits' compute (measured 0.98 of the
        separate fits' CPU time for restore --demo) and its rounding moves the stops;
  on    the same, and a group whose batch does not fit is refused before anything is allocated;
  off   every fit on its own, one after another.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..errors import ArgumentError
from ..fitting.fitbase import FitHook, resolve_device
from ..fitting.members import Member, fit_members
from ..fitting.memory import HEADROOM, _gib, available_bytes, fit_bytes
from ..scoring.evaluate import Candidate, Evaluation, FitSetup, evaluate, failed

REPLICAS_MODES = ("auto", "on", "off")


def check_replicas_mode(mode: str) -> None:
    if mode not in REPLICAS_MODES:
        raise ArgumentError(
            "unknown {replicas} {value!r}; choose one of {names}", value=mode, names=", ".join(REPLICAS_MODES)
        )


def network_key(candidate: Candidate) -> str | None:
    """What candidates batched together must share: everything but the seed and the held-out split. None for a
    candidate no batch can fit as its own fit would run (a variant, initial weights, other precision, pruning)."""
    if candidate.reporter is not None or candidate.fit_options or candidate.init is not None:
        return None
    from ..variants import candidate_variant

    if not candidate_variant(candidate.fit_settings, candidate.iters, candidate.init).plain:
        return None
    return replace(candidate, seed=0, holdout_seed=None).key + f"/{candidate.threads}/{candidate.device}"


def replica_bytes(spec: Any, image_shape: tuple[int, int, int], count: int) -> int:
    """Estimated peak bytes of `count` replicas of `spec`'s network: each replica holds a fit's activations,
    weights and Adam state, so the batch needs about `count` fits' memory at once."""
    return count * fit_bytes(spec, *image_shape)


def most_replicas(
    spec: Any, image_shape: tuple[int, int, int], device: str, count: int, available: int | None = None
) -> int:
    """The largest batch of at most `count` replicas the memory estimate allows on `device`."""
    free = available_bytes(resolve_device(device)) if available is None else available
    if free is None:
        return count
    while count > 1 and replica_bytes(spec, image_shape, count) > HEADROOM * free:
        count -= 1
    return count


def check_replica_memory(
    spec: Any, image_shape: tuple[int, int, int], device: str, count: int, available: int | None = None
) -> None:
    """Refuse, before allocating, a batch of `count` replicas that does not fit; say what would."""
    where = resolve_device(device)
    free = available_bytes(where) if available is None else available
    fits = most_replicas(spec, image_shape, device, count, free)
    if free is None or fits == count:
        return
    _, height, width = image_shape
    help = (
        f"use {{replicas:auto}} (batches of {fits} fit) or {{replicas:off}}"
        if fits >= 2 and where.type != "cpu"
        else "use {replicas:off} (one fit at a time needs about "
        f"{_gib(fit_bytes(spec, *image_shape))}) or a smaller crop"
    )
    raise ArgumentError(
        f"a batch of {count} replicas on the {width}x{height} px image needs about "
        f"{_gib(replica_bytes(spec, image_shape, count))} of memory and {where} has {_gib(free)} available; " + help
    )


def batches(candidates: Sequence[Candidate], mode: str, available: int | None = None) -> list[list[Candidate]]:
    """The candidates in groups to fit together (in the order of their first member); a group of one is a fit
    of its own. Mode off, and candidates that share their network with no other, give groups of one."""
    check_replicas_mode(mode)
    if mode == "off":
        return [[c] for c in candidates]
    groups: dict[str, list[Candidate]] = {}
    order: list[str | list[Candidate]] = []
    for c in candidates:
        key = network_key(c)
        if key is None:
            order.append([c])
        elif key in groups:
            groups[key].append(c)
        else:
            groups[key] = [c]
            order.append(key)
    out: list[list[Candidate]] = []
    for item in order:
        if isinstance(item, list):
            out.append(item)
            continue
        group = groups[item]
        first = group[0]
        shape = first.problem.image_shape
        if mode == "auto" and resolve_device(first.device).type == "cpu":
            out.extend([c] for c in group)
            continue
        if len(group) > 1 and mode == "on":
            check_replica_memory(first.arch, shape, first.device, len(group), available)
        size = most_replicas(first.arch, shape, first.device, len(group), available) if len(group) > 1 else 1
        out.extend(group[i : i + size] for i in range(0, len(group), size))
    return out


def evaluate_members(candidates: Sequence[Candidate], loggers: Sequence[Sequence[FitHook]] = ()) -> list[Evaluation]:
    """Evaluations of candidates that share one network (`batches`), fitted as one batch: each as `evaluate`
    gives it, to float tolerance. `loggers`: extra hooks per candidate, run after its own (a progress display).
    Module-level and picklable, as `evaluate`."""
    threads = candidates[0].threads
    if threads is None:
        return _evaluate_members(candidates, loggers)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _evaluate_members(candidates, loggers)
    finally:
        torch.set_num_threads(previous)


def _evaluate_members(candidates: Sequence[Candidate], loggers: Sequence[Sequence[FitHook]]) -> list[Evaluation]:
    start = time.perf_counter()
    extra = [list(loggers[i]) if i < len(loggers) else [] for i in range(len(candidates))]
    out: list[Evaluation | None] = [None] * len(candidates)
    setups: dict[int, FitSetup] = {}
    boards: dict[int, Any] = {}
    for i, candidate in enumerate(candidates):
        try:
            setups[i] = FitSetup.of(candidate)
        except Exception as err:  # noqa: BLE001 - a failing candidate must not stop the others
            out[i] = failed(candidate, err, start)
            continue
        if candidate.tensorboard is not None:
            from ..fitting.tensorboard import TensorBoardHook
            from ..scoring.evaluate import candidate_logdir

            boards[i] = TensorBoardHook(candidate_logdir(candidate.tensorboard, candidate.index))
    order = sorted(setups)
    members = [
        Member(
            setups[i].problem, candidates[i].seed, [*setups[i].hooks, *extra[i], *([boards[i]] if i in boards else [])]
        )
        for i in order
    ]
    try:
        results = fit_members(candidates[0].arch, setups[order[0]].config, members) if order else []
    except Exception:  # noqa: BLE001 - a network the batch cannot run (the probe says so): each fit on its own
        results = [None] * len(order)
    finally:
        for board in boards.values():
            board.close()
    for i, result in zip(order, results):
        candidate = candidates[i]
        if result is None:  # the guard would have touched its fit: the fit of its own is the answer
            out[i] = evaluate(candidate, extra[i])
            continue
        try:
            out[i] = setups[i].scored(result, start)
        except Exception as err:  # noqa: BLE001
            out[i] = failed(candidate, err, start)
        if i in boards:
            from ..scoring.evaluate import log_evaluation

            log_evaluation(candidate.tensorboard, candidate, out[i])
    return out
