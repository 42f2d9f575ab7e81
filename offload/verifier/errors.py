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
