"""The assembler and the listings: syntax, errors with line numbers, and round trips."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa import AsmError, Instruction, PseudoSrc, assemble, decode, listing, to_asm
from offload.isa.instruction import VALID_OPCODES
from offload.isa.opcodes import LDDW


def test_labels_and_default_exit_label():
    insns = assemble("""
        mov %r0, 0          # comment
        jeq %r1, 0, exit
        ja done
        mov %r0, 1
    done:
        exit
    """)
    assert [str(i) for i in insns] == ["mov %r0, 0", "jeq %r1, 0, +2", "ja +1", "mov %r0, 1",
                                       "exit"]


def test_pseudo_lddw_forms_round_trip():
    text = "lddw %r1, map_fd(3)\nlddw %r2, map_value(4)+16\nlddw %r3, map_idx(0)\n" \
           "lddw %r4, map_idx_value(1)+8\nlddw %r5, btf_id(7)\nexit\n"
    insns = assemble(text)
    assert [i.src for i in insns[:5]] == [PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE,
                                          PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE,
                                          PseudoSrc.BTF_ID]
    assert insns[1].imm == 4 and insns[1].next_imm == 16
    assert to_asm(insns) == text


def test_atomics_and_calls():
    insns = assemble("lock fetch add32 [%r10-8], %r1\nlock cmpxchg [%r1+4], %r2\n"
                     "call 12\ncall kfunc 5\ncall %r3\ncall local fn\nexit\nfn:\nexit")
    assert [str(i) for i in insns] == [
        "lock fetch add32 [%r10-8], %r1", "lock cmpxchg [%r1+4], %r2", "call 12",
        "call kfunc 5", "call %r3", "call local +1", "exit", "exit"]


@pytest.mark.parametrize("text, message", [
    ("mov %r0", "line 1: mov takes 2 operand"),
    ("nop", "unknown mnemonic 'nop'"),
    ("mov %r0, 1\nja nowhere", "line 2: undefined label 'nowhere'"),
    ("x:\nx:\nexit", "line 2: duplicate label 'x'"),
    ("mov %r16, 1", "invalid register"),
    ("ldxw %r0, [%r1+]", "invalid memory operand"),
    ("mov %r0, 0x1_0000_0000", "does not fit in 32 bits"),
    ("lddw %r0, map_fd(1)+4", "map_fd takes no offset"),
    ("lock fetch xchg [%r1], %r2", "always fetches"),
    ("ja +40000", "does not fit in 16 bits"),
])
def test_errors_name_the_line(text, message):
    with pytest.raises(AsmError, match=message.replace("(", r"\(").replace("+", r"\+")):
        assemble(text)


def _field(bits: int) -> st.SearchStrategy[int]:
    """A signed field: often zero or a value some opcode requires (widths, sizes, call kinds),
    otherwise anything - most opcodes reserve some fields, and drawing them uniformly would
    throw away nine draws in ten."""
    return st.one_of(st.sampled_from([0, 1, 2, 8, 16, 32, 64]),
                     st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))


valid_insns = st.builds(
    lambda op, dst, src, off, imm: struct.pack("<BBhi", op, src << 4 | dst, off, imm),
    st.sampled_from(sorted(VALID_OPCODES - {LDDW})), st.integers(0, 10),
    st.one_of(st.just(0), st.integers(0, 10)), _field(16), _field(32),
).map(lambda raw: decode(raw)[0]).filter(lambda insn: insn.field_problem() is None)


@settings(max_examples=500)
@given(valid_insns)
def test_every_valid_instruction_prints_and_reassembles(insn):
    assert assemble(str(insn)) == [insn]


@settings(max_examples=300)
@given(st.integers(0, (1 << 64) - 1), st.integers(0, 10))
def test_lddw_immediates(value, reg):
    insn = Instruction(LDDW, reg, 0, 0, *divmod(value, 1 << 32)[::-1])  # type: ignore[misc]
    insn = insn.with_fields(imm=insn.imm - (1 << 32) if insn.imm >= 1 << 31 else insn.imm)
    assert assemble(str(insn)) == [insn]


def test_invalid_fields_print_as_raw_and_reassemble():
    odd = Instruction(0x07, dst=1, src=3, imm=5)  # add with a stray src register
    assert odd.field_problem() == "BPF_ALU64 uses reserved fields"
    assert str(odd).startswith(".raw 0x")
    assert assemble(str(odd)) == [odd]


def test_listing_shows_slots_labels_and_words():
    text = listing(assemble("lddw %r0, 1\nja +0\nexit"), raw=True)
    assert "    0: lddw %r0, 0x1" in text
    assert "L3:" in text and "    2: ja L3" in text
    assert "0000000000000000" in text
