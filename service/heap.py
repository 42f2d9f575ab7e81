"""Freed heap back to the system after a large transfer.

A restore decodes a snapshot's map chunks (about 100 KB each: below glibc's mmap threshold,
so they come from the heap) and frees them once the maps hold the contents; glibc keeps freed
heap for reuse, so without a trim a daemon's RSS would keep the size of every snapshot it
restored or wrote on top of what its maps hold. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

from typing import Any

_trim: Any = None


def release_freed_heap() -> None:
    """``malloc_trim(0)`` where the C library has it."""
    global _trim
    if _trim is None:
        import ctypes
        try:
            _trim = ctypes.CDLL(None).malloc_trim
        except (AttributeError, OSError):
            _trim = False
    if _trim:
        _trim(0)
