"""Reading TOML with user-facing errors, and writing the small subset of TOML that dipsearch emits."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from .errors import DipsearchError


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


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Path):
        return json.dumps(str(value))
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "-_" for c in key)
    return key if bare else json.dumps(key)


def dumps_toml(data: dict[str, Any], _prefix: str = "") -> str:
    """Scalars and lists first, then one [table] per nested dict; None values are left out."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = "\n".join(lines)
    for key, table in tables:
        name = f"{_prefix}{_key(key)}"
        body = dumps_toml(table, _prefix=name + ".").rstrip("\n")
        out = out.rstrip("\n") + ("\n\n" if out else "") + f"[{name}]\n" + body
    return out.rstrip("\n") + "\n" if out else ""
