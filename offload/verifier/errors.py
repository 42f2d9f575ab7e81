"""``VerifierError``: a program refused, with where, why, and the path that led there."""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING

from ..errors import OffloadError

if TYPE_CHECKING:
    from .log import VerifierLog


class VerifierError(OffloadError):
    """The verifier refused a program.

    ``insn_index`` is the slot of the failing instruction (``lddw`` counts two, as in the
    kernel), ``reason`` one line in the kernel verifier's vocabulary, ``log`` the state lines
    of the failing path (``str(error.log)`` prints them as the kernel would). ``errno`` is
    what BPF_PROG_LOAD would fail with: EINVAL for a malformed program (its shape, fields or
    references), E2BIG for one too large, EACCES for one that is unsafe.
    """

    def __init__(self, insn_index: int, reason: str, log: VerifierLog | None = None,
                 errno: int = _errno.EACCES) -> None:
        self.insn_index = insn_index
        self.reason = reason
        self.log = log
        self.errno = errno
        super().__init__(f"insn {insn_index}: {reason}")


class Reject(Exception):
    """Raised inside the verifier at the failing instruction; turned into VerifierError."""

    def __init__(self, reason: str, insn: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.insn = insn


class VerifierBug(Reject):
    """A broken invariant inside the verifier: the program is refused, never accepted on it.

    The kernel logs "verifier bug" and fails the load with EFAULT rather than trust a state
    it can no longer reason about; ``errno`` is that EFAULT, for the caller that turns the
    refusal into a ``VerifierError``.
    """

    errno = _errno.EFAULT

    def __init__(self, detail: str, insn: int | None = None) -> None:
        super().__init__(f"verifier bug: {detail}", insn)
