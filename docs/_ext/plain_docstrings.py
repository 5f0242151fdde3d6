"""Show the package's docstrings as they are written: plain text with `code` in backticks, not reStructuredText.

The docstrings are written for `help()` and editors: prose paragraphs, aligned tables, indented examples.
Read as reStructuredText, an indented line or a `*args` is markup (or an error under `sphinx -W`). So each
paragraph is either prose, with backtick spans shown as code and every other markup character escaped, or,
when it has any layout (indentation, a list, a table, a doctest), a literal block that keeps its layout.
"""

from __future__ import annotations

import re
from typing import Any

_LAYOUT = re.compile(r"^(\s|[-*+•] |\d+[.)] |>>>|[=\-~^]{3,}\s*$|\.\. )")
_MARKUP = re.compile(r"([\\*|_\[\]<>:])")


def _code_span(text: str) -> str:
    text = text.strip()
    return f"``{text}``" if text else ""


def _prose(line: str) -> str:
    """One prose line: `spans` become inline literals, other markup characters are escaped."""
    parts = line.split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: no spans, escape them all
        return _MARKUP.sub(r"\\\1", line).replace("`", "\\`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            span = _code_span(part)
            # an inline literal must be set off from the words around it; "\ " is an invisible separator
            before = "\\ " if out and out[-1][-1:].isalnum() else ""
            out.append(before + span + ("\\ " if i + 1 < len(parts) and parts[i + 1][:1].isalnum() else ""))
        else:
            out.append(_MARKUP.sub(r"\\\1", part))
    return "".join(out)


def _paragraphs(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line.rstrip())
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def plain_lines(lines: list[str]) -> list[str]:
    """reStructuredText that shows `lines` (a dedented docstring) as written."""
    out: list[str] = []
    for block in _paragraphs(lines):
        if any(_LAYOUT.match(line) for line in block):
            out += ["::", "", *("    " + line for line in block), ""]
        else:
            out += [*(_prose(line) for line in block), ""]
    return out


def _process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    lines[:] = plain_lines(lines)


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
