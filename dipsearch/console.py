"""The one way dipsearch makes a rich console, for the CLI and for library calls given none."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr); when that is not a terminal, lines are never wrapped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    # A file, pipe or notebook capture has no width: rich would wrap at 80 columns and cut table cells to "tri…",
    # and a copied command would break across lines.
    return Console(stderr=stderr, width=100_000, soft_wrap=True)
