"""may_goto (0xe5, Linux's BPF_JMP | BPF_JCOND with src BPF_MAY_GOTO): codec, field checks,
assembler and listings."""

from __future__ import annotations

import pytest

from offload.isa import (
    MAY_GOTO,
    DecodeError,
    Instruction,
    assemble,
    decode,
    encode,
    listing,
    to_asm,
)
from offload.isa.structure import build_layout
from offload.isa.versions import required_version

LOOP = """
mov %r0, 0
top:
may_goto done
add %r0, 1
ja top
done:
exit
"""


def test_decode_encode_and_text():
    raw = bytes.fromhex("e500020000000000")
    (insn,) = decode(raw)
    assert insn == Instruction(MAY_GOTO, off=2) and insn.opcode == 0xE5
    assert insn.is_may_goto and insn.is_jump and not insn.is_unconditional_jump
    assert insn.jump_offset == 2 and insn.field_problem() is None
    assert encode([insn]) == raw
    assert str(insn) == "may_goto +2"
    assert str(Instruction(MAY_GOTO, off=-3)) == "may_goto -3"
    assert assemble("may_goto +2\nmay_goto -1\nmay_goto 0") == [
        Instruction(MAY_GOTO, off=2), Instruction(MAY_GOTO, off=-1), Instruction(MAY_GOTO)]


def test_labels_round_trip():
    insns = assemble(LOOP)
    assert insns[1] == Instruction(MAY_GOTO, off=2)
    text = to_asm(insns)
    assert "may_goto L4" in text
    assert assemble(text) == insns
    assert decode(encode(insns)) == insns
    assert "    1: may_goto L4" in listing(insns)


@pytest.mark.parametrize(("fields", "problem"), [
    ({"src": 1}, "invalid may_goto imm 0: BPF_JCOND src 1 is not BPF_MAY_GOTO (0)"),
    ({"src": 2}, "BPF_JCOND src 2 is not BPF_MAY_GOTO (0)"),
    ({"dst": 1}, "invalid may_goto imm 0: dst_reg and imm must be 0"),
    ({"imm": 7}, "invalid may_goto imm 7: dst_reg and imm must be 0"),
])
def test_reserved_fields_are_refused(fields, problem):
    insn = Instruction(MAY_GOTO, off=1, **fields)
    assert insn.field_problem() is not None and problem in insn.field_problem()
    assert str(insn).startswith(".raw ")  # not a may_goto: listed as its raw word
    assert decode(encode([insn])) == [insn]  # decodes; the field check refuses it
    with pytest.raises(Exception, match="invalid may_goto"):
        build_layout([insn, Instruction(0x95)])


@pytest.mark.parametrize("opcode", [0xED, 0xE6, 0xEE])
def test_other_jcond_encodings_are_unknown(opcode):
    """Only BPF_JMP | BPF_K carries JCOND; a register source or the JMP32 class is undefined."""
    with pytest.raises(DecodeError, match=f"unknown opcode {opcode:#04x}"):
        decode(bytes([opcode]) + bytes(7))


def test_isa_level_and_structure():
    """Clang emits may_goto at every -mcpu level: no ISA version above v1 is needed. A loop
    that only may_goto leaves is not an inescapable loop."""
    insns = assemble(LOOP)
    assert required_version(insns[1]) == 1
    layout = build_layout(insns)
    assert layout.size == 5
    with pytest.raises(Exception, match="infinite loop"):
        build_layout(assemble("mov %r0, 0\ntop:\nadd %r0, 1\nja top\nexit"))
