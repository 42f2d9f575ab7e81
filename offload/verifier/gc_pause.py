"""The cyclic garbage collector paused while a program is verified.

Verification keeps tens of thousands of states alive (checkpoints, their registers and stack
slots, the path history), and allocates far more that die young. The cyclic collector walks
every live container each time its thresholds trip, so a large program spends a fifth of its
time in full collections that free nothing: the verifier's structures hold no reference
cycles, and reference counting frees what dies. The pause is process-wide, so it nests:
verifications in several threads pause it once and the last one to finish resumes it, and
only if it was running before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
