import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dipsearch import ArchSpec
from dipsearch.cli import main

REPO = Path(__file__).resolve().parent.parent
SMALL_ARCH = ArchSpec(
    n_down=[8, 8, 8],
    n_up=[8, 8, 8],
    n_skip=[0, 4, 4],
    k_down=[3] * 3,
    k_up=[3] * 3,
    k_skip=[1] * 3,
    upsample=["bilinear"] * 3,
)


def _run_folders(out: Path) -> list[Path]:
    return sorted((out / "fit").glob("*")) if (out / "fit").exists() else []


def test_fit_writes_a_complete_run_folder(tmp_path, image_file, capsys):
    clean = image_file("clean.png", 64, 64)
    out = tmp_path / "runs"
    code = main(["fit", "--clean", str(clean), "--iters", "6", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    (run,) = _run_folders(out)
    assert run.name.endswith("_clean_denoise")
    names = {p.name for p in run.iterdir()}
    assert {
        "config.toml",
        "versions.json",
        "trace.csv",
        "summary.json",
        "observed.png",
        "output.png",
        "output_ema.png",
        "clean.png",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    summary = json.loads((run / "summary.json").read_text())
    assert {
        "iters_run",
        "seconds",
        "psnr_observed",
        "psnr_final",
        "psnr_ema",
        "psnr_peak",
        "iter_peak",
        "params",
    } <= set(summary)
    assert summary["iters_run"] == 6 and summary["params"] == 572_827
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["fit"]["iters"] == 6 and config["problem"]["level"] == 25
    assert ArchSpec.from_dict(config["arch"]) == ArchSpec()
    assert len((run / "trace.csv").read_text().splitlines()) == 7
    assert str(run) in capsys.readouterr().out


def test_fit_accepts_an_arch_file_and_its_fit_settings(tmp_path, image_file):
    arch_file = tmp_path / "best_arch.toml"
    arch_file.write_text(SMALL_ARCH.to_toml() + "\n[fit]\nlr = 0.005\niters = 4\n")
    out = tmp_path / "runs"
    assert (
        main(["fit", "--clean", str(image_file()), "--arch", str(arch_file), "--out", str(out), "--no-progress"]) == 0
    )
    (run,) = _run_folders(out)
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["fit"]["lr"] == 0.005 and config["fit"]["iters"] == 4
    assert ArchSpec.from_dict(config["arch"]) == SMALL_ARCH


def test_fit_on_a_given_observation_without_ground_truth(tmp_path, image_file):
    out = tmp_path / "runs"
    assert main(["fit", str(image_file("noisy.png", 64, 64)), "--iters", "3", "--out", str(out), "--no-progress"]) == 0
    (run,) = _run_folders(out)
    summary = json.loads((run / "summary.json").read_text())
    assert "psnr_final" not in summary and not (run / "clean.png").exists()


def test_super_resolution_and_inpainting_from_the_cli(tmp_path, image_file):
    clean = image_file("clean.png", 64, 64)
    out = tmp_path / "runs"
    assert (
        main(
            [
                "fit",
                "--task",
                "sr",
                "--factor",
                "2",
                "--clean",
                str(clean),
                "--iters",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "fit",
                "--task",
                "inpaint",
                "--mask-kind",
                "region",
                "--clean",
                str(clean),
                "--iters",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(_run_folders(out)) == 2


def _error(tmp_path, capsys, argv):
    out = tmp_path / "runs"
    code = main([*argv, "--out", str(out), "--no-progress", "--iters", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert _run_folders(out) == []  # nothing half-written
    return " ".join(err.split())


def test_missing_observation_file(tmp_path, capsys):
    assert "not found" in _error(tmp_path, capsys, ["fit", str(tmp_path / "nope.png")])


def test_observation_that_is_not_an_image(tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert "notes.png" in _error(tmp_path, capsys, ["fit", str(text)])


def test_mask_of_the_wrong_size(tmp_path, capsys, image_file):
    clean, mask = image_file("clean.png", 64, 64), image_file("mask.png", 32, 32, channels=1)
    message = _error(tmp_path, capsys, ["fit", "--task", "inpaint", "--clean", str(clean), "--mask", str(mask)])
    assert "32x32" in message and "64x64" in message


def test_factor_the_task_cannot_use(tmp_path, capsys, image_file):
    message = _error(tmp_path, capsys, ["fit", "--task", "sr", "--factor", "3", "--clean", str(image_file())])
    assert "factor must be 2, 4 or 8, got 3" in message


def test_image_too_small_for_the_depth(tmp_path, capsys, image_file):
    message = _error(tmp_path, capsys, ["fit", "--clean", str(image_file("tiny.png", 32, 48))])
    assert message == (
        "error: the image is 48x32 px (width x height), which this network pads to 64x32, but an hourglass of depth 5 with "
        "kernels [3, 3, 3, 3, 3] needs a padded size of at least 64x64, i.e. an image of at least 33x33 px; use a "
        "larger image or a space/architecture with fewer levels"
    )


def test_malformed_space_and_arch_files(tmp_path, capsys, image_file):
    bad = tmp_path / "space.toml"
    bad.write_text('[genes.lr]\nkind = "float"\nlow = 1.0\nhigh = 0.1\ndefault = 0.5\n')
    assert "low (1.0) must be below high (0.1)" in _error(
        tmp_path, capsys, ["fit", "--clean", str(image_file()), "--space", str(bad)]
    )
    arch = tmp_path / "arch.toml"
    arch.write_text("[arch]\nn_down = [8, 8]\n")
    assert "n_up has 5 levels but n_down has 2" in _error(
        tmp_path, capsys, ["fit", "--clean", str(image_file()), "--arch", str(arch)]
    )


def test_nothing_to_restore_and_inconsistent_flags(tmp_path, capsys, image_file):
    assert "give an OBSERVATION image" in _error(tmp_path, capsys, ["fit"])
    assert "--demo is a denoising demo" in _error(tmp_path, capsys, ["fit", "--demo", "--task", "sr"])
    assert "inpainting needs a mask" in _error(tmp_path, capsys, ["fit", str(image_file()), "--task", "inpaint"])


def test_bad_noise_level(tmp_path, capsys, image_file):
    message = _error(tmp_path, capsys, ["fit", "--clean", str(image_file()), "--noise", "impulse", "--sigma", "1.5"])
    assert "impulse" in message


def test_argument_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--task", "dehaze"])
    assert info.value.code == 2


def test_cli_py_is_the_same_program(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "fit", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--arch" in done.stdout


def test_compile_on_a_cpu_is_refused(tmp_path, capsys, image_file):
    message = _error(
        tmp_path, capsys, ["fit", "--clean", str(image_file("c.png", 64, 64)), "--device", "cpu", "--compile"]
    )
    assert message == (
        "error: --compile needs a CUDA GPU (torch.compile of the fit is only supported there); this fit runs on cpu"
    )


def test_bf16_where_the_device_has_none_is_refused(tmp_path, capsys, image_file, monkeypatch):
    import torch

    from dipsearch.fitting import loop as engine

    monkeypatch.setattr(engine, "resolve_device", lambda name: torch.device("cuda"))
    fit_module = sys.modules["dipsearch.fitting.fit"]
    monkeypatch.setattr(fit_module, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    message = _error(tmp_path, capsys, ["fit", "--clean", str(image_file("c.png", 64, 64)), "--precision", "bf16"])
    assert message == "error: --precision bf16: this GPU has no bfloat16 support; use --precision fp32"


def test_a_huge_learning_rate_is_an_error_when_nothing_good_remains(tmp_path, capsys, image_file):
    message = _error(
        tmp_path, capsys, ["fit", "--clean", str(image_file("c.png", 64, 64)), "--device", "cpu", "--lr", "1e6"]
    )  # _error runs 2 iterations: the guard looks at the last
    assert message == (
        "error: the fit diverged (at steps [2]) and never reached parameters better than the "
        "untrained network's; lower the learning rate (lr 1e+06)"
    )


def test_a_late_divergence_is_restored_with_a_warning(tmp_path, capsys, image_file, monkeypatch):
    from dipsearch import Problem

    original = Problem.observed_psnr
    calls = {"n": 0}

    def dropping(self, x):  # guard steps 1, 50, 100: the last one looks diverged
        calls["n"] += 1
        return original(self, x) - (30.0 if calls["n"] == 3 else 0.0)

    monkeypatch.setattr(Problem, "observed_psnr", dropping)
    out = tmp_path / "runs"
    code = main(
        [
            "fit",
            "--clean",
            str(image_file("c.png", 64, 64)),
            "--device",
            "cpu",
            "--iters",
            "100",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert (
        "warning: the fit diverged 1 time(s) (at steps [100]) and the guard restored the last good parameters; "
        "the output is that of step 50; a smaller --lr (now 0.01) may help"
    ) in text
    summary = json.loads((_run_folders(out)[0] / "summary.json").read_text())
    assert summary["restores"] == 1 and summary["iters_run"] == 99


def test_a_search_refuses_fast_settings_the_device_cannot_run(tmp_path, capsys, image_file):
    out = tmp_path / "runs"
    code = main(
        [
            "search",
            "ga",
            "--clean",
            str(image_file("c.png", 64, 64)),
            "--device",
            "cpu",
            "--compile",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 2
    assert " ".join(capsys.readouterr().err.split()) == (
        "error: --compile needs a CUDA GPU (torch.compile of the fit is only supported there); this fit runs on cpu"
    )
    assert not (out / "search").exists()
