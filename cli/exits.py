"""Exit codes of ``offload-migrate`` and the errors that lead to each.

The service classifies every failure into an error kind (service/errors.py), on this side of
the control socket and on the daemon's, which sends the kind with its error; this module maps
kinds to exit codes, so a refusal on the device exits the same way as one on this side.

    0 ok    1 refused or incompatible    2 usage    3 integrity failure (seal checks)

The service's errors are imported when first needed, not with this module: ``main`` imports
it to parse arguments, and ``--help`` should not wait for the snapshot stack.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.errors import ErrorKind, UsageError

__all__ = ["EXIT_FOR_KIND", "Exit", "UsageError", "classify", "exit_for"]


class Exit(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    INTEGRITY = 3


#: Error kinds (service.errors.ErrorKind, a StrEnum: its members are these strings) to exit
#: codes. A malformed request is the client's fault, not the user's: a refusal, as is a
#: failure of the daemon itself.
EXIT_FOR_KIND: dict[str, Exit] = {
    "invalid": Exit.REFUSED,
    "usage": Exit.USAGE,
    "refused": Exit.REFUSED,
    "integrity": Exit.INTEGRITY,
    "internal": Exit.REFUSED,
}


def exit_for(kind: ErrorKind) -> Exit:
    return EXIT_FOR_KIND.get(kind, Exit.REFUSED)


def classify(exc: BaseException) -> tuple[int, Exit]:
    """(errno, exit code) for an error."""
    from service.errors import classify as classify_kind

    code, kind = classify_kind(exc)
    return code, exit_for(kind)


def __getattr__(name: str) -> Any:
    """``UsageError``, the service's, for the commands (loaded on first use)."""
    if name == "UsageError":
        from service.errors import UsageError

        return UsageError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
