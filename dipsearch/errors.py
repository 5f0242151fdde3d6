"""The one exception family for mistakes a user can make (bad file, bad argument, bad space)."""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from typing import Any


class DipsearchError(Exception):
    """A user-caused error: the message says what was wrong and how to fix it.

    The CLI prints it without a traceback and exits with status 2.
    """


class ArgumentError(DipsearchError):
    """A bad value given to a library call, in words that fit both a Python caller and the command line.

    The message is a str.format template. A field that is one of the keyword values is that value; any other
    field names an argument of the call: `{workers}`, or `{device:cpu}` for an argument with a value to give.
    Python callers read `workers` and `device=cpu`; the CLI renders the same error with the flags that set
    those arguments (`--workers`, `--device cpu`), so one check serves both:

        raise ArgumentError("{workers} must be >= 1, got {value}", value=workers)
    """

    def __init__(self, template: str, **values: Any):
        self.template, self.values = template, values
        super().__init__(self.render())

    def render(self, flags: Mapping[str, str] | None = None) -> str:
        """The message; with `flags` (argument name -> flag), each argument named by its flag."""
        return _ArgumentNames(flags).vformat(self.template, (), self.values)

    def __reduce__(self):  # noqa: ANN204 - pickle's protocol
        # Raised in a worker process, it crosses to the driver by pickle; the default would rebuild it from the
        # rendered message, losing the argument names the CLI turns into flags.
        return functools.partial(type(self), self.template, **self.values), ()


def check_at_least(argument: str, value: int, low: int) -> None:
    """The one `>= low` check of an integer argument: "workers must be >= 1, got 0" (the CLI: "--workers ...")."""
    if value < low:
        raise ArgumentError("{" + argument + "} must be >= {low}, got {value}", low=low, value=value)


class _Argument(str):
    """A template field that names an argument rather than a value."""


class _ArgumentNames(string.Formatter):
    def __init__(self, flags: Mapping[str, str] | None):
        self.flags = flags

    def get_value(self, key, args, kwargs):  # noqa: ANN001 - string.Formatter's signature
        return kwargs[key] if key in kwargs else _Argument(key)

    def format_field(self, value: Any, spec: str) -> str:
        if not isinstance(value, _Argument):
            return format(value, spec)
        flag = self.flags.get(value) if self.flags is not None else None
        if flag is None:
            return f"{value}={spec}" if spec else str(value)
        return f"{flag} {spec}" if spec else flag
