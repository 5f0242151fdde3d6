"""Entry point of the `dipsearch` script, `python -m dipsearch` and `python cli.py`.

It imports the command line inside its own try block, so Ctrl-C at any moment after the interpreter has
started (while the parser's modules load, or torch inside a command) ends with "interrupted" and
status 130, never with a traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any


def run() -> None:
    try:
        from .cli import main

        code = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def quiet_worker(init: str, *args: Any) -> None:
    """Initializer of worker processes: Ctrl-C, which the terminal sends to every process of the command,
    ends a worker without a traceback (the driver reports the interruption and how to resume).

    `init` ("module:function", then called with `args`) is imported only after the handler is in place:
    unpickling this initializer must not import torch, which takes seconds.
    """
    signal.signal(signal.SIGINT, _exit_quietly)
    module, name = init.split(":")
    getattr(importlib.import_module(module), name)(*args)


def _exit_quietly(signum: int, frame: Any) -> None:
    os._exit(128 + signum)
