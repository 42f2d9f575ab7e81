"""Exit codes of ``offload-migrate`` and the errors that lead to each.

The service classifies every failure into an error kind (service/errors.py), on this side of
the control socket and on the daemon's, which sends the kind with its error; this module maps
kinds to exit codes, so a refusal on the device exits the same way as one on this side.

    0 ok    1 refused or incompatible    2 usage    3 integrity failure (seal checks)
"""

from __future__ import annotations

from enum import IntEnum

from service.errors import ErrorKind, UsageError
from service.errors import classify as classify_kind

__all__ = ["EXIT_FOR_KIND", "Exit", "UsageError", "classify", "exit_for"]


class Exit(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    INTEGRITY = 3


#: A malformed request is the client's fault, not the user's: a refusal, as is a failure of
#: the daemon itself.
EXIT_FOR_KIND = {
    ErrorKind.INVALID: Exit.REFUSED,
    ErrorKind.USAGE: Exit.USAGE,
    ErrorKind.REFUSED: Exit.REFUSED,
    ErrorKind.INTEGRITY: Exit.INTEGRITY,
    ErrorKind.INTERNAL: Exit.REFUSED,
}


def exit_for(kind: ErrorKind) -> Exit:
    return EXIT_FOR_KIND.get(kind, Exit.REFUSED)


def classify(exc: BaseException) -> tuple[int, Exit]:
    """(errno, exit code) for an error."""
    code, kind = classify_kind(exc)
    return code, exit_for(kind)
