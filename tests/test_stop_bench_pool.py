"""The stopping benchmark's parallel fits run in dipsearch.scoring.executors' pool and record what in-process fits record."""

import csv

from conftest import SMALL, synthetic_image

from dipsearch import FitConfig
from dipsearch.stopping import bench
from dipsearch.store.imageio import save_image


def _traces(folder, workers):
    folder.mkdir()
    # 201 steps: the spectral rule's two 100-step windows; impulse noise: no SURE, which doubles a fit's cost
    protocol = bench.protocol_dict(16, SMALL, FitConfig(iters=201, device="cpu", ssim_every=50), 0.05, 4)
    jobs = bench.jobs_from([str(folder.parent / "tiny.png")], ["impulse"], [2], [0], protocol, folder)
    done = []
    bench.run_jobs(jobs, workers, lambda meta: done.append(meta["key"]))
    assert done == [job.key for job in jobs]
    out = {}
    for job in jobs:
        with open(folder / bench.TRACES / f"{job.key}.csv", newline="") as handle:
            out[job.key] = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    return out


def test_pool_fits_record_the_same_traces_as_in_process_fits(tmp_path):
    save_image(synthetic_image(32, 32), tmp_path / "tiny.png")
    alone, pooled = _traces(tmp_path / "one", 1), _traces(tmp_path / "two", 2)
    assert pooled == alone and all(len(rows) == 201 for rows in alone.values())
