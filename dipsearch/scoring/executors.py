"""Executors that run evaluate(candidate): in-process, a local process pool, or a Dask cluster.

All are plain concurrent.futures.Executor objects, so searchers submit work the same way everywhere.
Workers never touch the driver's random state: each candidate carries its own seed.

On GPUs, `--workers N` means N concurrent fits: worker processes are dealt to the visible GPUs round-robin,
so N workers on one GPU run N fits side by side on it (small DIP fits leave most of a GPU idle; several at
once raise the candidates per hour). The default is one worker per GPU.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from ..errors import ArgumentError, DipsearchError, check_at_least


class InProcessExecutor(Executor):
    """Runs each task at submit time in this process: for tests, debugging and single-device runs."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future, as executors do
            future.set_exception(err)
        return future


def _init_worker(gpu_queue: Any, threads: int) -> None:
    # Pin one GPU per worker before CUDA is initialised in this process.
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    import torch

    torch.set_num_threads(threads)


def gpu_slots(workers: int, gpus: int) -> list[int]:
    """The GPU of each worker: round-robin, so that N workers on G GPUs put ceil(N/G) fits on the busiest."""
    return [i % gpus for i in range(workers)] if gpus else []


def local_pool(workers: int | None = None, threads_per_worker: int | None = None) -> Executor:
    """`workers` processes (default: one per visible GPU), each pinned to a GPU through CUDA_VISIBLE_DEVICES
    round-robin, so several share a GPU when there are more workers than GPUs; without a GPU, CPU workers."""
    import torch

    gpus = torch.cuda.device_count()
    if workers is None:
        workers = gpus or 1
    check_at_least("workers", workers, 1)
    context = mp.get_context("spawn")  # fork after torch threads exist can deadlock
    queue = None
    if gpus:
        queue = context.Queue()
        for gpu in gpu_slots(workers, gpus):
            queue.put(gpu)
    if threads_per_worker is None:
        threads_per_worker = max(1, (os.cpu_count() or 1) // workers) if not gpus else 1
    return ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=quiet_worker,
        initargs=("dipsearch.scoring.executors:_init_worker", queue, threads_per_worker),
    )


class DaskExecutor(Executor):
    """Dask's ClientExecutor plus its Client: shutdown() also closes the connection (the plain one leaks it).

    `client` stays public for callers that want the Dask API (dashboard link, worker count).
    """

    def __init__(self, client: Any):
        self.client = client
        self._inner = client.get_executor()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait and not cancel_futures)  # Dask's wait=False cancels what is left
        self.client.close()


def dask_executor(address: str, timeout: float = 10.0) -> Executor:
    """An executor on a running Dask scheduler (`dask scheduler` / `dask worker ADDRESS`), extra `dask`."""
    try:
        from distributed import Client
    except ImportError:
        raise ArgumentError("{dask} needs the dask extra: pip install 'dipsearch[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise DipsearchError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    except ValueError as err:
        raise DipsearchError(f"bad Dask scheduler address {address!r}: {err}") from None
    return DaskExecutor(client)


def make_executor(workers: int | None = None, dask: str | None = None) -> Executor:
    if dask:
        return dask_executor(dask)
    import torch

    if workers in (None, 0, 1) and not torch.cuda.device_count() > 1:
        return InProcessExecutor()
    return local_pool(workers)


def quiet_worker(init: str, *args: Any) -> None:
    """Initializer of worker processes: Ctrl-C, which the terminal sends to every process of the command,
    ends a worker without a traceback (the driver reports the interruption and how to resume).

    `init` ("module:function", then called with `args`) is imported only after the handler is in place:
    unpickling this initializer (this module imports torch only inside functions) must not import torch,
    which takes seconds.
    """
    signal.signal(signal.SIGINT, _exit_quietly)
    module, name = init.split(":")
    getattr(importlib.import_module(module), name)(*args)


def _exit_quietly(signum: int, frame: Any) -> None:
    os._exit(128 + signum)
