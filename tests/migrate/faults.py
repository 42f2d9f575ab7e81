"""Faults injected into the planner's lowering, for the tests that must see a proof catch a
wrong rewrite (``monkeypatch.setattr(compat, "lower_program", wrong_lowering)``)."""

from __future__ import annotations

from dataclasses import replace

from offload.isa import AluOp, InsnClass
from offload.lowering import lower_program


def wrong_lowering(spec, isa):
    """A lowering with a fault: the first XDP_DROP (r0 = 1) becomes XDP_PASS."""
    lowered = lower_program(spec, isa)
    insns = list(lowered.instructions)
    for i, insn in enumerate(insns):
        if insn.cls in (InsnClass.ALU, InsnClass.ALU64) and insn.alu_op == AluOp.MOV \
                and insn.dst == 0 and insn.imm == 1:
            insns[i] = replace(insn, imm=2)
            break
    else:
        raise AssertionError("no r0 = 1 to break")
    return replace(lowered, instructions=tuple(insns))
