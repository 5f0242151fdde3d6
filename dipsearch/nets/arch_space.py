"""An architecture file as a space of one network, so that `restore --arch FILE` fits it where `restore --space`
fits a space's default: the same final rung, restarts and ensemble, only the network given.

The file is a best_arch.toml of a search or a study (its [arch] and [fit] tables) or any ArchSpec TOML/JSON. Its
network becomes the space's fixed settings and its depth the one gene, with that single value: the pipeline
that fits a space's default genome then fits exactly this network with the file's fit settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DipsearchError
from ..families import load_spec, spec_to_dict
from ..store.tomlio import load_toml
from .space import SearchSpace, space_from_dict

FIT_KEYS_FOR_RESTORE = ("lr", "reg_noise_std", "tv")  # not iters: the restore budget decides it


def space_of_arch(path: str | Path) -> SearchSpace:
    """The space whose default decodes to the file's network, with its [fit] settings; errors name the file."""
    path = Path(path)
    spec = load_spec(path)  # a missing, unreadable or invalid file fails here, naming it
    arch = spec_to_dict(spec)
    family = arch.pop("family", "hourglass")
    levels = arch.get("n_up") or arch.get("n_down")
    if not isinstance(levels, list) or not levels:
        raise DipsearchError(f"{path}: the network has no per-level channels (n_up) to read its depth from")
    fit: dict[str, Any] = {}
    if path.suffix.lower() != ".json":
        fit = load_toml(path, "architecture file").get("fit") or {}
    fixed = {**arch, **{k: v for k, v in fit.items() if k in FIT_KEYS_FOR_RESTORE}}
    if not fixed.get("cross_skip"):
        fixed.pop("cross_skip", None)
    data = {
        "name": path.stem,
        "description": f"the network of {path}",
        "family": family,
        "genes": {"depth": {"kind": "choice", "choices": [len(levels)], "default": len(levels)}},
        "fixed": fixed,
    }
    try:
        return space_from_dict(data, source=str(path))
    except DipsearchError as err:
        raise DipsearchError(f"{path} cannot be restored with: {err}") from None
