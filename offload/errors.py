"""The one error root of the toolkit, and errno-named errors.

Every error raised on purpose derives from :class:`OffloadError`; each layer adds its own
subclass next to the code that raises it (``DecodeError`` in the ISA codec, ``ExecutionError``
in the engine, ...). Messages are full sentences a user can act on. Where the bpf(2) uAPI would
fail with an errno, :class:`ErrnoError` carries the same name (ENOENT, E2BIG, ...) so users
read the vocabulary they know.
"""

from __future__ import annotations

import errno as _errno

#: Names as Linux prints them where Python's errno module has none (524, kernel-internal but
#: leaked by bpf(2)) or prefers an alias (95 is ENOTSUP there, EOPNOTSUPP in the kernel).
KERNEL_ERRNO_NAMES = {524: "ENOTSUPP", _errno.EOPNOTSUPP: "EOPNOTSUPP"}


class OffloadError(Exception):
    """Root of every error the toolkit raises on purpose."""


class ErrnoError(OffloadError):
    """A failure the bpf(2) uAPI reports with an errno: ``ENOENT: key not found``."""

    def __init__(self, code: int, message: str) -> None:
        self.errno = code
        self.name = KERNEL_ERRNO_NAMES.get(code) or _errno.errorcode.get(code, f"E{code}")
        self.detail = message
        super().__init__(f"{self.name}: {message}")
