"""How the service says no: an errno and an error kind, never an exit code.

Every failure the service raises or passes on is classified here, once, into the errno name the
control socket sends (as Linux prints it) and an :class:`ErrorKind` that says what went wrong.
What a kind means to a user - the exit code of a command - is the command line's business
(cli/exits.py), so the wire carries kinds and the daemon knows nothing of exit codes.
"""

from __future__ import annotations

import errno as _errno
from enum import StrEnum

from migrate.errors import SnapshotError
from migrate.freshness import StaleSnapshot
from migrate.keys import KeyFileError
from migrate.seal import SealError
from offload.errors import KERNEL_ERRNO_NAMES, ErrnoError, OffloadError


class ErrorKind(StrEnum):
    """What went wrong, as the control socket's error map names it (``kind``)."""

    #: the request is malformed: bytes that are not msgpack-RPC, an unknown method, a
    #: parameter missing, unknown, of the wrong type or out of range
    INVALID = "invalid"
    #: well-formed values the service cannot use: an unknown type name or traffic kind, a file
    #: that cannot be read
    USAGE = "usage"
    #: the device, the verifier, a compatibility plan or a freshness policy refuses
    REFUSED = "refused"
    #: data whose digest, signature, MAC or encryption does not verify
    INTEGRITY = "integrity"
    #: the service itself failed; the message says how
    INTERNAL = "internal"


class ServiceError(OffloadError):
    """A failure of the service, with its errno and kind."""

    kind: ErrorKind = ErrorKind.REFUSED
    errno: int = _errno.EINVAL


class Refused(ServiceError):
    """A request the device refuses, with the errno ``bpf()`` or the kernel would give."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


class UsageError(ServiceError):
    """Values that do not make sense together, or a file that cannot be read."""

    kind = ErrorKind.USAGE


class InvalidRequest(ServiceError):
    """A malformed request; ``field`` names the parameter at fault, if one is."""

    kind = ErrorKind.INVALID

    def __init__(self, message: str, *, code: int = _errno.EINVAL,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.errno = code
        self.field = field


def errno_name(code: int) -> str:
    return KERNEL_ERRNO_NAMES.get(code) or _errno.errorcode.get(code, f"E{code}")


#: an error caused by one of these is about a file the user named: usage, whatever layer
#: noticed it (a snapshot, an object, a key)
UNREADABLE = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def classify(exc: BaseException) -> tuple[int, ErrorKind]:
    """(errno, kind) for an error, most specific class first."""
    if isinstance(exc, ServiceError):
        return exc.errno, exc.kind
    if isinstance(exc, SealError):
        return _errno.EBADMSG, ErrorKind.INTEGRITY
    cause = exc.__cause__
    if isinstance(exc, OffloadError) and isinstance(cause, UNREADABLE):
        return cause.errno or _errno.EIO, ErrorKind.USAGE  # a file the user named
    if isinstance(exc, KeyFileError):
        return _errno.EINVAL, ErrorKind.USAGE
    if isinstance(exc, StaleSnapshot):
        return _errno.ESTALE, ErrorKind.REFUSED
    if isinstance(exc, SnapshotError):
        return _errno.EINVAL, ErrorKind.REFUSED
    if isinstance(exc, ErrnoError):
        return exc.errno, ErrorKind.REFUSED
    code = getattr(exc, "errno", None)
    if isinstance(exc, OffloadError):
        return code if isinstance(code, int) else _errno.EINVAL, ErrorKind.REFUSED
    if isinstance(exc, OSError):
        return exc.errno or _errno.EIO, ErrorKind.USAGE
    return _errno.EIO, ErrorKind.INTERNAL
