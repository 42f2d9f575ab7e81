"""The one error of program lowering: a program that cannot be rewritten for an older ISA."""

from __future__ import annotations

from offload.errors import OffloadError


class LoweringError(OffloadError):
    """A program that cannot be lowered to the target ISA version.

    ``insn_index`` is the slot (``lddw`` counts two) of the original instruction at fault, or
    None when the problem concerns the request as a whole (an unknown target version);
    ``reason`` says why in a sentence the user can act on.
    """

    def __init__(self, reason: str, *, insn_index: int | None, target_version: int) -> None:
        where = f"insn {insn_index}" if insn_index is not None else "the program"
        super().__init__(f"cannot lower {where} to ISA v{target_version}: {reason}")
        self.reason = reason
        self.insn_index = insn_index
        self.target_version = target_version
