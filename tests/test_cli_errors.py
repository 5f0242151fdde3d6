"""Bad input to the CLI: one `error:` line, exit status 2, no traceback and no run folder left behind."""

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import synthetic_image
from PIL import Image

from dipsearch import DipsearchError
from dipsearch.cli import build_parser, main
from dipsearch.store.imageio import save_image


def _folders(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*")) if out.exists() else []


def _error(tmp_path, capsys, argv: list, code: int = 2) -> str:
    out = tmp_path / "runs"
    assert main([str(a) for a in argv] + ["--out", str(out)]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert _folders(out) == []  # nothing half-written
    return " ".join(err.split())


def _fit(*args) -> list[str]:
    return ["fit", *map(str, args), "--iters", "2", "--no-progress"]


def _search(kind: str, *args) -> list[str]:
    return ["search", kind, *map(str, args), "--iters", "2", "--final-iters", "120", "--no-progress"]


@pytest.fixture
def clean(image_file):
    return image_file("clean.png", 64, 64)


# ---------------------------------------------------------------- 1. spaces that cannot fit the image


def test_search_restricts_the_space_to_networks_that_fit_the_image(tmp_path, image_file, capsys):
    clean = image_file("small.png", 32, 32)
    out = tmp_path / "runs"
    assert (
        main(
            [
                "search",
                "ga",
                "--clean",
                str(clean),
                "--space",
                "default",
                "--pop",
                "2",
                "--gens",
                "1",
                "--iters",
                "3",
                "--final-iters",
                "120",
                "--sigma",
                "30",
                "--seed",
                "4",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "space 'default' restricted to the networks that fit the 32x32 image: depth {3, 4} (of 3-6)" in text
    (run,) = (out / "search").glob("*_ga")
    rows = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    assert rows and all(r["fitness"] is not None for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["best_genome"]["depth"] <= 4
    assert (run / "best_arch.toml").is_file()
    # The refit hint carries the user's problem flags, whole on one line (output to a pipe is not wrapped).
    refit = f"refit the winner: dipsearch fit --clean {clean} --sigma 30 --seed 4 --arch {run / 'best_arch.toml'}"
    refit += " --stop auto"  # as the final rung stopped it
    assert refit in text.splitlines()
    assert "…" not in text


def test_space_restriction_keeps_only_networks_that_fit():
    from dipsearch.fitting.fit import check_size
    from dipsearch.nets.space import SPACES_DIR, load_space

    def refuse_for(side):
        def refuse(spec):
            try:
                check_size(SimpleNamespace(image_shape=(3, side, side)), spec)
            except DipsearchError as err:
                return str(err)
            return None

        return refuse

    space = load_space(SPACES_DIR / "wide.toml")
    for side in (16, 24, 40, 64):
        small, note = space.fitting(refuse_for(side), f"{side}x{side} image")
        assert note is not None and small.max_depth < space.max_depth
        for seed in range(40):
            assert refuse_for(side)(small.decode(small.sample(seed))) is None
        assert refuse_for(side)(small.decode(small.default())) is None
    assert space.fitting(refuse_for(1024), "1024x1024 image") == (space, None)


def test_a_worker_rebuilds_the_same_cut_space(image_file):
    from dipsearch.cli.problem_args import recipe_from_args
    from dipsearch.cli.search_cmd import search_setup
    from dipsearch.nets.space import space_to_dict
    from dipsearch.problems.recipe import problem_fingerprint
    from dipsearch.search.bayes.api import setup_of_study as setup_from_recipe

    args = build_parser().parse_args(_search("bayes", "--clean", image_file("small.png", 32, 32), "--space", "wide"))
    setup = search_setup(args)
    assert setup.space.genes["k_down[3]"].choices == (1, 3) and setup.space.genes["k_down[2]"].choices == (1, 3, 5)
    recipe = {
        "problem": recipe_from_args(args).resolved().to_dict(),
        "problem_fingerprint": problem_fingerprint(setup.problem),
        "space": space_to_dict(setup.space),
        "space_source": setup.space.source,
        "search": {"iters": 2, "seed": 0, "fitness": "holdout", "eval_scale": 1.0},
    }
    rebuilt = setup_from_recipe(recipe, "s", "cpu").space
    assert rebuilt.genes == setup.space.genes and rebuilt.fixed == setup.space.fixed


def test_search_where_no_network_fits_stops_before_any_fit(tmp_path, image_file, capsys):
    space = tmp_path / "deep.toml"
    space.write_text('[genes.lr]\nkind = "float"\nlow = 0.001\nhigh = 0.1\ndefault = 0.01\n[fixed]\ndepth = 5\n')
    for kind in ("ga", "bayes"):
        message = _error(tmp_path, capsys, _search(kind, "--clean", image_file("small.png", 32, 32), "--space", space))
        assert "no network of space 'deep' fits the 32x32 image; its smallest, of depth 5, is refused: " in message
        assert "needs a padded size of at least 64x64, i.e. an image of at least 33x33 px" in message  # the fit's own


def test_search_where_one_network_is_left(tmp_path, image_file, capsys):
    space = tmp_path / "depths.toml"
    space.write_text('[genes.depth]\nkind = "int"\nlow = 3\nhigh = 5\ndefault = 4\n')
    message = _error(tmp_path, capsys, _search("ga", "--clean", image_file("small.png", 16, 16), "--space", space))
    assert (
        "space 'depths' restricted to the networks that fit the 16x16 image: depth {3} (of 3-5); that leaves a "
        "single network and nothing to search" in message
    )


def test_eval_scale_counts_in_what_fits(tmp_path, image_file, capsys):
    clean = image_file("small.png", 32, 32)
    message = _error(tmp_path, capsys, _search("ga", "--clean", clean, "--space", "demo", "--eval-scale", "1/4"))
    assert (
        "no network of space 'demo' fits the 8x8 image the candidates see (the 32x32 image at --eval-scale "
        "0.25); its smallest, of depth 3, is refused" in message
    )


def _failing_fits(monkeypatch):
    import dipsearch.scoring.evaluate as evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory on the test device")

    monkeypatch.setattr(evaluate, "fit_variant", broken)


def test_ga_search_whose_every_evaluation_failed_exits_non_zero(tmp_path, clean, capsys, monkeypatch):
    _failing_fits(monkeypatch)
    out = tmp_path / "runs"
    assert main(_search("ga", "--clean", clean, "--space", "demo", "--pop", 2, "--gens", 1, "--out", out)) == 2
    captured = capsys.readouterr()
    assert "refit the winner" not in captured.out and "best architectures" not in captured.out
    assert (
        "the search has no winner: of its 4 evaluations 4 failed (4 with: RuntimeError: out of memory on the "
        "test device)" in " ".join(captured.err.split())
    )
    (run,) = (out / "search").glob("*_ga")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_genome"] is None and summary["best_fitness"] is None and summary["failed"] == 4
    assert not (run / "best_arch.toml").exists()


def test_bayes_search_whose_every_trial_failed_exits_non_zero(tmp_path, clean, capsys, monkeypatch):
    _failing_fits(monkeypatch)
    out = tmp_path / "runs"
    assert main(_search("bayes", "--clean", clean, "--space", "demo", "--trials", "2", "--out", out)) == 2
    captured = capsys.readouterr()
    assert "refit the winner" not in captured.out
    assert "the search has no winner: of its 2 evaluations 2 failed" in " ".join(captured.err.split())


def test_a_folder_named_like_a_space_does_not_hide_it(tmp_path, monkeypatch):
    from dipsearch.nets.space import SPACES_DIR, find_space

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert find_space("demo") == SPACES_DIR / "demo.toml"


def test_space_without_a_searchable_gene_is_refused(tmp_path, clean, capsys):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    fixed_only = tmp_path / "fixed.toml"
    fixed_only.write_text('[fixed]\nactivation = "elu"\n')
    for space in (empty, fixed_only):
        for kind in ("ga", "bayes"):
            message = _error(tmp_path, capsys, _search(kind, "--clean", clean, "--space", space))
            assert f"{space} declares no gene to search" in message


def test_space_whose_fixed_fit_settings_no_fit_can_use(tmp_path, clean, capsys):
    space = tmp_path / "lr.toml"
    space.write_text('[genes.depth]\nkind = "int"\nlow = 3\nhigh = 4\ndefault = 3\n[fixed]\nlr = inf\n')
    message = _error(tmp_path, capsys, _search("ga", "--clean", clean, "--space", space))
    assert f"lr must be a finite number > 0, got inf (in [fixed] of {space})" in message


# ---------------------------------------------------------------- 3./4. masks


def _mask_file(path: Path, h: int, w: int, value: float | None = None) -> Path:
    mask = torch.ones(1, 1, h, w)
    if value is None:
        mask[..., h // 3 : h // 2, w // 3 : w // 2] = 0
    else:
        mask.fill_(value)
    save_image(mask, path)
    return path


def test_crop_crops_the_mask_too(tmp_path, image_file, capsys):
    clean = image_file("big.png", 80, 96)
    mask = _mask_file(tmp_path / "mask.png", 80, 96)
    out = tmp_path / "runs"
    assert main(_fit("--task", "inpaint", "--clean", clean, "--mask", mask, "--crop", "64", "--out", out)) == 0
    (run,) = (out / "fit").glob("*")
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["problem"]["image_shape"] == [3, 64, 64] and config["problem"]["crop"] == 64
    from dipsearch.cli.search_cmd import search_setup

    args = build_parser().parse_args(
        _search(
            "ga", "--task", "inpaint", "--clean", str(clean), "--mask", str(mask), "--crop", "40", "--space", "demo"
        )
    )
    setup = search_setup(args)
    assert setup.problem.mask.shape[-2:] == (40, 40) and setup.problem.observed.shape[-2:] == (40, 40)


def test_crop_larger_than_the_mask(tmp_path, image_file, capsys):
    clean = image_file("wide.png", 64, 96)
    mask = _mask_file(tmp_path / "mask.png", 40, 48)
    message = _error(tmp_path, capsys, _fit("--task", "inpaint", "--clean", clean, "--mask", mask, "--crop", "44"))
    assert f"--crop 44 is larger than the mask {mask} (48x40 px, width x height)" in message


def test_all_black_mask_is_refused_before_fitting(tmp_path, clean, capsys):
    mask = _mask_file(tmp_path / "black.png", 64, 64, value=0.0)
    message = _error(tmp_path, capsys, _fit("--task", "inpaint", "--clean", clean, "--mask", mask))
    assert f"mask {mask} marks no pixel as known (it is all black): there is nothing to fit" in message


def test_mask_without_known_pixels_from_the_api():
    from dipsearch import make_problem

    with pytest.raises(DipsearchError, match="the given mask marks no pixel as known"):
        make_problem("inpaint", clean=synthetic_image(16, 16), mask=torch.zeros(1, 1, 16, 16))
    with pytest.raises(DipsearchError, match="the bernoulli mask marks no pixel as known"):
        make_problem("inpaint", clean=synthetic_image(2, 2), mask_ratio=0.99, seed=0)


def test_sizes_are_printed_width_first(tmp_path, image_file, capsys):
    clean = image_file("wide.png", 48, 64)  # 64 wide, 48 high
    mask = _mask_file(tmp_path / "mask.png", 40, 32)
    message = _error(tmp_path, capsys, _fit("--task", "inpaint", "--clean", clean, "--mask", mask))
    assert f"mask {mask} is 32x40 but the image is 64x48 (width x height)" in message
    message = _error(tmp_path, capsys, _fit("--clean", clean, "--crop", "56"))
    assert "--crop 56 is larger than the clean image (64x48 px, width x height)" in message


# ---------------------------------------------------------------- 5./7. numbers out of range


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            _fit("--demo", "--seed", "99999999999999999999"),
            "--seed must be between 0 and 4294967295 (2^32 - 1), got 99999999999999999999",
        ),
        (_search("bayes", "--demo", "--seed", "-1"), "--seed must be between 0 and 4294967295 (2^32 - 1), got -1"),
        (_search("ga", "--demo", "--seed", "-1"), "--seed must be between 0 and 4294967295"),
        (_fit("--demo", "--lr", "inf"), "--lr must be a finite number > 0, got inf"),
        (_fit("--demo", "--lr", "0"), "--lr must be a finite number > 0, got 0.0"),
        (_fit("--demo", "--reg-noise", "nan"), "--reg-noise must be a finite number >= 0, got nan"),
        (
            _fit("--demo", "--sigma", "1e9"),
            "gaussian noise level is sigma on the 0-255 scale and must be >= 0 and at most 255, got 1e+09",
        ),
        (
            _fit("--demo", "--noise", "speckle", "--sigma", "1e9"),
            "speckle noise level is a relative sigma and must be >= 0 and at most 5",
        ),
        (_fit("--demo", "--sigma", "inf"), "gaussian noise level must be finite, got inf"),
    ],
)
def test_numbers_out_of_range(tmp_path, capsys, argv, message):
    assert message in _error(tmp_path, capsys, argv)


def test_worker_seed_out_of_range(tmp_path, capsys):
    journal = tmp_path / "study.journal"
    journal.write_text("")
    assert main(["worker", "--storage", str(journal), "--study", "s", "--seed", "-5"]) == 2
    assert "--seed must be between 0 and 4294967295 (2^32 - 1), got -5" in capsys.readouterr().err


def test_noise_free_fit_writes_valid_json(tmp_path, clean):
    out = tmp_path / "runs"
    assert main(_fit("--clean", clean, "--sigma", "0", "--out", out)) == 0
    (run,) = (out / "fit").glob("*")

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    summary = json.loads((run / "summary.json").read_text(), parse_constant=refuse)
    assert summary["psnr_observed"] is None  # the observation is the clean image: PSNR is infinite
    assert "Infinity" not in (run / "summary.json").read_text()


def test_json_writer_turns_non_finite_floats_into_null(tmp_path):
    from dipsearch.store.runs import RunDir

    run = RunDir(tmp_path)
    run.write_json("a.json", {"x": float("inf"), "y": [float("-inf"), float("nan"), 1.5], "z": {"w": 2}})
    run.append_jsonl("b.jsonl", {"fitness": float("nan")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [None, None, 1.5], "z": {"w": 2}}
    assert (tmp_path / "b.jsonl").read_text() == '{"fitness": null}\n'


# ---------------------------------------------------------------- 10. smaller flags


def test_factor_is_refused_outside_super_resolution(tmp_path, clean, capsys):
    message = _error(tmp_path, capsys, _fit("--clean", clean, "--factor", "2"))
    assert "--factor is the super-resolution factor, for --task sr; denoise has no use for it" in message


@pytest.mark.parametrize(
    "argv, message",
    [
        (_search("ga", "--demo", "--workers", "0"), "--workers must be >= 1, got 0"),
        (_search("bayes", "--demo", "--workers", "0"), "--workers must be >= 1, got 0"),
        (_search("bayes", "--demo", "--trials", "0"), "--trials must be >= 1, got 0 (0 only with --storage"),
        (_search("bayes", "--demo", "--trials", "-3"), "--trials must be >= 1, got -3"),
        (_search("ga", "--demo", "--eval-scale", "1/3"), "--eval-scale must be 1, 0.5 or 0.25, got 0.333333"),
        (
            _search("ga", "--task", "sr", "--clean", "{clean}", "--eval-scale", "1/2"),
            "--eval-scale is for denoising and inpainting; super-resolution candidates are scored at full scale",
        ),
        (
            _fit("--demo", "--stop", "nosuch"),
            "unknown detector 'nosuch'; choose one of wmv, emv, sure, holdout, spectral, auto (the recommended stopping) or none "
            "(no stopping)",
        ),
        (
            _search("ga", "--demo", "--stop", "nosuch"),
            "unknown detector 'nosuch'; choose one of wmv, emv, sure, holdout, spectral, auto (the recommended stopping) "
            "or none (no stopping)",
        ),
    ],
)
def test_flag_values_that_cannot_work(tmp_path, capsys, clean, argv, message):
    assert message in _error(tmp_path, capsys, [a.replace("{clean}", str(clean)) for a in argv])


def test_eval_scale_accepts_fractions():
    parse = build_parser().parse_args
    assert parse(["search", "ga", "--demo", "--eval-scale", "1/2"]).eval_scale == 0.5
    assert parse(["search", "bayes", "--demo", "--eval-scale", "0.25"]).eval_scale == 0.25
    with pytest.raises(SystemExit) as info:
        parse(["search", "ga", "--demo", "--eval-scale", "half"])
    assert info.value.code == 2


def test_worker_does_not_create_a_missing_storage_file(tmp_path, capsys):
    for storage in (tmp_path / "missing.journal", f"sqlite:///{tmp_path / 'missing.db'}"):
        assert main(["worker", "--storage", str(storage), "--study", "s"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "no study 's' in" in err and "missing" in err and "the file does not exist" in err
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_the_flags_its_run_folder_decides(tmp_path, capsys):
    run = tmp_path / "old_ga"
    run.mkdir()
    (run / "config.toml").write_text("")
    message = _error(tmp_path, capsys, ["search", "ga", "--resume", run, "--pop", "4", "--iters", "50", "--gens", "3"])
    assert (
        "drop --iters, --pop (only --dask, --dask-timeout, --gens, --no-progress, --out, --workers and --log" in message
    )
    message = _error(tmp_path, capsys, ["search", "bayes", "--resume", run, "--iters", "50", "--space", "wide"])
    assert "drop --space, --iters (only" in message


def test_interrupted_bayes_search_prints_how_to_resume(tmp_path, clean, capsys, monkeypatch):
    import dipsearch.scoring.evaluate as evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "fit_variant", interrupted)
    out = tmp_path / "runs"
    assert main(_search("bayes", "--clean", clean, "--space", "demo", "--trials", "2", "--out", out)) == 130
    captured = capsys.readouterr()
    (run,) = (out / "search").glob("*_bayes")
    assert f"continue with: dipsearch search bayes --resume {run}" in captured.out
    assert captured.err.strip().endswith("interrupted") and "Traceback" not in captured.err


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "sr = super-resolution by --factor" in text  # --task has a help text
    assert "(defaults: gaussian 25, poisson 12, impulse 0.5, speckle 0.35)" in text and "{'" not in text


def test_stop_bench_checks_the_images_before_the_other_flags(tmp_path, capsys):
    message = _error(tmp_path, capsys, ["stop-bench", "--images", tmp_path / "missing.png", "--iters", "10"])
    assert "image file not found" in message and "--iters" not in message


def test_rgba_input_gives_a_one_line_warning(tmp_path, capsys):
    arr = (synthetic_image(64, 64)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")
    rgba = tmp_path / "rgba.png"
    Image.fromarray(arr).convert("RGBA").save(rgba)
    assert main(_fit("--clean", str(rgba), "--out", str(tmp_path / "runs"))) == 0
    err = capsys.readouterr().err
    assert err == f"warning: {rgba}: alpha channel dropped (only the RGB channels are used)\n"
