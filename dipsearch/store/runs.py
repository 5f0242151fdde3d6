"""The runs/ store: one self-describing folder per fit, search or benchmark.

Every file is written atomically (temporary file in the same folder, then rename), so a killed run leaves
either the old file or the new one, never a torn one. Append-only logs (JSON lines) are written one whole
line per write and flushed; a reader skips a last line that a kill cut short.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..errors import DipsearchError
from .imageio import encode_image
from .tomlio import dumps_toml

DEFAULT_ROOT = Path("runs")


def _umask_mode() -> int:
    # mkstemp creates 0600 files; give run files the permissions a plain open() would.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, data: bytes) -> None:
    """The one way files are put in place: a temporary file in the same folder, synced, then renamed over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _umask_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_figure(path: Path, fig: Any, dpi: int = 110) -> Path:
    """Render a matplotlib figure to PNG and write it atomically, like every other run-folder file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def save_image_atomic(path: Path, image: torch.Tensor) -> Path:
    """Write a PNG atomically, like every other run-folder file: a reader never sees half an image."""
    write_atomic(Path(path), encode_image(image, "PNG"))
    return Path(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete lines of a JSON-lines file; a torn last line (from a kill mid-write) is skipped."""
    rows = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline, so the next append starts a clean line."""
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


def json_safe(data: Any) -> Any:
    """`data` with every non-finite float (inf, -inf, nan) as None: JSON has no infinities, and Python's
    json module would write a bare `Infinity` that other readers reject (e.g. PSNR of a noise-free observation)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def dumps_json(data: Any, **kwargs: Any) -> str:
    """Strict JSON: non-finite floats become null, objects json cannot write become their str()."""
    return json.dumps(json_safe(data), allow_nan=False, default=str, **kwargs)


def rows_to_csv(rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions(device: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
        "git_commit": git_commit(),
        "argv": sys.argv,
    }
    if device and device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    for name in ("dipsearch", "numpy", "deap", "optuna", "pillow", "scikit-image", "dask", "distributed"):
        info[f"pkg_{name}"] = package_version(name)
    return info


@dataclass
class RunDir:
    path: Path

    @classmethod
    def create(cls, root: str | Path, kind: str, tag: str) -> RunDir:
        """A new folder root/kind/<YYYYmmdd-HHMMSS>_<tag>, with a -2, -3 ... suffix if that name is taken."""
        base = Path(root) / kind
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DipsearchError(f"cannot create the run folder under {base}: {err}") from None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}_{tag}"
        for n in range(1, 1000):
            path = base / (name if n == 1 else f"{name}-{n}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise DipsearchError(f"could not find a free run folder name under {base}")

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not path.is_dir():
            raise DipsearchError(f"no such run folder: {path} (check the path; run folders are under runs/<kind>/)")
        if not (path / "config.toml").is_file():
            raise DipsearchError(f"{path} is not a dipsearch run folder (it has no config.toml)")
        return cls(path)

    def discard(self) -> None:
        """Remove the folder: used when a run fails before it produced anything worth keeping."""
        shutil.rmtree(self.path, ignore_errors=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        write_atomic(self.file(name), text.encode())
        return self.file(name)

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, dumps_json(data, indent=2) + "\n")

    def write_toml(self, name: str, data: dict[str, Any]) -> Path:
        return self.write_text(name, dumps_toml(data))

    def write_csv(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        return self.write_text(name, rows_to_csv(rows))

    def save_image(self, name: str, image: torch.Tensor) -> Path:
        return save_image_atomic(self.file(name), image)

    def append_jsonl(self, name: str, row: dict[str, Any]) -> None:
        line = (dumps_json(row) + "\n").encode()
        _drop_torn_tail(self.file(name))
        with open(self.file(name), "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        return read_jsonl(self.file(name))

    def write_versions(self, device: str | None = None) -> Path:
        return self.write_json("versions.json", versions(device))
