"""dipsearch reproduce: the table with the seed's figures on a tiny generated data set, resuming, bad input."""

import csv
import json
import sys

import pytest
from conftest import synthetic_image

from dipsearch.cli import main
from dipsearch.pipelines.reproduce import Reproduction
from dipsearch.store.imageio import save_image


@pytest.fixture
def data(tmp_path):
    """classic9/ with two 64 px images, set5/ and set14/ with one each."""
    root = tmp_path / "data"
    for folder, names in {"classic9": ["A", "B"], "set5": ["bird"], "set14": ["zebra"]}.items():
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            save_image(synthetic_image(64 + 8 * i, 64), root / folder / f"{name}.png")
    return root


def _summary(run):
    return {(r["row"], r["set"], r["method"]): r for r in csv.DictReader((run / "summary.csv").open())}


def _only_run(root):
    (run,) = (root / "reproduce").iterdir()
    return run


def test_table_with_the_seed_figures(data, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = [
        "reproduce",
        "denoise",
        "sr4",
        "inpaint",
        "--data",
        str(data),
        "--size",
        "64",
        "--iters",
        "30",
        "--methods",
        "dip,nlm,bicubic,lanczos,biharmonic",
        "--out",
        str(out),
        "--no-report",
    ]
    assert main(argv) == 0
    run = _only_run(out)
    table = _summary(run)
    assert table[("denoise", "classic-9", "dip")]["published"] == "31.0"
    assert table[("denoise", "classic-9", "dip")]["images"] == "2"
    assert table[("denoise", "classic-9", "nlm")]["published"] == "30.26"
    assert table[("sr4", "Set5", "bicubic")]["published"] == "28.44"
    assert table[("sr4", "Set14", "bicubic")]["published"] == "26.05"
    assert table[("sr4", "Set14", "lanczos")]["published"] == ""
    assert "standard 11 images" in table[("inpaint", "classic-9", "dip")]["note"]
    assert ("inpaint", "classic-9", "nlm") not in table  # a baseline only appears in its task's rows
    per_image = list(csv.DictReader((run / "per_image.csv").open()))
    assert len(per_image) == 2 * 2 + 2 * 3 + 2 * 2  # denoise 2 images x 2, sr4 2 x 3, inpaint 2 x 2
    assert (run / "images/sr4/set5/bird/lanczos.png").is_file()
    shown = capsys.readouterr().out
    assert "31.00" in shown and "standard 11 images" in shown


def test_dip_stop_and_restore_cells(data, tmp_path):
    out = tmp_path / "runs"
    argv = [
        "reproduce",
        "denoise",
        "--data",
        str(data),
        "--size",
        "64",
        "--images",
        "1",
        "--iters",
        "110",
        "--patience",
        "5",
        "--methods",
        "dip-stop,restore",
        "--search",
        "none",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    run = _only_run(out)
    rows = {r["method"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}
    assert rows["dip-stop"]["stopped_iter"] <= rows["dip-stop"]["iters"] <= 110
    assert rows["restore"]["psnr"] > rows["restore"]["psnr_observed"]
    assert (run / rows["restore"]["folder"] / "restored.png").is_file()
    assert (run / "report.html").is_file()


def test_a_killed_reproduce_resumes_without_recomputing(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    calls = []
    original = Reproduction._method

    def counting(self, method):
        run = original(self, method)

        def wrapped(cell, problem):
            calls.append(cell.key(method))
            if len(calls) == 2 and not resumed:
                raise KeyboardInterrupt  # killed in the second cell
            return run(cell, problem)

        return wrapped

    monkeypatch.setattr(Reproduction, "_method", counting)
    resumed = False
    argv = [
        "reproduce",
        "denoise",
        "--data",
        str(data),
        "--size",
        "64",
        "--methods",
        "nlm",
        "--out",
        str(out),
        "--no-report",
    ]
    assert main(argv) == 130
    run = _only_run(out)
    assert "continue with: dipsearch reproduce --resume" in capsys.readouterr().out
    first = calls[:1]
    assert len((run / "results.jsonl").read_text().splitlines()) == 1
    resumed, calls[:] = True, []
    assert main(["reproduce", "--resume", str(run), "--no-report"]) == 0
    assert not set(first) & set(calls)  # finished cells were not recomputed
    keys = [json.loads(line)["key"] for line in (run / "results.jsonl").read_text().splitlines()]
    assert sorted(keys) == ["denoise/classic9/A/nlm", "denoise/classic9/B/nlm"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["denoise", "sr3"], "error: unknown row 'sr3'; choose from denoise, sr4, sr8, inpaint"),
        (
            ["denoise", "--methods", "dip,srresnet"],
            "error: unknown method 'srresnet'; choose from dip, dip-stop, restore",
        ),
        (
            ["denoise", "--methods", "restore", "--pop", "2", "--gens", "0", "--ensemble", "10"],
            "error: --ensemble 10 is larger than the 9 member(s) --search ga can produce with this budget",
        ),
        (["denoise", "--size", "32"], "error: --size must be at least 64 px"),
        (["denoise", "--size", "big"], "error: --size takes 'full' or a crop side in px, got 'big'"),
        (
            ["denoise", "--methods", "dip-stop", "--iters", "50"],
            "error: --iters 50 is too short for dip-stop: 101 iterations at least",
        ),
        ([], "error: name at least one ROW (denoise, sr4, sr8, inpaint), or --resume RUN_DIR"),
    ],
)
def test_bad_input(argv, message, data, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["reproduce", *argv, "--data", str(data), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "reproduce").exists()


def test_data_folder_without_the_rows_images(data, tmp_path, capsys):
    for f in (data / "set14").iterdir():
        f.unlink()
    assert main(["reproduce", "sr8", "--data", str(data), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"error: row sr8 needs the Set14 images as PNG files in {data / 'set14'}/, and there are none" in err


def test_missing_baseline_package_when_asked(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bm3d", None)
    argv = ["reproduce", "denoise", "--methods", "cbm3d", "--data", str(data), "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    assert "error: baseline cbm3d needs the optional package 'bm3d'" in capsys.readouterr().err


def test_resume_of_another_kind_of_folder(tmp_path, capsys):
    (tmp_path / "config.toml").write_text("[fit]\niters = 5\n")
    assert main(["reproduce", "--resume", str(tmp_path)]) == 2
    assert "is not a reproduce run folder (its config.toml has no [reproduce] table)" in capsys.readouterr().err


def test_missing_data_names_every_folder_the_rows_need(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["reproduce", "denoise", "sr4", "--data", str(tmp_path / "nowhere"), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: row denoise needs the classic-9 images as PNG files in {tmp_path / 'nowhere' / 'classic9'}/" in err
    assert "give --data DIR with classic9/, set5/ and set14/ in it" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
