"""Warm starts: the final weights of a fit saved as weights.pt, and read back as another fit's initial weights.

weights.pt is a torch.save of a plain dict (loadable with weights_only=True):
    format "dipsearch-weights/1", arch (the network spec's file form), channels (output channels),
    state_dict, sha256 (of the tensors' names, dtypes, shapes and bytes: detects a damaged file).
A fit may start from it only with the same architecture and channel count; anything else is a clear error.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ArgumentError
from ..families import spec_from_dict, spec_to_dict
from ..fitting.fit import FitHook, FitResult
from ..store.runs import write_atomic

FORMAT = "dipsearch-weights/1"
WEIGHTS_FILE = "weights.pt"


def state_hash(state: dict[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class WeightsFile:
    arch: dict[str, Any]
    channels: int
    state_dict: dict[str, Tensor]
    sha256: str
    path: Path | None = None

    @property
    def spec(self) -> Any:
        return spec_from_dict(self.arch, source=f"{self.path or 'weights'}: arch")


def save_weights(path: str | Path, state: dict[str, Tensor], spec: Any, channels: int) -> Path:
    """Write weights.pt atomically; returns its path."""
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    data = {
        "format": FORMAT,
        "arch": _plain(spec_to_dict(spec)),
        "channels": int(channels),
        "state_dict": state,
        "sha256": state_hash(state),
    }
    buffer = io.BytesIO()
    torch.save(data, buffer)
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def weights_path(source: str | Path) -> Path:
    """A weights.pt file, or the weights.pt inside a run folder."""
    path = Path(source)
    if path.is_dir():
        inside = path / WEIGHTS_FILE
        if not inside.is_file():
            raise ArgumentError(
                "{init}: the folder {path} holds no {file} (a run folder of a fit saves one)",
                path=path,
                file=WEIGHTS_FILE,
            )
        return inside
    if not path.exists():
        raise ArgumentError("{init}: no such file or folder: {path}", path=path)
    return path


def load_weights_file(source: str | Path) -> WeightsFile:
    """Read and verify a weights file (or a run folder's); every defect is a DipsearchError naming the file."""
    path = weights_path(source)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged file raises many kinds, none of them in words a user can act on
        # torch.save writes a zip archive: a whole one holds more than weights (a saved model), a cut one is damaged.
        with open(path, "rb") as head:
            magic = head.read(4)
        if zipfile.is_zipfile(path):
            reason = "it holds more than weights, e.g. a whole saved model"
        elif magic == b"PK\x03\x04":
            reason = "it is truncated or damaged"
        else:
            reason = "it is not a file torch.save writes"
        raise ArgumentError(
            "{init}: {path} is not a readable weights file ({reason}); give the weights.pt of a dipsearch fit or "
            "pretrain, or the run folder holding it",
            path=path,
            reason=reason,
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArgumentError(
            "{init}: {path} is not a dipsearch weights file (no format {format!r}); give the "
            "weights.pt of a dipsearch fit or pretrain",
            path=path,
            format=FORMAT,
        )
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ArgumentError("{init}: {path} has no valid state_dict", path=path)
    if state_hash(state) != data.get("sha256"):
        raise ArgumentError("{init}: {path} is corrupt: its tensors do not match the hash stored with them", path=path)
    return WeightsFile(data["arch"], int(data["channels"]), state, data["sha256"], path)


def arch_mismatch(weights: WeightsFile, spec: Any, channels: int) -> str | None:
    """Why these weights cannot initialise `spec` with `channels` output channels (None: they can)."""
    own = _plain(spec_to_dict(spec))
    if own != weights.arch:
        keys = sorted(set(own) | set(weights.arch))
        first = next(k for k in keys if own.get(k) != weights.arch.get(k))
        return (
            f"the weights are for another architecture: {first} is {weights.arch.get(first)!r} in the weights "
            f"file, {own.get(first)!r} in this fit"
        )
    if channels != weights.channels:
        return (
            f"the weights are for images of {weights.channels} channel(s), this image has {channels} (grey vs colour)"
        )
    return None


def read_weights(source: str | Path, spec: Any, channels: int) -> WeightsFile:
    """A verified weights file whose architecture is `spec`; a clear error otherwise."""
    weights = load_weights_file(source)
    problem = arch_mismatch(weights, spec, channels)
    if problem and channels != weights.channels and _plain(spec_to_dict(spec)) == weights.arch:
        # another architecture would not help here: the image and the weights disagree on colour
        raise ArgumentError(
            "{init:{path}}: {problem}; restore a {want}-channel image with these weights, use weights learned on "
            "{have}-channel images, or drop {init}",
            path=weights.path,
            problem=problem,
            want=weights.channels,
            have=channels,
        )
    if problem:
        raise ArgumentError(
            "{init:{path}}: {problem}; fit the same architecture (e.g. {spec} with the run's config) or drop {init}",
            path=weights.path,
            problem=problem,
        )
    return weights


def _plain(data: Any) -> Any:
    """Tuples as lists, as the file form after a round trip, so that two specs compare by value."""
    return json.loads(json.dumps(data))


class FinalWeights(FitHook):
    """Keeps the network's weights after the fit's last step in result.extras["weights"] (on the CPU)."""

    name = "final-weights"
    update_capturable = True  # only keeps a reference to the network

    def on_update(self, learner: Any, step: int) -> None:
        self.net = learner.net

    def on_end(self, result: FitResult) -> None:
        net = getattr(self, "net", None)
        if net is not None:
            result.extras["weights"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
