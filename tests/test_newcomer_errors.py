"""Mistakes a new user makes: each gets one `error:` line naming what to change, exit status 2, no traceback,
and nothing written (no run folder, no stray file)."""

from pathlib import Path

import pytest
import torch

from dipsearch.cli import main

SMALL_ARCH = """[arch]
n_down = [8, 8, 8]
n_up = [8, 8, 8]
n_skip = [0, 4, 4]
k_down = [3, 3, 3]
k_up = [3, 3, 3]
k_skip = [1, 1, 1]
upsample = ["bilinear", "bilinear", "bilinear"]
"""


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _error(tmp_path: Path, capsys, argv: list, code: int = 2) -> str:
    """Run the CLI on bad input; the one error line, after checking that nothing was left behind."""
    before = _files(tmp_path)
    assert main([str(a) for a in argv] + ["--out", str(tmp_path / "runs")]) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("error: ")
    assert _files(tmp_path) == before  # no run folder, no half-written file
    return " ".join(captured.err.split())


def _fit(*args) -> list[str]:
    return ["fit", *map(str, args), "--iters", "2", "--no-progress"]


@pytest.fixture
def clean(image_file):
    return image_file("clean.png", 64, 64)


# ---------------------------------------------------------------- [fit] of an --arch file


@pytest.mark.parametrize(
    "fit_table, message",
    [
        ('iters = "many"', "iters must be an integer, got 'many' (in [fit] of {arch})"),
        ("iters = 2.5", "iters must be an integer, got 2.5 (in [fit] of {arch})"),
        ("iters = true", "iters must be an integer, got True (in [fit] of {arch})"),
        ("iters = 0", "iters must be at least 1, got 0 (in [fit] of {arch})"),
        ('lr = "fast"', "lr must be a number, got 'fast' (in [fit] of {arch})"),
        ("lr = -1", "lr must be a finite number > 0, got -1 (in [fit] of {arch})"),
        ("reg_noise_std = nan", "reg_noise_std must be a finite number >= 0, got nan (in [fit] of {arch})"),
        ('tv = "x"', "tv must be a number, got 'x' (in [fit] of {arch})"),
        ("tv = -1", "the TV weight must be >= 0, got -1 (in [fit] of {arch})"),
        ('variant = "hmc"', "unknown variant 'hmc'; choose one of plain, sgld (in [fit] of {arch})"),
        (
            "lrate = 0.01",
            "{arch}: unknown [fit] key(s) lrate; known keys are lr, reg_noise_std, iters, variant, tv",
        ),
        ("fit = 3", "{arch}: unknown [fit] key(s) fit; known keys are"),
    ],
)
def test_bad_fit_table_of_an_arch_file(tmp_path, capsys, clean, fit_table, message):
    arch = tmp_path / "arch.toml"
    arch.write_text(f"{SMALL_ARCH}[fit]\n{fit_table}\n")
    text = _error(tmp_path, capsys, _fit("--clean", clean, "--arch", arch))
    assert message.format(arch=arch) in text
    assert "--lr" not in text and "--iters" not in text  # the file's key is named, not a flag the user never gave


def test_fit_table_that_is_not_a_table(tmp_path, capsys, clean):
    arch = tmp_path / "arch.toml"
    arch.write_text(f"fit = 3\n{SMALL_ARCH}")
    assert f"{arch}: [fit] must be a table of fit settings" in _error(
        tmp_path, capsys, _fit("--clean", clean, "--arch", arch)
    )


def test_good_fit_table_is_used(tmp_path, capsys, clean):
    arch = tmp_path / "arch.toml"
    arch.write_text(f"{SMALL_ARCH}[fit]\niters = 3\nlr = 0.02\n")
    out = tmp_path / "runs"
    assert main(["fit", "--clean", str(clean), "--arch", str(arch), "--no-progress", "--out", str(out)]) == 0
    (run,) = (out / "fit").glob("*")
    assert "iters = 3" in (run / "config.toml").read_text() and "lr = 0.02" in (run / "config.toml").read_text()


# ---------------------------------------------------------------- gene ranges checked when a space loads


@pytest.mark.parametrize(
    "space, message",
    [
        (
            '[genes.lr]\nkind = "float"\nlow = -1\nhigh = 0.1\ndefault = 0.01',
            "lr must be a finite number > 0, got -1 (a value of gene 'lr' of {space})",
        ),
        (
            '[genes.iters]\nkind = "int"\nlow = 0\nhigh = 10\ndefault = 5',
            "iters must be at least 1, got 0 (a value of gene 'iters' of {space})",
        ),
        (
            '[genes.k_skip]\nkind = "int"\nlow = 1\nhigh = 5\ndefault = 1',
            "{space}: gene 'k_skip' allows 2, which no network can use (architecture: k_skip must be odd positive "
            "kernel sizes (1, 3, 5, ...), got (2, 2, 2, 2, 2)); narrow its range",
        ),
        (
            '[genes.input_depth]\nkind = "choice"\nchoices = [3, 0]\ndefault = 3',
            "{space}: gene 'input_depth' allows 0, which no network can use",
        ),
        (
            '[levels.n_down]\nkind = "choice"\nchoices = [8, "a"]\ndefault = 8',
            "{space}: gene 'n_down[0]' allows 'a', which no network can use",
        ),
        (
            '[genes.depth]\nkind = "int"\nlow = 3\nhigh = 4\ndefault = 3\n[fixed]\nlr = "fast"',
            "lr must be a number, got 'fast' (in [fixed] of {space})",
        ),
    ],
)
def test_invalid_gene_ranges_are_refused_when_the_space_loads(tmp_path, capsys, clean, space, message):
    path = tmp_path / "space.toml"
    path.write_text(space + "\n")
    for argv in (
        ["search", "ga", "--clean", clean, "--space", path, "--iters", "2", "--no-progress"],
        _fit("--clean", clean, "--space", path),
    ):
        assert message.format(space=path) in _error(tmp_path, capsys, argv)


def test_shipped_spaces_load():
    from dipsearch.nets.space import SPACES_DIR, load_space

    for path in SPACES_DIR.glob("*.toml"):
        load_space(path)


# ---------------------------------------------------------------- the --demo banner


def test_demo_banner_states_the_space_size_and_noise_it_runs_with(tmp_path, capsys, monkeypatch):
    import dipsearch.cli.ga_cmd as ga_cmd

    def stop_after_the_banner(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ga_cmd, "spec_from_args", stop_after_the_banner)
    argv = ["search", "ga", "--demo", "--crop", "64", "--space", "wide", "--sigma", "15", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "runs")]) == 130
    banner = capsys.readouterr().out.splitlines()[0]
    assert banner.startswith("demo: denoise the embedded image at 64x64 px (Gaussian sigma 15); GA with population 6")
    assert "space wide," in banner and "128" not in banner and "demo.toml" not in banner


# ---------------------------------------------------------------- reproduce: methods that solve another task


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["reproduce", "sr4", "--methods", "nlm"],
            "no method given applies to row sr4: baseline nlm solves denoise, not sr; for sr use bicubic, lanczos",
        ),
        (
            ["reproduce", "denoise", "--methods", "dip,bicubic"],
            "method bicubic applies to none of the rows given: baseline bicubic solves sr, not denoise",
        ),
        (["reproduce", "denoise", "--methods", ","], "--methods names no method; choose from dip, dip-stop, restore"),
    ],
)
def test_reproduce_refuses_methods_that_do_not_apply(tmp_path, capsys, argv, message):
    assert message in _error(tmp_path, capsys, [*argv, "--data", tmp_path])


# ---------------------------------------------------------------- flags that would be ignored are refused


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--patience", "5"],
            "--patience is a setting of a stopping detector, and no --stop names one: add --stop DETECTOR "
            "(wmv, emv, sure, holdout, spectral) or drop --patience",
        ),
        (
            ["--stop-delta", "0.01", "--holdout-fraction", "0.1"],
            "--stop-delta, --holdout-fraction are settings of a stopping detector, and no --stop names one",
        ),
        (["--stop-indexing", "start"], "--stop-indexing is a setting of a stopping detector"),
        (
            ["--burn-in", "10"],
            "--burn-in is a setting of --variant sgld (Bayesian DIP), and this fit's variant is plain: add "
            "--variant sgld or drop --burn-in",
        ),
        (["--variant", "plain", "--sample-every", "3"], "--sample-every is a setting of --variant sgld"),
        (["--sgld-noise", "1"], "--sgld-noise is a setting of --variant sgld"),
    ],
)
def test_fit_refuses_flags_it_would_ignore(tmp_path, capsys, clean, flags, message):
    assert message in _error(tmp_path, capsys, _fit("--clean", clean, *flags))


def test_search_refuses_stop_settings_without_a_detector(tmp_path, capsys, clean):
    argv = ["search", "ga", "--clean", clean, "--patience", "5", "--iters", "2", "--no-progress"]
    assert "--patience is a setting of a stopping detector" in _error(tmp_path, capsys, argv)


def test_stop_settings_with_a_detector_and_sgld_settings_with_sgld_are_used(tmp_path, clean):
    out = tmp_path / "runs"
    arch = tmp_path / "arch.toml"
    arch.write_text(SMALL_ARCH)
    argv = ["fit", "--clean", clean, "--arch", arch, "--stop", "emv", "--patience", "5", "--stop-delta", "0.01"]
    argv += ["--variant", "sgld", "--burn-in", "100", "--sample-every", "5", "--iters", "120"]
    assert main([*map(str, argv), "--no-progress", "--out", str(out)]) == 0
    (run,) = (out / "fit").glob("*")
    config = (run / "config.toml").read_text()
    assert "burn_in = 100" in config and "sample_every = 5" in config
    assert (run / "output_stopped.png").is_file()


def test_library_refuses_sgld_settings_of_a_plain_fit():
    from dipsearch.errors import ArgumentError
    from dipsearch.variants import VariantSettings

    with pytest.raises(ArgumentError) as err:
        VariantSettings(burn_in=10)
    assert str(err.value) == (
        "burn_in is a setting of variant=sgld (Bayesian DIP), and this fit's variant is plain: add variant=sgld "
        "or drop burn_in"
    )


def test_reproduce_resume_refuses_the_settings_its_run_folder_decides(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.toml").write_text("")
    before = _files(tmp_path)
    assert main(["reproduce", "--resume", str(run), "--iters", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume continues the run") and "Traceback" not in err
    assert "drop --iters (only --no-report, --out and --threads may be given again)" in " ".join(err.split())
    assert _files(tmp_path) == before


# ---------------------------------------------------------------- preselect on a space smaller than asked


def test_preselect_says_when_the_space_has_fewer_networks_than_asked(tmp_path, capsys, clean):
    space = tmp_path / "two.toml"
    space.write_text('[genes.input_depth]\nkind = "choice"\nchoices = [3, 8]\ndefault = 3\n')
    out = tmp_path / "runs"
    argv = ["preselect", "--clean", clean, "--space", space, "--candidates", "1000", "--keep", "1", "--no-progress"]
    assert main([*map(str, argv), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        "warning: space 'two' gave 2 distinct network(s) that fit the 64x64 image, fewer than the 1000 candidates "
        "asked for: scoring those 2\n"
    )
    (run,) = (out / "preselect").glob("*")
    assert len((run / "preselect.csv").read_text().splitlines()) == 1 + 2
    # The refit hint is a command that runs: the problem's flags, not a literal "...".
    hint = f"refit the pick: dipsearch fit --clean {clean} --arch {run / 'best_arch.toml'}"
    assert hint in captured.out.splitlines()


# ---------------------------------------------------------------- images too large for the memory there is


def test_fit_too_large_for_memory_is_refused_with_the_crop_that_fits(tmp_path, capsys, image_file, monkeypatch):
    import re

    import dipsearch.fitting.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 200 * 2**20)
    big = image_file("big.png", 512, 512)
    text = _error(tmp_path, capsys, _fit("--clean", big))
    match = re.search(r"give --crop (\d+) or smaller", text)
    assert text.startswith("error: a fit of this network on the 512x512 px image needs about ")
    assert "of memory and cpu has 200 MiB available" in text and match
    side = int(match.group(1))
    assert 64 <= side < 512 and side % 32 == 0
    # The crop it names is one the same check lets through.
    out = tmp_path / "runs"
    argv = ["fit", "--clean", str(big), "--crop", str(side), "--iters", "1", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    # A search and restore check before their first fit, too.
    search = ["search", "ga", "--clean", big, "--space", "demo", "--iters", "2", "--no-progress"]
    assert "give --crop" in _error(tmp_path, capsys, search)
    assert "give --crop" in _error(tmp_path, capsys, ["restore", big])


def test_memory_estimate_grows_with_the_pixels_and_covers_a_real_fit():
    from conftest import SMALL

    from dipsearch.fitting.memory import fit_bytes

    small, large = fit_bytes(SMALL, 3, 128, 128), fit_bytes(SMALL, 3, 256, 256)
    assert 3.5 < large / small < 4.1
    assert fit_bytes(SMALL, 3, 128, 128) < fit_bytes(SMALL, 3, 128, 256) < large


def test_no_crop_fits(tmp_path, monkeypatch):
    import torch

    from dipsearch.errors import ArgumentError
    from dipsearch.fitting.memory import check_fit_memory
    from dipsearch.nets.arch import ArchSpec
    from dipsearch.problems.make import make_problem

    problem = make_problem("denoise", clean=torch.rand(1, 3, 64, 64))
    with pytest.raises(ArgumentError) as err:
        check_fit_memory(problem, ArchSpec(), torch.device("cpu"), available=2**20)
    assert str(err.value).endswith(
        "has 1 MiB available; no crop of it fits either: free memory, or use a device with more"
    )
    check_fit_memory(problem, ArchSpec(), torch.device("cpu"), available=2**30)


def test_image_over_pillows_limit(tmp_path, capsys, image_file, monkeypatch):
    from PIL import Image

    path = image_file("large.png", 64, 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 = 4096 px, more than twice the limit: an error
    text = _error(tmp_path, capsys, _fit("--clean", path))
    assert text == (
        f"error: {path} has more than the 2,000 pixels Pillow decodes; cut out the part to restore with an image "
        "editor first"
    )


def test_pillows_decompression_bomb_warning_is_not_shown(image_file, monkeypatch):
    import warnings

    from PIL import Image

    from dipsearch.store.imageio import load_image

    path = image_file("large.png", 64, 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # over the limit, under twice it: Pillow only warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path).shape == (1, 3, 64, 64)


# ---------------------------------------------------------------- smaller messages


@pytest.fixture
def weights_run(tmp_path, clean):
    out = tmp_path / "fitted"
    arch = tmp_path / "arch.toml"
    arch.write_text(SMALL_ARCH)
    assert (
        main(["fit", "--clean", str(clean), "--arch", str(arch), "--iters", "1", "--no-progress", "--out", str(out)])
        == 0
    )
    (run,) = (out / "fit").glob("*")
    return arch, run


def test_init_from_files_that_are_not_weights(tmp_path, capsys, clean, weights_run):
    arch, run = weights_run
    capsys.readouterr()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((run / "weights.pt").read_bytes()[:3000])
    model = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), model)  # a whole module: weights_only loading refuses it
    advice = "give the weights.pt of a dipsearch fit or pretrain, or the run folder holding it"
    for init, reason in (
        (clean, "it is not a file torch.save writes"),
        (truncated, "it is truncated or damaged"),
        (model, "it holds more than weights, e.g. a whole saved model"),
    ):
        text = _error(tmp_path, capsys, _fit("--clean", clean, "--arch", arch, "--init", init))
        assert text == f"error: --init: {init} is not a readable weights file ({reason}); {advice}"


def test_colour_float_tiff(tmp_path, capsys):
    import numpy as np

    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.random.default_rng(0).random((64, 64, 3), dtype=np.float32), photometric="rgb")
    assert _error(tmp_path, capsys, _fit("--clean", path)) == (
        f"error: {path} is a TIFF whose kind of pixels Pillow cannot decode (e.g. colour with 32-bit float samples); "
        "save it as an 8- or 16-bit PNG or TIFF"
    )


@pytest.mark.parametrize("command", [["search", "ga"], ["search", "bayes"], ["reproduce"]])
def test_resume_of_a_folder_that_does_not_exist(tmp_path, capsys, command):
    before = _files(tmp_path)
    assert main([*command, "--resume", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: no such run folder: {tmp_path / 'nowhere'} (check the path; run folders are under runs/<kind>/)\n"
    )
    assert _files(tmp_path) == before


def test_flags_named_in_preselect_and_stop_bench_messages(tmp_path, capsys, clean):
    argv = ["preselect", "--clean", clean, "--space", "demo", "--inputs", "0", "--no-progress"]
    assert _error(tmp_path, capsys, argv) == "error: --inputs must be >= 1, got 0"
    argv = ["stop-bench", "--images", clean, "--iters", "200", "--holdout-fraction", "2", "--no-progress"]
    assert _error(tmp_path, capsys, argv) == "error: held-out --holdout-fraction must be in (0, 0.5], got 2.0"
