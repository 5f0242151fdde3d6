"""A kill (SIGTERM) handled as Ctrl-C is: the command's clean-up runs and it says what was lost.

Python turns SIGINT into KeyboardInterrupt but dies on SIGTERM without unwinding, so a command killed by a job
scheduler or `kill` would leave its half-written run folder behind. Inside `terminated_as_interrupt()` SIGTERM
raises KeyboardInterrupt too; the yielded list says which signal came (empty for Ctrl-C).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNAL_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as a shell reports it


@contextmanager
def terminated_as_interrupt() -> Iterator[list[int]]:
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield received
        return

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_status(received: list[int]) -> int:
    return SIGNAL_STATUS[received[0] if received else signal.SIGINT]
