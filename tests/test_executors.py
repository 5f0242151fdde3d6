"""Executors: in-process semantics, the Dask wrapper's lifecycle, clear errors."""

import operator
import time

import pytest

from dipsearch import DipsearchError
from dipsearch.scoring.executors import InProcessExecutor, dask_executor, gpu_slots, make_executor


def _boom():
    raise ValueError("boom")


def test_in_process_executor_runs_at_submit_and_delivers_errors_through_the_future():
    ex = make_executor(1)
    assert isinstance(ex, InProcessExecutor)
    calls = []
    future = ex.submit(calls.append, 1)
    assert calls == [1] and future.done()
    failed = ex.submit(_boom)
    with pytest.raises(ValueError, match="boom"):
        failed.result()
    ex.shutdown()


def test_dask_executor_runs_tasks_and_closes_its_client_on_shutdown():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=None
    ) as cluster:
        ex = dask_executor(cluster.scheduler_address, timeout=5)
        assert ex.submit(operator.add, 2, 3).result(timeout=30) == 5
        ex.shutdown(wait=False, cancel_futures=True)
        assert ex.client.status in ("closed", "closing")


def test_unreachable_dask_scheduler_is_a_user_error():
    pytest.importorskip("distributed")
    start = time.monotonic()
    with pytest.raises(DipsearchError, match="cannot reach the Dask scheduler"):
        dask_executor("tcp://127.0.0.1:9", timeout=0.5)
    assert time.monotonic() - start < 15


def test_workers_share_gpus_round_robin():
    assert gpu_slots(4, 1) == [0, 0, 0, 0]  # --workers 4 on one GPU: four concurrent fits on it
    assert gpu_slots(5, 2) == [0, 1, 0, 1, 0]
    assert gpu_slots(3, 0) == []
