"""`dipsearch fit` with the variants, `dipsearch pretrain`, and --init in searches: outputs and bad input."""

import json
import tomllib
from pathlib import Path

import pytest
from conftest import SMALL

from dipsearch.cli import main
from dipsearch.variants.warmstart import load_weights_file


def _runs(out: Path) -> list[Path]:
    return sorted((out / "fit").glob("*")) if (out / "fit").exists() else []


def _arch(tmp_path, spec=SMALL, name="arch.toml"):
    path = tmp_path / name
    path.write_text(spec.to_toml())
    return path


def _fit(tmp_path, image_file, *flags, out="runs"):
    argv = [
        "fit",
        "--clean",
        str(image_file()),
        "--arch",
        str(_arch(tmp_path)),
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(tmp_path / out),
        *flags,
    ]
    assert main(argv) == 0
    return _runs(tmp_path / out)[-1]


def _error(tmp_path, capsys, argv):
    out = tmp_path / "err_runs"
    code = main([*argv, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert _runs(out) == []  # nothing half-written
    return " ".join(err.split())


def test_sgld_fit_writes_posterior_uncertainty_and_records_its_settings(tmp_path, image_file):
    run = _fit(tmp_path, image_file, "--variant", "sgld", "--iters", "8", "--burn-in", "2", "--sample-every", "2")
    names = {p.name for p in run.iterdir()}
    assert {"output_posterior.png", "uncertainty.png", "weights.pt", "output.png", "summary.json"} <= names
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sgld_samples"] == 3  # steps 4, 6, 8
    assert {"psnr_posterior", "uncertainty_error_corr", "uncertainty_mean"} <= set(summary)
    variant = tomllib.loads((run / "config.toml").read_text())["variant"]
    assert variant == {
        "variant": "sgld",
        "sgld_noise": 2.0,
        "weight_decay": 5e-8,
        "burn_in": 2,
        "sample_every": 2,
        "tv": 0.0,
    }


def test_sgld_with_stop_keeps_the_samples_drawn_before_the_stop(tmp_path, image_file):
    run = _fit(
        tmp_path,
        image_file,
        "--variant",
        "sgld",
        "--iters",
        "30",
        "--burn-in",
        "1",
        "--sample-every",
        "1",
        "--stop",
        "wmv",
        "--stop-window",
        "3",
        "--patience",
        "2",
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sgld_samples"] == summary["iters_run"] - 1
    assert (run / "output_stopped.png").exists() and (run / "output_posterior.png").exists()


def test_tv_and_warm_start_from_a_run_folder(tmp_path, image_file):
    cold = _fit(tmp_path, image_file, "--iters", "3", "--tv", "0.01")
    assert tomllib.loads((cold / "config.toml").read_text())["variant"]["tv"] == 0.01
    weights = load_weights_file(cold)
    assert weights.spec == SMALL and weights.channels == 3
    warm = _fit(tmp_path, image_file, "--iters", "2", "--init", str(cold))
    assert tomllib.loads((warm / "config.toml").read_text())["variant"]["init"] == str((cold / "weights.pt").resolve())


def test_sgld_runs_the_published_20000_iterations_unless_told(tmp_path, capsys, image_file):
    message = _error(
        tmp_path,
        capsys,
        [
            "fit",
            "--clean",
            str(image_file()),
            "--arch",
            str(_arch(tmp_path)),
            "--variant",
            "sgld",
            "--burn-in",
            "20000",
        ],
    )
    assert message == (
        "error: SGLD burn-in of 20000 steps leaves no posterior sample in a run of 20000 iterations "
        "(one every 50 steps after the burn-in); lower --burn-in or raise --iters"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--variant", "hmc"], "error: unknown variant 'hmc'; choose one of plain, sgld"),
        (["--tv", "-0.5"], "error: the TV weight must be >= 0, got -0.5"),
        (
            ["--variant", "sgld", "--iters", "100"],
            "error: SGLD burn-in of 7000 steps leaves no posterior sample in a run "
            "of 100 iterations (one every 50 steps after the burn-in); lower "
            "--burn-in or raise --iters",
        ),
    ],
)
def test_bad_variant_flags(tmp_path, capsys, image_file, flags, message):
    argv = ["fit", "--clean", str(image_file()), "--arch", str(_arch(tmp_path)), "--iters", "2", *flags]
    assert _error(tmp_path, capsys, argv) == message


def test_bad_init(tmp_path, capsys, image_file):
    base = ["fit", "--clean", str(image_file()), "--arch", str(_arch(tmp_path)), "--iters", "2"]
    missing = tmp_path / "nope" / "weights.pt"
    assert (
        _error(tmp_path, capsys, [*base, "--init", str(missing)]) == f"error: --init: no such file or folder: {missing}"
    )
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    assert _error(tmp_path, capsys, [*base, "--init", str(corrupt)]).startswith(
        f"error: --init: {corrupt} is not a readable weights file ("
    )
    other = _fit(tmp_path, image_file, "--iters", "1", out="other")  # the SMALL arch
    seed_net = ["fit", "--clean", str(image_file("c64.png", 64, 64)), "--iters", "2", "--init", str(other)]
    assert _error(tmp_path, capsys, seed_net) == (
        f"error: --init {other / 'weights.pt'}: the weights are for another architecture: k_down is [3, 3, 3] in the "
        "weights file, [3, 3, 3, 3, 3] in this fit; fit the same architecture (e.g. --arch with the run's config) or "
        "drop --init"
    )


def test_pretrain_writes_weights_and_a_report_that_fit_can_start_from(tmp_path, image_file, capsys):
    images = tmp_path / "train"
    images.mkdir()
    for name in ("a.png", "b.png"):
        (images / name).write_bytes(image_file(name).read_bytes())
    out = tmp_path / "pre"
    argv = [
        "pretrain",
        "--images",
        str(images),
        "--arch",
        str(_arch(tmp_path)),
        "--rounds",
        "3",
        "--inner-iters",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert {p.name for p in out.iterdir()} == {"weights.pt", "report.json", "report.md", "config.toml"}
    report = json.loads((out / "report.json").read_text())
    assert [r["image"] for r in report["rounds"]] == ["a.png", "b.png", "a.png"]
    assert [r["meta_step"] for r in report["rounds"]] == [1.0, 0.6667, 0.3333]
    assert "| 3 | a.png |" in (out / "report.md").read_text()
    assert load_weights_file(out).spec == SMALL
    assert _fit(tmp_path, image_file, "--iters", "2", "--init", str(out)).exists()
    assert main(argv) == 2  # the folder is not empty now
    assert f"--out {out} exists and is not an empty folder" in " ".join(capsys.readouterr().err.split())


def test_pretrain_bad_input_leaves_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["pretrain", "--images", str(empty), "--out", str(tmp_path / "p")])
    assert code == 2 and not (tmp_path / "p").exists()
    assert f"--images: {empty} holds no image files" in capsys.readouterr().err


def test_pretrain_names_the_image_its_crop_does_not_fit(tmp_path, image_file, capsys):
    images = tmp_path / "train"
    images.mkdir()
    (images / "small.png").write_bytes(image_file("small.png", 32, 40).read_bytes())
    code = main(["pretrain", "--images", str(images), "--crop", "48", "--out", str(tmp_path / "p")])
    assert code == 2 and not (tmp_path / "p").exists()
    assert capsys.readouterr().err.strip() == (
        "error: small.png: --crop 48 is larger than the clean image (40x32 px, width x height)"
    )


def test_a_search_starts_matching_candidates_from_init_weights(tmp_path, image_file):
    from dipsearch.cli import build_parser
    from dipsearch.cli.search_cmd import search_setup

    cold = _fit(tmp_path, image_file, "--iters", "1")
    space = tmp_path / "space.toml"
    space.write_text(
        "[fixed]\ndepth = 3\nn_down = [8, 8, 8]\nn_up = [8, 8, 8]\nn_skip = [0, 4, 4]\nk_down = [3, 3, 3]\n"
        'k_up = [3, 3, 3]\nk_skip = [1, 1, 1]\nupsample = ["bilinear", "bilinear", "bilinear"]\n'
        '[genes.k_skip]\nkind = "choice"\nchoices = [1, 3]\ndefault = 1\n'
        '[genes.variant]\nkind = "choice"\nchoices = ["plain", "sgld"]\ndefault = "sgld"\n'
    )
    args = build_parser().parse_args(
        ["search", "ga", "--clean", str(image_file()), "--space", str(space), "--init", str(cold), "--iters", "8"]
    )
    setup = search_setup(args)
    same, other = setup.space.default(), {**setup.space.default(), "k_skip": 3}
    assert setup.candidate(same, 0).init == str(cold / "weights.pt")
    assert setup.candidate(other, 1).init is None  # another architecture: a cold start
    from dipsearch.scoring.evaluate import evaluate

    evaluation = evaluate(setup.candidate(same, 0))
    assert evaluation.error is None and evaluation.iters_run == 8
