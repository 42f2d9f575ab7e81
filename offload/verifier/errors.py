"""``VerifierError``: a program refused, with where, why, and the path that led there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OffloadError

if TYPE_CHECKING:
    from .log import VerifierLog


class VerifierError(OffloadError):
    """The verifier refused a program.

    ``insn_index`` is the slot of the failing instruction (``lddw`` counts two, as in the
    kernel), ``reason`` one line in the kernel verifier's vocabulary, ``log`` the state lines
    of the failing path (``str(error.log)`` prints them as the kernel would).
    """

    def __init__(self, insn_index: int, reason: str, log: VerifierLog | None = None) -> None:
        self.insn_index = insn_index
        self.reason = reason
        self.log = log
        super().__init__(f"insn {insn_index}: {reason}")


class Reject(Exception):
    """Raised inside the verifier at the failing instruction; turned into VerifierError."""

    def __init__(self, reason: str, insn: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.insn = insn
