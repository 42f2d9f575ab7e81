"""Single keys from the terminal for the live views: cbreak mode (each key as it is pressed,
not echoed; Ctrl-C still interrupts) while the view runs, and the terminal's settings put
back when it ends - normally, on an exception, or on SIGTERM (which ends the view as Ctrl-C
does)."""

from __future__ import annotations

import os
import select
import signal
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

KeyReader = Callable[[float], "str | None"]


def _no_keys(timeout: float) -> str | None:
    time.sleep(timeout)
    return None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def cbreak_keys(stream: TextIO | None = None) -> Iterator[KeyReader]:
    """A reader ``read(timeout)``: the next key pressed within ``timeout`` seconds (an escape
    sequence such as Shift-Tab's whole), or None. Without a terminal on ``stream`` (stdin by
    default) it only waits: the view then ends with Ctrl-C."""
    stream = stream if stream is not None else sys.stdin
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd < 0 or not os.isatty(fd):
        yield _no_keys
        return
    saved = termios.tcgetattr(fd)
    previous = signal.signal(signal.SIGTERM, _interrupt)

    def read(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
        if not ready:
            return None
        data = os.read(fd, 32)
        return data.decode("utf-8", "replace") if data else None

    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGTERM, previous)
