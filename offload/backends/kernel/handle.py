"""File descriptors of kernel BPF objects, owned by Python objects.

A live map or program is a file descriptor; closing it drops the process's reference (the
kernel frees the object once nothing else holds it). ``close()`` and the context manager close
it deterministically; a finalizer closes forgotten ones when they are garbage collected, so a
failing test does not leak descriptors. Using a closed handle is EBADF, as in the kernel.
"""

from __future__ import annotations

import errno
import os
import weakref
from types import TracebackType
from typing import Self

from ...errors import ErrnoError
from ...program import bpf_object_name


class KernelHandle:
    """Owns one BPF object file descriptor; ``kind`` and ``name`` make messages readable."""

    kind = "object"

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name
        self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def fd(self) -> int:
        """The descriptor, or EBADF once closed."""
        if not self._finalizer.alive:
            raise ErrnoError(errno.EBADF, f"{self.describe()} is closed; create or load it "
                                          f"again to use it")
        return self._fd

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def describe(self) -> str:
        return f"{self.kind} {self.name!r}" if self.name else f"unnamed {self.kind}"

    def close(self) -> None:
        """Release the descriptor; closing twice is harmless."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {self.name!r} {state}>"


def object_name(name: str) -> bytes:
    """``name`` as the kernel accepts it for maps and programs (see bpf_object_name)."""
    return bpf_object_name(name).encode("ascii")
