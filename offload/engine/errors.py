"""``ExecutionError``: a run the engines cannot continue.

Its own module so that every engine module can raise it without importing the interpreter.
"""

from __future__ import annotations

from ..errors import OffloadError


class ExecutionError(OffloadError):
    """A run that cannot go on: bad helper, budget or call depth exceeded, unsupported
    instruction. ``insn_index`` is the slot of the instruction at fault."""

    def __init__(self, reason: str, *, insn_index: int) -> None:
        super().__init__(f"{reason} at insn {insn_index}")
        self.reason = reason
        self.insn_index = insn_index
