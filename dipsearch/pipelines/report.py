"""`dipsearch report RUN_DIR`: one HTML page for any run folder, with its images next to it.

The page (RUN_DIR/report.html) links images by relative paths: the run's own PNGs, and what the report
derives (zoomed crops, PSNR curves) in RUN_DIR/report_files/. It shows, where the folder has them: the
observation, outputs and ground truth side by side with zoomed crops; PSNR curves from trace.csv or from a
search's evaluations; summary.json and every CSV as tables; other figures; a gallery of a reproduce run's
images; links to nested run folders (a restore's search and refits), whose pages are written too; and the
settings (config.toml). Only the standard library is imported here at module level: Pillow and matplotlib
load when a report is written.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DipsearchError

PAGE = "report.html"
ASSETS = "report_files"
FIRST = ("observed.png",)
OUTPUTS = ("output.png", "output_ema.png", "output_stopped.png", "best_output.png", "restored.png")
LAST = ("clean.png",)
MAX_ROWS = 300
MAX_DEPTH = 4
CROP = (0.375, 0.375, 0.625, 0.625)  # the central window (fractions of width and height) that is zoomed
ZOOM_PX = 192

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
.strip{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;padding:6px;border:1px solid #ddd}
figure img{display:block;width:192px;height:auto;image-rendering:pixelated}
figcaption{font-size:12px;max-width:192px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}
td.l,th.l{text-align:left}pre{background:#fff;border:1px solid #ddd;padding:8px;font-size:12px;overflow:auto}
img.plot{max-width:900px;width:100%}
"""

# Marks the page once every image has finished: how the browser test knows the images loaded.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', imgs.filter(function (i) {
    return i.complete && i.naturalWidth > 0; }).length);
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "-" if value is None or value == "" else str(value)


def table(rows: list[dict[str, Any]], title: str | None = None) -> str:
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th class='l'>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows[:MAX_ROWS]:
        cells = []
        for c in columns:
            v = row.get(c)
            number = isinstance(v, (int, float)) or _is_number(v)
            cells.append(f"<td{'' if number else ' class=l'}>{_e(_fmt(_num(v)))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>{len(rows) - MAX_ROWS} more rows in the file</p>" if len(rows) > MAX_ROWS else ""
    caption = f"<h3>{_e(title)}</h3>" if title else ""
    return f"{caption}<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return isinstance(v, str) and v.strip() != ""
    except (TypeError, ValueError):
        return False


def _num(v: Any) -> Any:
    return float(v) if _is_number(v) and not str(v).lstrip("-").isdigit() else v


def read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ images


def _load(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def _psnr(a, b) -> float | None:
    if a.shape != b.shape:
        return None
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _crop(src: Path, dst: Path) -> None:
    from PIL import Image

    from ..store.runs import write_atomic

    with Image.open(src) as img:
        w, h = img.size
        box = (
            round(CROP[0] * w),
            round(CROP[1] * h),
            max(round(CROP[2] * w), round(CROP[0] * w) + 1),
            max(round(CROP[3] * h), round(CROP[1] * h) + 1),
        )
        buffer = io.BytesIO()
        img.crop(box).resize((ZOOM_PX, ZOOM_PX), Image.Resampling.NEAREST).save(buffer, format="PNG")
    write_atomic(dst, buffer.getvalue())


def strip(page_dir: Path, images: list[tuple[str, Path]], assets: Path, captions: dict[str, str] | None = None) -> str:
    """Images side by side, then their zoomed central crops; captions say the PSNR against clean.png."""
    if not images:
        return ""
    clean = next((p for name, p in images if p.name == "clean.png"), None)
    reference = _load(clean) if clean else None
    full, zoom = [], []
    assets.mkdir(exist_ok=True)
    for label, path in images:
        rel = path.relative_to(page_dir).as_posix()
        caption = (captions or {}).get(label)
        if caption is None and reference is not None and path != clean:
            value = _psnr(_load(path), reference)
            caption = f"PSNR {value:.2f} dB" if value is not None else "other size"
        text = _e(label) + (f"<br>{_e(caption)}" if caption else "")
        full.append(f"<figure><img src='{_e(rel)}' alt='{_e(label)}'><figcaption>{text}</figcaption></figure>")
        crop = assets / ("crop_" + rel.replace("/", "_"))
        _crop(path, crop)
        zoom.append(
            f"<figure><img src='{_e(crop.relative_to(page_dir).as_posix())}' alt='{_e(label)} crop'>"
            f"<figcaption>{_e(label)} (central crop, zoomed)</figcaption></figure>"
        )
    return f"<div class='strip'>{''.join(full)}</div><div class='strip' style='margin-top:8px'>{''.join(zoom)}</div>"


def comparison(run: Path, assets: Path) -> str:
    names = [*FIRST, *OUTPUTS, *LAST]
    images = [(n.removesuffix(".png"), run / n) for n in names if (run / n).is_file()]
    if not images:
        return ""
    note = (
        "<p>PSNR in the captions: of the saved 8-bit images against clean.png.</p>"
        if (run / "clean.png").is_file()
        else ""
    )
    return f"<h2>Images</h2>{note}{strip(run, images, assets)}"


def gallery(run: Path, assets: Path) -> str:
    """A reproduce run: images/<row>/<set>/<image>/<method>.png, one strip per image."""
    root = run / "images"
    if not root.is_dir():
        return ""
    scores = {}
    if (run / "per_image.csv").is_file():
        for r in read_csv(run / "per_image.csv"):
            scores[(r["row"], r["set"], r["image"], r["method"])] = f"PSNR {float(r['psnr']):.2f} dB"
    parts = ["<h2>Images per row</h2><p>PSNR in the captions: of the float outputs (per_image.csv).</p>"]
    for folder in sorted(p for p in root.glob("*/*/*") if p.is_dir()):
        row, set_name, image = folder.relative_to(root).parts
        files = sorted(folder.glob("*.png"), key=lambda p: (p.name != "observed.png", p.name == "clean.png", p.name))
        captions = {p.stem: scores.get((row, set_name, image, p.stem)) for p in files}
        captions = {k: v for k, v in captions.items() if v}
        parts.append(f"<h3>{_e(row)} / {_e(set_name)} / {_e(image)}</h3>")
        parts.append(strip(run, [(p.stem, p) for p in files], assets, captions))
    return "".join(parts)


# ------------------------------------------------------------------ curves


def _plot(path: Path, draw) -> None:
    from matplotlib.figure import Figure  # the object API: no pyplot, so no backend is chosen or changed

    from ..store.runs import write_figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    draw(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(path, fig)


def trace_curve(run: Path, assets: Path) -> str:
    path = run / "trace.csv"
    if not path.is_file():
        return ""
    rows = read_csv(path)
    if not rows:
        return ""
    columns = [c for c in rows[0] if c == "psnr" or c.startswith("psnr_")]
    summary = _summary(run)
    stopped = summary.get("stopped_iter")

    def series(col: str) -> tuple[list[float], list[float]]:
        pairs = [(float(r["step"]), float(r[col])) for r in rows if r.get(col) not in (None, "")]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def draw(ax) -> None:
        if columns:
            for col in columns:
                ax.plot(*series(col), label=col, lw=1)
            ax.set_ylabel("PSNR (dB)")
        else:  # no ground truth: the loss is all there is
            ax.semilogy(*series("loss"), label="loss", lw=1)
        if stopped:
            ax.axvline(float(stopped), color="k", ls="--", lw=1, label=f"stopped at {stopped}")
        ax.set_xlabel("iteration")

    assets.mkdir(exist_ok=True)
    _plot(assets / "curve_trace.png", draw)
    what = "PSNR per iteration" if columns else "loss per iteration (no clean image: no PSNR)"
    return f"<h2>Curves</h2><p>{what}, from trace.csv</p><img class='plot' src='{ASSETS}/curve_trace.png' alt='trace'>"


def evaluation_curve(run: Path, assets: Path) -> str:
    from ..store.runs import read_jsonl

    rows = [r for r in read_jsonl(run / "evaluations.jsonl") if r.get("fitness") is not None]
    if not rows:
        return ""

    def draw(ax) -> None:
        xs = [r["index"] for r in rows]
        ax.plot(xs, [r["fitness"] for r in rows], "o", ms=4, label="fitness")
        if any(r.get("psnr") is not None for r in rows):
            ax.plot(
                xs, [r["psnr"] if r.get("psnr") is not None else math.nan for r in rows], "s", ms=4, label="true PSNR"
            )
        ax.set_xlabel("evaluation")
        ax.set_ylabel("dB")

    assets.mkdir(exist_ok=True)
    _plot(assets / "curve_evaluations.png", draw)
    return (
        f"<h2>Search</h2><p>fitness and true PSNR of each of the {len(rows)} successful evaluations "
        f"(evaluations.jsonl)</p><img class='plot' src='{ASSETS}/curve_evaluations.png' alt='evaluations'>"
    )


# ------------------------------------------------------------------ tables, figures, settings, sub-runs


def _summary(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _short(value: Any, limit: int = 400) -> Any:
    text = _fmt(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def tables(run: Path) -> str:
    parts = []
    summary = _summary(run)
    if summary:
        # a list of records (e.g. stop-bench's aggregate) reads better as its own table than as one long cell
        nested = {k: v for k, v in summary.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)}
        parts.append(
            table([{"key": k, "value": _short(v)} for k, v in summary.items() if k not in nested], "summary.json")
        )
        parts += [table(v, f"summary.json: {k}") for k, v in nested.items()]
    first = ("summary.csv", "stages.csv")  # the headline tables before the long ones
    for path in sorted(
        run.glob("*.csv"), key=lambda p: (p.name not in first, first.index(p.name) if p.name in first else 0, p.name)
    ):
        if path.name != "trace.csv":
            parts.append(table(read_csv(path), path.name))
    return "<h2>Tables</h2>" + "".join(parts) if parts else ""


def figures(run: Path) -> str:
    shown = {*FIRST, *OUTPUTS, *LAST}
    pngs = [p for p in sorted(run.glob("*.png")) if p.name not in shown]
    if not pngs:
        return ""
    imgs = "".join(f"<p>{_e(p.name)}</p><img class='plot' src='{_e(p.name)}' alt='{_e(p.name)}'>" for p in pngs)
    return f"<h2>Figures</h2>{imgs}"


def settings(run: Path) -> str:
    path = run / "config.toml"
    if not path.is_file():
        return ""
    return f"<h2>Settings</h2><p>config.toml</p><pre>{_e(path.read_text())}</pre>"


def nested_runs(run: Path) -> list[Path]:
    found = []
    for depth in range(1, MAX_DEPTH + 1):
        for config in run.glob("/".join(["*"] * depth) + "/config.toml"):
            folder = config.parent
            if not any(parent in found for parent in folder.parents):
                found.append(folder)
    return sorted(found)


def subruns(run: Path, children: Iterable[Path]) -> str:
    items = []
    for child in children:
        summary = _summary(child)
        best = next(
            (
                summary[k]
                for k in ("psnr_restored", "psnr_stopped", "best_psnr", "psnr_ema")
                if summary.get(k) is not None
            ),
            None,
        )
        extra = f" (PSNR {best:.2f} dB)" if isinstance(best, (int, float)) else ""
        rel = child.relative_to(run).as_posix()
        items.append(f"<li><a href='{_e(rel)}/{PAGE}'>{_e(rel)}</a>{_e(extra)}</li>")
    return f"<h2>Runs inside this one</h2><ul>{''.join(items)}</ul>" if items else ""


def write_report(run_dir: str | Path, nested: bool = True) -> Path:
    """Write RUN_DIR/report.html (and, with nested, the pages of the run folders inside it); returns its path."""
    from ..store.runs import write_atomic

    run = Path(run_dir)
    if not run.is_dir():
        raise DipsearchError(f"{run} is not a folder; give a run folder (e.g. runs/fit/<stamp>_<name>)")
    if not (run / "config.toml").is_file() and not (run / "summary.json").is_file():
        raise DipsearchError(f"{run} is not a dipsearch run folder (it has neither config.toml nor summary.json)")
    assets = run / ASSETS
    children = nested_runs(run)
    if nested:
        for child in children:
            write_report(child, nested=False)
    kind = run.parent.name
    body = [
        f"<h1>{_e(kind)} run: {_e(run.name)}</h1>",
        comparison(run, assets),
        trace_curve(run, assets),
        evaluation_curve(run, assets),
        tables(run),
        figures(run),
        gallery(run, assets),
        subruns(run, children),
        settings(run),
    ]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(kind)} {_e(run.name)}</title>"
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{''.join(body)}</body></html>\n"
    )
    write_atomic(run / PAGE, page.encode())
    return run / PAGE
