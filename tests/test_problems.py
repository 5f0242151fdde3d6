"""The problem layer: the task registry, deblurring and compressed-sensing MRI, problems from any physics
(deepinv's or a hand-written operator), and a searched architecture as deepinv's DIP generator."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL, synthetic_image
from torch import nn

from dipsearch import fit, make_problem
from dipsearch.cli import main
from dipsearch.errors import ArgumentError, DipsearchError
from dipsearch.fitting.fit import FitConfig
from dipsearch.problems import Problem, generator_from_arch, get_task, require_deepinv, task_names
from dipsearch.problems.cs_mri import cartesian_mask, zero_filled
from dipsearch.problems.deblur import CircularBlur, gaussian_kernel, motion_kernel
from dipsearch.problems.holdout import hold_out
from dipsearch.problems.recipe import demo_image_path
from dipsearch.store.imageio import center_crop, load_image, save_image


class Blur(nn.Module):
    """A hand-written physics: the interface Problem.from_physics reads (deepinv's Physics has the same A)."""

    def __init__(self, kernel: torch.Tensor, channels: int = 3):
        super().__init__()
        self.op = CircularBlur(kernel, channels)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 - deepinv's name
        return self.op(x)


class Identity(nn.Module):
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 - deepinv's name
        return x


@pytest.fixture
def small_arch(tmp_path) -> str:
    path = tmp_path / "small.toml"
    path.write_text(SMALL.to_toml())
    return str(path)


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*") if p.is_dir())


def _cli_error(tmp_path, capsys, argv) -> str:
    out = tmp_path / "runs"
    code = main([*argv, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert _runs(out) == []
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("error:")
    return " ".join(err.split())


# ---------------------------------------------------------------- the registry


def test_the_registry_holds_every_task_and_refuses_an_unknown_one():
    assert task_names() == ("denoise", "sr", "inpaint", "deblur", "cs-mri")
    assert get_task("sr").pointwise is False and get_task("denoise").identity is True
    with pytest.raises(
        ArgumentError, match="unknown task 'dehaze'; choose one of denoise, sr, inpaint, deblur, cs-mri"
    ):
        get_task("dehaze")


def test_an_unknown_task_on_the_command_line_lists_the_names(tmp_path, capsys, image_file):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--clean", str(image_file()), "--task", "dehaze"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'dehaze'" in err and "deblur" in err and "cs-mri" in err


# ---------------------------------------------------------------- deblurring


def test_blur_kernels_are_normalised_and_symmetric():
    for kernel in (gaussian_kernel(2.0), motion_kernel(9, 0.7)):
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert kernel.shape[0] % 2 == 1
        # point symmetric: convolution and correlation agree, so scikit-image's Wiener inverts the same operator
        assert torch.allclose(kernel, kernel.flip(0, 1), atol=1e-6)
    assert gaussian_kernel(2.0).shape == (13, 13)


def test_deblur_problem_blurs_and_the_motion_angle_follows_the_seed():
    clean = synthetic_image(32, 32)
    problem = make_problem("deblur", clean=clean, kernel="gaussian", kernel_width=1.5)
    assert problem.observed.shape == clean.shape and not torch.allclose(problem.observed, clean)
    assert problem.data_loss(clean).item() == pytest.approx(0.0, abs=1e-10)
    a = make_problem("deblur", clean=clean, kernel="motion", seed=1).meta["angle"]
    b = make_problem("deblur", clean=clean, kernel="motion", seed=2).meta["angle"]
    assert a != b and make_problem("deblur", clean=clean, kernel="motion", seed=1).meta["angle"] == a
    assert set(problem.pictures()) == {"observed.png", "kernel.png"}


def test_deblur_and_mri_from_the_cli_on_tiny_images(tmp_path, image_file, small_arch):
    clean = image_file("clean.png", 32, 32)
    out = tmp_path / "runs"
    base = ["--clean", str(clean), "--iters", "3", "--out", str(out), "--no-progress", "--arch", small_arch]
    assert main(["fit", "--task", "deblur", "--kernel", "motion", "--kernel-width", "5", *base]) == 0
    assert main(["fit", "--task", "cs-mri", "--acceleration", "4", *base]) == 0
    deblur, mri = sorted(_runs(out), key=lambda p: "cs-mri" in p.name)
    assert (deblur / "kernel.png").exists() and (deblur / "output.png").exists()
    assert (mri / "sampling.png").exists() and (mri / "observed.png").exists()
    assert "psnr_final" in json.loads((mri / "summary.json").read_text())


def test_deblur_accepts_a_blurred_observation_file(tmp_path, image_file, small_arch):
    blurred = image_file("blurred.png", 32, 32)
    out = tmp_path / "runs"
    argv = ["fit", str(blurred), "--task", "deblur", "--iters", "2", "--out", str(out), "--no-progress"]
    assert main([*argv, "--arch", small_arch]) == 0


def test_a_kernel_larger_than_the_image(tmp_path, capsys, image_file):
    message = _cli_error(
        tmp_path,
        capsys,
        ["fit", "--clean", str(image_file()), "--task", "deblur", "--kernel-width", "8", "--iters", "2"],
    )
    assert "--kernel-width gives a 49x49 kernel, larger than the 32x32 image" in message


def test_kernel_flags_belong_to_deblur(tmp_path, capsys, image_file):
    message = _cli_error(tmp_path, capsys, ["fit", "--clean", str(image_file()), "--kernel", "motion", "--iters", "2"])
    assert "--kernel/--kernel-width are for --task deblur, not denoise" in message


# ---------------------------------------------------------------- compressed-sensing MRI


def test_cartesian_mask_keeps_the_centre_and_one_in_acceleration():
    mask = cartesian_mask(64, 4, torch.Generator().manual_seed(0))
    assert mask.sum().item() == 16
    assert mask[0, 0] == 1 and mask[0, 1] == 1 and mask[0, -1] == 1  # the lowest frequencies (unshifted FFT)
    assert cartesian_mask(64, 1).sum().item() == 64


def test_mri_problem_measures_kspace_and_zero_filling_inverts_full_sampling():
    clean = synthetic_image(32, 32)
    full = make_problem("cs-mri", clean=clean, acceleration=1)
    assert full.image_shape == (1, 32, 32) and full.observed.shape == (1, 2, 32, 32)
    assert torch.allclose(zero_filled(full.observed), full.clean, atol=1e-5)
    sparse = make_problem("cs-mri", clean=clean, acceleration=4)
    assert sparse.mask.mean().item() == pytest.approx(0.25)
    assert sparse.data_loss(sparse.clean).item() == pytest.approx(0.0, abs=1e-10)


def test_mri_holdout_hides_measured_entries_only():
    problem = make_problem("cs-mri", clean=synthetic_image(32, 32), acceleration=2)
    fitted, held = hold_out(problem, 0.2, seed=0)
    assert bool(((held.mask > 0) <= (problem.mask > 0)).all())  # only sampled k-space entries are held out
    assert held.pixels == round(0.2 * problem.mask.sum().item())
    assert bool((fitted.mask + held.mask == problem.mask).all())


def test_an_acceleration_below_one(tmp_path, capsys, image_file):
    message = _cli_error(
        tmp_path,
        capsys,
        ["fit", "--clean", str(image_file()), "--task", "cs-mri", "--acceleration", "0.5", "--iters", "2"],
    )
    assert "--acceleration must be >= 1, got 0.5" in message


def test_mri_takes_no_observation_file(tmp_path, capsys, image_file):
    message = _cli_error(tmp_path, capsys, ["fit", str(image_file()), "--task", "cs-mri", "--iters", "2"])
    assert "measures no image an image file could hold" in message


def test_sure_says_what_it_needs_on_a_blur(tmp_path, capsys, image_file, small_arch):
    argv = ["fit", "--clean", str(image_file()), "--task", "deblur", "--stop", "sure", "--iters", "2"]
    message = _cli_error(tmp_path, capsys, [*argv, "--arch", small_arch])
    assert "SURE estimates the denoising error; it does not apply to task 'deblur'" in message


def test_baselines_of_the_new_tasks(tmp_path):
    # a natural image (the packaged demo): the classical priors are made for natural content
    clean = tmp_path / "clean.png"
    save_image(center_crop(load_image(demo_image_path()), 48, 48), clean)
    out = tmp_path / "runs"
    for name, task in (("wiener", "deblur"), ("tv", "deblur"), ("zero-filled", "cs-mri"), ("tv", "cs-mri")):
        assert main(["baseline", name, "--task", task, "--clean", str(clean), "--sigma", "2", "--out", str(out)]) == 0
    summaries = {
        (s["method"], s["task"]): s for s in (json.loads((r / "summary.json").read_text()) for r in _runs(out))
    }
    for key in (("wiener", "deblur"), ("tv", "deblur"), ("tv", "cs-mri")):
        assert summaries[key]["psnr"] > summaries[key]["psnr_observed"] + 0.5, summaries[key]
    # zero-filling is the naive reading of k-space itself
    assert summaries["zero-filled", "cs-mri"]["psnr"] == pytest.approx(
        summaries["zero-filled", "cs-mri"]["psnr_observed"]
    )


# ---------------------------------------------------------------- any physics


def test_a_physics_problem_fitted_a_few_steps_lowers_the_data_loss():
    clean = synthetic_image(32, 32)
    physics = Blur(gaussian_kernel(1.0))
    problem = Problem.from_physics(physics, physics.A(clean), clean)
    assert problem.task == "physics" and problem.image_shape == (3, 32, 32)
    result = fit(problem, SMALL, FitConfig(iters=40, lr=0.01, seed=0))
    losses = [row["loss"] for row in result.trace]
    assert losses[-1] < 0.5 * losses[0]
    moved = problem.to("cpu")
    assert moved.operator.physics is not problem.operator.physics  # moved problems copy their physics


def test_hand_written_and_physics_gaussian_denoising_give_the_same_loss():
    clean = synthetic_image(32, 32)
    ours = make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=3)
    theirs = Problem.from_physics(Identity(), ours.observed, clean)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert theirs.data_loss(x).item() == ours.data_loss(x).item()


def test_physics_whose_output_does_not_match_the_observation():
    physics = Blur(gaussian_kernel(1.0))
    with pytest.raises(ArgumentError) as info:
        Problem.from_physics(physics, torch.zeros(1, 3, 16, 16), image_shape=(3, 32, 32))
    assert str(info.value) == (
        "physics.A maps a 3x32x32 image to (1, 3, 32, 32), but the observation y is (1, 3, 16, 16); give the "
        "measurements of this physics (or the image_shape it takes)"
    )
    with pytest.raises(ArgumentError, match="physics must have an A\\(x\\) method"):
        Problem.from_physics(object(), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ArgumentError, match="y must be the measurements as a 1xCxHxW tensor"):
        Problem.from_physics(physics, torch.zeros(3, 8))


def test_physics_problems_are_not_rebuilt_from_files():
    from dipsearch.problems import ProblemRecipe

    problem = Problem.from_physics(Identity(), synthetic_image(16, 16))
    recipe = ProblemRecipe.of_problem(problem)
    with pytest.raises(DipsearchError, match="given as tensors in Python"):
        recipe.build()


# ---------------------------------------------------------------- deepinv


def test_missing_deepinv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepinv", None)  # import deepinv -> ImportError
    with pytest.raises(DipsearchError) as info:
        require_deepinv()
    assert "pip install 'dipsearch[deepinv]'" in str(info.value)


def test_a_searched_architecture_builds_a_plain_generator(tmp_path):
    arch = tmp_path / "best_arch.toml"
    arch.write_text(SMALL.to_toml())
    net = generator_from_arch(arch, channels=3)
    z = torch.rand(1, SMALL.input_depth, 32, 32)
    assert net(z).shape == (1, 3, 32, 32)


def _deepinv():
    try:
        return require_deepinv()
    except DipsearchError as err:
        if os.environ.get("DIPSEARCH_REQUIRE_DEEPINV"):  # .ci/run's deepinv stage: a skip there is a failure
            raise
        pytest.skip(str(err))


def test_deepinv_dip_runs_a_searched_generator(tmp_path):
    dinv = _deepinv()
    from dipsearch.problems import deepinv_dip

    arch = tmp_path / "best_arch.toml"
    arch.write_text(SMALL.to_toml())
    clean = synthetic_image(32, 32)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(sigma=0.1))
    model = deepinv_dip(arch, (3, 32, 32), iterations=5)
    out = model(physics(clean), physics)
    assert out.shape == clean.shape


def test_deepinv_gaussian_denoising_gives_the_same_loss():
    dinv = _deepinv()
    clean = synthetic_image(32, 32)
    ours = make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=3)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(sigma=25 / 255))
    theirs = Problem.from_physics(physics, ours.observed, clean)
    assert theirs.meta["noise"] == "gaussian" and theirs.meta["level"] == pytest.approx(25)
    x = torch.rand(1, 3, 32, 32)
    assert theirs.data_loss(x).item() == pytest.approx(ours.data_loss(x).item(), rel=1e-6)


# ---------------------------------------------------------------- the extending page's example


def test_the_colorize_example_task_works_like_a_built_in_one(monkeypatch, tmp_path):
    import importlib.util

    from dipsearch.problems import ProblemRecipe, base

    monkeypatch.setattr(base, "TASK_REGISTRY", dict(base.TASK_REGISTRY))  # the example leaves no trace
    path = Path(__file__).resolve().parent.parent / "docs" / "extending" / "examples" / "colorize.py"
    spec = importlib.util.spec_from_file_location("colorize_example", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert "colorize" in task_names()

    clean = synthetic_image(32, 32)
    problem = make_problem("colorize", clean=clean, noise="gaussian", level=5)
    assert problem.observed.shape == (1, 1, 32, 32) and problem.image_shape == (3, 32, 32)
    result = fit(problem, SMALL, FitConfig(iters=30, lr=0.01, seed=0))
    losses = [row["loss"] for row in result.trace]
    assert losses[-1] < losses[0]
    with pytest.raises(DipsearchError, match="colorize takes gaussian noise, not poisson"):
        make_problem("colorize", clean=clean, noise="poisson", level=12)

    save_image(clean, tmp_path / "photo.png")
    rebuilt = ProblemRecipe(task="colorize", clean=str(tmp_path / "photo.png")).build()
    assert rebuilt.image_shape == (3, 32, 32) and rebuilt.meta["task"] == "colorize"


def test_deepinv_operators_against_the_hand_written_ones():
    """What docs/guide/deepinv.md states: which deepinv operators give the hand-written outputs to float tolerance."""
    dinv = _deepinv()
    from dipsearch.problems.cs_mri import KSpace
    from dipsearch.problems.noise import add_noise
    from dipsearch.problems.sr import LanczosDownsampler, lanczos_kernel

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for kernel in (gaussian_kernel(2.0), motion_kernel(9, 0.7)):  # point-symmetric: convolution == correlation
        blur = dinv.physics.Blur(filter=kernel.view(1, 1, *kernel.shape), padding="circular")
        assert torch.allclose(blur.A(x), CircularBlur(kernel, 3)(x), atol=1e-6)
    mask = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    assert torch.equal(dinv.physics.Inpainting(mask=mask[0], img_size=(3, 64, 64)).A(x), x * mask)
    for factor, same in ((2, True), (4, False)):  # deepinv keeps pixels 0, f, 2f, ...: another grid at f = 4
        k = lanczos_kernel(factor)
        down = dinv.physics.Downsampling(
            img_size=(3, 64, 64), filter=k.view(1, 1, *k.shape), factor=factor, padding="replicate"
        )
        assert torch.allclose(down.A(x), LanczosDownsampler(factor, 3)(x), atol=1e-6) is same
    # the same seeded draws; dipsearch clips the observation to [0, 1], deepinv does not
    ours = add_noise(x, "gaussian", 25, torch.Generator().manual_seed(5))
    theirs = dinv.physics.GaussianNoise(sigma=25 / 255, rng=torch.Generator().manual_seed(5))(x)
    assert torch.allclose(ours, theirs.clamp(0, 1), atol=1e-6) and not torch.allclose(ours, theirs)
    ours = add_noise(x, "poisson", 12, torch.Generator().manual_seed(5))
    theirs = dinv.physics.PoissonNoise(gain=1 / 12, rng=torch.Generator().manual_seed(5))(x)
    assert torch.allclose(ours, theirs.clamp(0, 1), atol=1e-6)
    # MRI: deepinv's k-space is centred (fftshift . fft . ifftshift) on a complex image given as 2 channels
    grey, columns = x[:, :1], torch.zeros(64, 64)
    columns[:, ::4] = 1
    shift = dict(dim=(-2, -1))
    theirs = dinv.physics.MRI(mask=torch.fft.fftshift(columns), img_size=(2, 64, 64)).A(
        torch.cat([torch.fft.fftshift(grey, **shift), torch.zeros_like(grey)], 1)
    )
    assert torch.allclose(torch.fft.ifftshift(theirs, **shift), KSpace()(grey) * columns, atol=1e-5)


# ---------------------------------------------------------------- searches on the new problems


def test_searches_score_physics_and_mri_problems_on_held_out_measurements(tmp_path):
    from ga_helpers import write_space
    from rich.console import Console

    from dipsearch.search import ProblemRecipe, Runtime, SearchSpec, bayes, ga
    from dipsearch.search.bayes.study import BayesSettings
    from dipsearch.search.ga import GAConfig

    space = str(write_space(tmp_path))
    torch.set_num_threads(1)
    clean = synthetic_image(32, 32)
    physics = Blur(gaussian_kernel(1.0))
    problem = Problem.from_physics(physics, physics.A(clean), clean)
    spec = SearchSpec(space=space, iters=15, device="cpu", rungs=None, ga=GAConfig(pop=2, gens=1))
    result = ga.run(problem, spec, Runtime(out=tmp_path / "ga", console=Console(quiet=True)))
    assert result.best_fitness is not None and result.image.shape == (1, 3, 32, 32)  # full scale: not pointwise

    save_image(clean, tmp_path / "clean.png")
    recipe = ProblemRecipe(task="cs-mri", clean=str(tmp_path / "clean.png"), acceleration=2)
    spec = SearchSpec(space=space, iters=15, device="cpu", rungs=None, bayes=BayesSettings(trials=2))
    result = bayes.run(recipe, spec, Runtime(out=tmp_path / "bayes", console=Console(quiet=True)))
    assert result.best_fitness is not None and result.image.shape == (1, 1, 32, 32)
    resumed = bayes.resume(result.run_dir, runtime=Runtime(out=tmp_path / "bayes", console=Console(quiet=True)))
    assert resumed.summary["trials"] == 2  # the recipe (with its acceleration) rebuilds the same problem


# ---------------------------------------------------------------- restore and reports


RESTORE_TINY = ["--space", "demo", "--iters", "110"]
RESTORE_TINY += ["--patience", "10", "--device", "cpu"]


def test_restore_deblurs_with_a_report_and_the_kernel_beside_it(image_file, tmp_path):
    clean = image_file(h=64, w=64)
    argv = ["restore", "--clean", str(clean), "--task", "deblur", "--kernel-width", "1", "--search", "none"]
    assert main([*argv, "--out", str(tmp_path), *RESTORE_TINY]) == 0
    (run,) = (tmp_path / "restore").iterdir()
    assert (run / "report.html").is_file() and (run / "kernel.png").is_file()
    assert "kernel.png" in (run / "report.html").read_text()  # the report shows the kernel with the images
    summary = json.loads((run / "summary.json").read_text())
    assert summary["psnr_restored"] > 20


def test_restore_a_physics_problem_from_python(tmp_path):
    from dipsearch.pipelines.restore import Pipeline, RestoreSettings

    clean = synthetic_image(64, 64)
    physics = Blur(gaussian_kernel(1.0))
    problem = Problem.from_physics(physics, physics.A(clean), clean)
    settings = RestoreSettings(search="ga", space="demo", pop=2, gens=0, search_iters=10, iters=110, patience=10)
    settings.device = "cpu"
    result = Pipeline(problem, settings).run(tmp_path, "physics")
    assert result.image.shape == (1, 3, 64, 64)
    assert (result.run.path / "restored.png").is_file() and result.summary["psnr_restored"] > 20


def test_a_physics_mask_per_channel_is_taken_when_the_channels_agree():
    clean = synthetic_image(16, 16)
    positions = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    problem = Problem.from_physics(Identity(), clean * positions, clean, mask=positions.expand(1, 3, 16, 16))
    assert torch.equal(problem.mask, positions)
    fitted, held = problem.with_holdout(0.2)
    assert bool(((held.mask > 0) <= (positions > 0)).all())  # only measured positions are held out
    differing = positions.expand(1, 3, 16, 16).clone()
    differing[0, 1] = 1 - differing[0, 1]
    with pytest.raises(ArgumentError, match="mask differs between channels"):
        Problem.from_physics(Identity(), clean, clean, mask=differing)
