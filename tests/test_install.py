"""A non-editable install works outside the checkout: the named search spaces travel inside the package."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "dipsearch", "search_spaces")


def test_installed_package_runs_a_search_from_another_folder(tmp_path):
    source, target, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    source.mkdir()
    for name in SOURCES:  # a copy, so the build leaves nothing in the checkout
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    shipped = sorted((target / "dipsearch" / "spaces").glob("*.toml"))
    assert [p.name for p in shipped] == sorted(p.name for p in (REPO / "search_spaces").glob("*.toml"))
    assert all(p.read_text() == (REPO / "search_spaces" / p.name).read_text() for p in shipped)

    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import dipsearch; print(dipsearch.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(target)  # the installed copy, not the checkout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dipsearch",
            "search",
            "ga",
            "--demo",
            "--crop",
            "32",
            "--pop",
            "2",
            "--gens",
            "0",
            "--iters",
            "2",
            "--workers",
            "1",
            "--no-progress",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (run,) = (elsewhere / "runs" / "search").glob("*_ga")
    assert (run / "space.toml").is_file() and json.loads((run / "summary.json").read_text())["evaluations"] == 2
    assert "refit the winner: dipsearch fit --demo --crop 32 --arch" in done.stdout
