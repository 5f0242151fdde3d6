"""Reading TOML (tomllib) with user-facing errors, and writing it (tomli_w) with dipsearch's rule for None."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import DipsearchError


def load_toml(path: str | Path, what: str = "file") -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise DipsearchError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DipsearchError(f"{what} {path} is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise DipsearchError(f"{path} is not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DipsearchError(f"cannot read {what} {path}: {err}") from None


def dumps_toml(data: Mapping[str, Any]) -> str:
    """`data` as TOML, written by tomli_w.

    TOML has no null, so a key whose value is None is left out, at every depth: that is how callers record an
    optional setting that is unset (a variant without init, a run without a time limit), and how readers see it
    (absent). A None inside a list has no such reading and is refused. Paths are written as strings.
    """
    return tomli_w.dumps(_plain(data, ""))


def _plain(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{key}.{k}" if key else str(k)) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise TypeError(f"cannot write {key} to TOML: the list holds None, which TOML cannot write")
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    return value
