"""Encoding and decoding: lossless for every valid encoding, typed errors for the rest."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa import DecodeError, EncodeError, Instruction, decode, encode
from offload.isa.instruction import VALID_OPCODES
from offload.isa.opcodes import LDDW

slots = st.builds(
    lambda op, regs, off, imm: struct.pack("<BBhi", op, regs, off, imm),
    st.sampled_from(sorted(VALID_OPCODES)), st.integers(0, 255),
    st.integers(-(1 << 15), (1 << 15) - 1), st.integers(-(1 << 31), (1 << 31) - 1))


@settings(max_examples=500)
@given(st.lists(slots, max_size=20))
def test_decode_then_encode_is_identity(parts):
    data = b"".join(parts)
    try:
        insns = decode(data)
    except DecodeError as err:
        # Only an lddw with a bad or missing second slot may fail here.
        assert 0 <= err.index < len(parts)
        return
    assert encode(insns) == data
    assert sum(insn.width for insn in insns) == len(parts)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_typed_error(data):
    try:
        insns = decode(data)
    except DecodeError as err:
        assert f"byte offset {err.offset}" in str(err)
        assert 0 <= err.offset <= len(data)
        return
    assert encode(insns) == data


def test_truncated_input_names_the_offset():
    with pytest.raises(DecodeError, match=r"truncated bytecode.*insn 1 \(byte offset 8\)"):
        decode(bytes.fromhex("b700000000000000" "950000"))


def test_unknown_opcode_names_the_offset():
    with pytest.raises(DecodeError, match=r"unknown opcode 0xff at insn 1 \(byte offset 8\)"):
        decode(bytes.fromhex("b700000000000000" "ff00000000000000"))


def test_incomplete_lddw():
    with pytest.raises(DecodeError, match="incomplete lddw"):
        decode(bytes.fromhex("1800000001000000"))
    with pytest.raises(DecodeError, match="invalid lddw second half"):
        decode(bytes.fromhex("1800000001000000" "9500000000000000"))


def test_lddw_is_one_instruction_with_two_slots():
    (insn,) = decode(bytes.fromhex("1801000078563412" "00000000f0debc9a"))
    assert insn.opcode == LDDW and insn.width == 2
    assert insn.imm64 == 0x9ABCDEF012345678
    assert str(insn) == "lddw %r1, 0x9abcdef012345678"


def test_encode_refuses_fields_that_do_not_fit():
    with pytest.raises(EncodeError):
        encode([Instruction(0xB7, dst=16)])
    with pytest.raises(EncodeError):
        encode([Instruction(0xB7, imm=1 << 31)])
    with pytest.raises(EncodeError):
        encode([Instruction(0xB7, off=1 << 15)])
    with pytest.raises(EncodeError):
        encode([Instruction(0xB7, next_imm=1)])
