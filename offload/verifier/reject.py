"""``Reject`` and ``VerifierBug``: how the checks stop at an instruction.

Apart from :mod:`.errors` (the public ``VerifierError``, which carries a log of states) so
that the state and scalar modules can raise them without importing the log.
"""

from __future__ import annotations

import errno as _errno


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
