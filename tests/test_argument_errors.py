"""Library checks of arguments: each names the argument of the call (Python), and the CLI the flag that sets it."""

import pickle
import sys

import pytest
import torch
from conftest import synthetic_image

from dipsearch.cli import argument_flags, build_parser, main
from dipsearch.errors import ArgumentError, check_at_least
from dipsearch.fitting.fit import FitConfig, resolve_device
from dipsearch.fitting.parts import check_fast_settings
from dipsearch.nets.space import find_space, load_space
from dipsearch.pipelines.choosers import get_chooser
from dipsearch.pipelines.reproduce import ReproduceSettings, check, images_of
from dipsearch.pipelines.reproduce_rows import ROWS
from dipsearch.pipelines.restore import RestoreSettings
from dipsearch.preselect.pipeline import PreselectConfig
from dipsearch.preselect.seeding import SeedPlan, archive_winners
from dipsearch.problems.inpaint import load_mask
from dipsearch.problems.make import make_problem
from dipsearch.scoring.executors import dask_executor, local_pool
from dipsearch.scoring.fitness import make_fitness
from dipsearch.stopping import Sure
from dipsearch.stopping.bench import FitJob, run_job
from dipsearch.store.imageio import save_image
from dipsearch.variants import VariantSettings


def _message(call, *args, **kwargs) -> str:
    with pytest.raises(ArgumentError) as err:
        call(*args, **kwargs)
    return str(err.value)


def test_check_at_least_and_a_pickled_error_keep_the_argument_names():
    assert _message(check_at_least, "fit_iters", -1, 0) == "fit_iters must be >= 0, got -1"
    with pytest.raises(ArgumentError) as err:
        check_at_least("workers", 0, 1)
    # Raised in a pool worker, an error reaches the driver by pickle: the CLI must still find the argument names.
    copy = pickle.loads(pickle.dumps(err.value))
    assert str(copy) == "workers must be >= 1, got 0"
    assert copy.render({"workers": "--workers"}) == "--workers must be >= 1, got 0"


def test_executors():
    assert _message(local_pool, 0) == "workers must be >= 1, got 0"


def test_executors_without_the_dask_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as when the extra is not installed
    assert _message(dask_executor, "tcp://127.0.0.1:9") == "dask needs the dask extra: pip install 'dipsearch[dask]'"
    assert main(["search", "ga", "--demo", "--dask", "tcp://127.0.0.1:9", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == "error: --dask needs the dask extra: pip install 'dipsearch[dask]'"


def test_fit_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _message(resolve_device, "cuda:1") == (
        "device 'cuda:1' asked for, but this torch build sees no CUDA GPU; use device=cpu"
    )


def test_fitness():
    observed = make_problem("denoise", observed=synthetic_image())
    assert _message(make_fitness, "psnr", observed) == (
        "fitness 'psnr' needs ground truth: give clean=PATH, or use the ground-truth-free 'holdout'"
    )
    poisson = make_problem("denoise", clean=synthetic_image(), noise="poisson")
    assert _message(make_fitness, "sure", poisson) == (
        "fitness 'sure' needs Gaussian noise of known sigma (noise=gaussian level=S)"
    )


def test_engine():
    assert _message(check_fast_settings, FitConfig(compile=True), torch.device("cpu")) == (
        "compile needs a CUDA GPU (torch.compile of the fit is only supported there); this fit runs on cpu"
    )
    assert _message(check_fast_settings, FitConfig(precision="bf16"), torch.device("meta")) == (
        "precision=bf16 is supported on cuda and cpu, not on meta; use fp32"
    )


def test_variants():
    settings = VariantSettings(variant="sgld", burn_in=20000, sample_every=50)
    assert _message(settings.check, FitConfig(iters=100)) == (
        "SGLD burn-in of 20000 steps leaves no posterior sample in a run of 100 iterations (one every 50 steps after "
        "the burn-in); lower burn_in or raise iters"
    )


def test_choosers_and_restore():
    assert _message(get_chooser, "grid") == "unknown search 'grid'; choose one of ga, bayes, random, none"
    assert _message(RestoreSettings(budget="huge").check) == "unknown budget 'huge'; choose auto or one of cpu, gpu"
    assert _message(RestoreSettings(budget="cpu", pop=1).check) == "pop must be >= 2, got 1"
    assert _message(RestoreSettings(budget="cpu", search_iters=0).check) == "search_iters must be >= 1, got 0"
    assert _message(RestoreSettings(budget="cpu", ensemble=0).check) == "ensemble must be >= 1, got 0"
    assert _message(RestoreSettings(search="ga", budget="cpu", pop=2, gens=1, ensemble=11).check) == (
        "ensemble=11 is larger than the 10 member(s) search=ga can produce with this budget; use ensemble <= 10"
    )


def test_reproduce(tmp_path):
    assert _message(ReproduceSettings([], [], size="big").crop) == "size takes 'full' or a crop side in px, got 'big'"
    assert _message(ReproduceSettings([], [], size="32").crop) == (
        "size must be at least 64 px (the seed network has 5 levels), got 32"
    )
    assert _message(check, ReproduceSettings(["denoise"], ["dip"], images=0)) == "images must be >= 1, got 0"
    assert _message(check, ReproduceSettings(["denoise"], ["dip"], iters=0)) == "iters must be >= 1, got 0"
    assert _message(images_of, tmp_path, ROWS["denoise"], None) == (
        f"row denoise needs the classic-9 images as PNG files in {tmp_path / 'classic9'}/, and there are none; "
        "give data=DIR with classic9/ in it"
    )


def test_preselect_seeding(tmp_path):
    assert _message(SeedPlan(preselect=-1).check) == "preselect must be >= 0, got -1"
    assert _message(SeedPlan(preselect=4, keep=9).check) == "keep must be between 1 and preselect (4), got 9"
    assert _message(SeedPlan(keep=1).check) == "keep needs preselect=N"
    space = load_space(find_space("demo"))
    pattern = str(tmp_path / "nowhere-*")
    assert _message(archive_winners, [pattern], space) == f"seed_from {pattern!r} matches no folder"
    assert _message(archive_winners, [str(tmp_path / "gone")], space) == (
        f"seed_from={tmp_path / 'gone'}: no such run folder"
    )
    assert _message(archive_winners, [str(tmp_path)], space) == (
        f"seed_from={tmp_path}: the folder has no winner (no best_arch.toml); give the folders of finished searches "
        "or pre-selections"
    )


def test_preselect_pipeline():
    assert _message(PreselectConfig(candidates=0).check) == "candidates must be >= 1, got 0"
    assert _message(PreselectConfig(keep=0).check) == "keep must be >= 1, got 0"
    assert _message(PreselectConfig(candidates=3, keep=5).check) == (
        "keep=5 is larger than candidates=3: keep at most as many candidates as are scored"
    )
    assert _message(PreselectConfig(fit_iters=-1).check) == "fit_iters must be >= 0, got -1"


def test_stopping_bench_and_detector(tmp_path, image_file):
    image = image_file()
    job = FitJob(str(image), "gaussian", 1, 0, 64, {}, {}, 0.05, 10, str(tmp_path))
    assert _message(run_job, job) == f"crop=64 is larger than {image} (32x32 px)"
    unknown_sigma = make_problem("denoise", observed=synthetic_image())
    assert _message(Sure().check, unknown_sigma) == (
        "sure: the Gaussian noise sigma is unknown; give level=S (0-255 scale) or sure_sigma=estimate"
    )


def test_tasks_mask(tmp_path):
    mask = tmp_path / "mask.png"
    save_image(torch.ones(1, 1, 40, 48), mask)
    assert _message(load_mask, mask, (40, 40), crop=44) == (
        f"crop=44 is larger than the mask {mask} (48x40 px, width x height)"
    )
    assert _message(load_mask, mask, (30, 30), crop=32) == (
        f"mask {mask} is 32x32 but the image is 30x30 (width x height, after crop); give a mask of the image's size "
        "(white = known pixels, black = missing)"
    )


@pytest.mark.parametrize(
    "argv, flags",
    [
        (
            ["fit", "--demo"],
            {"level": "--sigma", "sigma": None, "sure_sigma": "--sure-sigma", "spec": "--arch", "init": "--init"},
        ),
        (
            ["search", "ga", "--demo"],
            {
                "level": "--sigma",
                "mutation_step": "--mutation-step",
                "sure_sigma": "--sure-sigma",
                "keep": "--preselect-keep",
            },
        ),
        (
            ["search", "bayes", "--demo"],
            {"level": "--sigma", "sigma": None, "sure_sigma": "--sure-sigma", "keep": "--preselect-keep"},
        ),
        (["preselect", "--demo"], {"level": "--sigma", "sigma": None, "keep": "--keep", "fit_iters": "--fit-iters"}),
    ],
)
def test_each_command_maps_the_arguments_named_unlike_its_flags(argv, flags):
    parser = build_parser()
    mapped = argument_flags(parser, parser.parse_args(argv))
    assert {name: mapped.get(name) for name in flags} == flags


def test_the_sure_sigma_hint_names_a_flag_only_where_one_sets_it():
    err = ArgumentError("give {level:S} (0-255 scale) or {sure_sigma:estimate}")
    parser = build_parser()
    fit = argument_flags(parser, parser.parse_args(["fit", "--demo"]))
    bayes = argument_flags(parser, parser.parse_args(["search", "bayes", "--demo"]))
    assert err.render(fit) == "give --sigma S (0-255 scale) or --sure-sigma estimate"
    assert err.render(bayes) == "give --sigma S (0-255 scale) or --sure-sigma estimate"  # every searcher: --stop


def test_cli_renders_the_library_messages_with_flags(tmp_path, image_file, capsys):
    observed = str(image_file("o.png", 64, 64))
    assert main(["fit", observed, "--stop", "sure", "--iters", "2", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: sure: the Gaussian noise sigma is unknown; give --sigma S (0-255 scale) or --sure-sigma estimate"
    )
    assert (
        main(
            [
                "search",
                "ga",
                "--clean",
                observed,
                "--fitness",
                "sure",
                "--noise",
                "poisson",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip() == (
        "error: fitness 'sure' needs Gaussian noise of known sigma (--noise gaussian --sigma S)"
    )
    assert not any(tmp_path.rglob("config.toml"))  # refused before any run folder was made


def test_stop_bench_workers(tmp_path, image_file, capsys):
    out = tmp_path / "runs"
    assert main(["stop-bench", "--images", str(image_file()), "--workers", "0", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "error: --workers must be >= 1, got 0"
    assert not out.exists()


def test_a_space_cut_by_the_evaluation_scale_names_the_argument():
    from dipsearch.nets.space import find_space, load_space
    from dipsearch.search.prepare import fit_space_to_image

    problem = make_problem("denoise", clean=synthetic_image(32, 32), level=25, seed=0)
    with pytest.raises(ArgumentError) as err:
        fit_space_to_image(load_space(find_space("demo")), problem, 0.25)
    assert str(err.value).startswith(
        "no network of space 'demo' fits the 8x8 image the candidates see (the 32x32 image at eval_scale=0.25); "
        "its smallest, of depth 3, is refused"
    )
