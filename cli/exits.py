"""Exit codes of ``offload-migrate`` and the errors that lead to each.

One table for the commands and the control socket alike: the daemon sends the exit class with
every error (docs/control-socket.md), so a refusal on the device exits the same way as one on
this side.

    0 ok    1 refused or incompatible    2 usage    3 integrity failure (seal checks)
"""

from __future__ import annotations

import errno as _errno
from enum import IntEnum

from migrate.errors import SnapshotError
from migrate.freshness import StaleSnapshot
from migrate.keys import KeyFileError
from migrate.seal import SealError
from offload.errors import KERNEL_ERRNO_NAMES, ErrnoError, OffloadError


class Exit(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    INTEGRITY = 3


class CliError(OffloadError):
    """A failure of the command itself, with the exit code it leads to."""

    exit_code = Exit.REFUSED
    errno = _errno.EINVAL


class UsageError(CliError):
    """Arguments that do not make sense together, or a file that cannot be read."""

    exit_code = Exit.USAGE


def errno_name(code: int) -> str:
    return KERNEL_ERRNO_NAMES.get(code) or _errno.errorcode.get(code, f"E{code}")


def classify(exc: BaseException) -> tuple[int, Exit]:
    """(errno, exit code) for an error, most specific class first."""
    if isinstance(exc, CliError):
        return exc.errno, exc.exit_code
    if isinstance(exc, SealError):
        return _errno.EBADMSG, Exit.INTEGRITY
    if isinstance(exc, KeyFileError):
        return _errno.EINVAL, Exit.USAGE
    if isinstance(exc, StaleSnapshot):
        return _errno.ESTALE, Exit.REFUSED
    if isinstance(exc, SnapshotError):
        return _errno.EINVAL, Exit.REFUSED
    if isinstance(exc, ErrnoError):
        return exc.errno, Exit.REFUSED
    code = getattr(exc, "errno", None)
    if isinstance(exc, OffloadError):
        return code if isinstance(code, int) else _errno.EINVAL, Exit.REFUSED
    if isinstance(exc, OSError):
        return exc.errno or _errno.EIO, Exit.USAGE
    return _errno.EIO, Exit.REFUSED
