"""Entry point of the `dipsearch` script, `python -m dipsearch` and `python cli.py`.

It imports the command line inside its own try block, so Ctrl-C at any moment after the interpreter has
started (while the parser's modules load, or torch inside a command) ends with "interrupted" and
status 130, never with a traceback.
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from .cli import main

        code = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
