"""dipsearch report: pages for run folders, their links, and rendering in a real headless browser."""

import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dipsearch.cli import main
from dipsearch.pipelines.report import write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs["href"])


def _sources(page: Path) -> Sources:
    parser = Sources()
    parser.feed(page.read_text())
    return parser


@pytest.fixture
def fit_run(image_file, tmp_path):
    clean = image_file(h=64, w=64)
    argv = [
        "fit",
        "--clean",
        str(clean),
        "--space",
        "demo",
        "--iters",
        "110",
        "--stop",
        "emv",
        "--patience",
        "10",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(argv) == 0
    (run,) = (tmp_path / "fit").iterdir()
    return run


def test_fit_report_links_only_files_that_exist(fit_run):
    page = write_report(fit_run)
    sources = _sources(page)
    text = page.read_text()
    assert {"observed.png", "output_stopped.png", "clean.png", "report_files/curve_trace.png"} <= set(sources.images)
    assert all((fit_run / src).is_file() for src in sources.images)
    assert "report_files/crop_output_stopped.png" in sources.images
    assert "summary.json" in text and "psnr_stopped" in text and "config.toml" in text
    assert re.search(r"output_stopped<br>PSNR \d+\.\d\d dB", text)


def test_nested_runs_get_their_own_pages(fit_run, tmp_path):
    outer = tmp_path / "outer"
    shutil.copytree(fit_run.parent, outer / "fit")
    (outer / "config.toml").write_text("[restore]\nsearch = 'none'\n")
    page = write_report(outer)
    (link,) = _sources(page).links
    assert link == f"fit/{fit_run.name}/report.html" and (outer / link).is_file()


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert (
        f"error: {tmp_path} is not a dipsearch run folder (it has neither config.toml nor summary.json)"
        in capsys.readouterr().err
    )
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a folder; give a run folder" in capsys.readouterr().err


def test_report_module_imports_nothing_heavy():
    code = (
        "import sys, dipsearch.errors; before = set(sys.modules); import dipsearch.pipelines.report; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; print(sorted(new))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not {"matplotlib", "PIL", "numpy", "torch"} & set(eval(out))


def _browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def _browse(argv: list[str], output: Path) -> None:
    """Run the browser with its output in a file: a pipe would keep run() waiting on helper processes that
    outlive the browser; its own session lets the test end every process it started."""
    with open(output, "w") as handle:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=180)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.skipif(
    _browser() is None,
    reason="no headless browser installed (apt-get install chromium); the page is still checked for broken links above",
)
def test_report_renders_in_a_headless_browser(fit_run, tmp_path):
    import numpy as np
    from PIL import Image

    page = write_report(fit_run)
    flags = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom_file = tmp_path / "dom.html"
    _browse([*flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()], dom_file)
    dom = dom_file.read_text()
    total = re.search(r'data-images-total="(\d+)"', dom)
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert total and loaded, "the page's load script did not run"
    assert int(total.group(1)) >= 8 and loaded.group(1) == total.group(1)
    shot = tmp_path / "shot.png"
    _browse([*flags, "--window-size=1000,900", f"--screenshot={shot}", page.as_uri()], tmp_path / "shot.log")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 20  # not a blank page
    # the observation, the outputs and their crops put many distinct colours on screen
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000
