"""Raw bytecode to instructions and back (RFC 9669 section 3, little-endian encoding).

Each slot is 8 bytes: opcode, a byte with dst in the low and src in the high nibble, a signed
16-bit offset and a signed 32-bit immediate. ``lddw`` takes a second slot whose only non-zero
field may be the immediate. Decoding is lossless for every opcode the RFC defines; anything
else is a :class:`DecodeError` naming the byte offset and the instruction index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import OffloadError
from .instruction import SLOT, VALID_OPCODES, EncodeError, Instruction, check_fields
from .opcodes import LDDW

SLOT_SIZE = SLOT.size  # 8


class DecodeError(OffloadError):
    """Bytecode that is not a sequence of valid instruction encodings."""

    def __init__(self, message: str, *, offset: int, index: int) -> None:
        super().__init__(f"{message} at insn {index} (byte offset {offset})")
        self.offset = offset
        self.index = index


def decode(data: bytes | bytearray | memoryview) -> list[Instruction]:
    """Decode bytecode into instructions (``lddw`` becomes one two-slot Instruction)."""
    view = memoryview(data).cast("B")
    if len(view) % SLOT_SIZE:
        offset = len(view) - len(view) % SLOT_SIZE
        raise DecodeError(
            f"truncated bytecode: {len(view)} bytes is not a multiple of {SLOT_SIZE}",
            offset=offset, index=offset // SLOT_SIZE)
    insns: list[Instruction] = []
    nslots = len(view) // SLOT_SIZE
    index = 0
    unpack = SLOT.unpack_from
    while index < nslots:
        offset = index * SLOT_SIZE
        opcode, regs, off, imm = unpack(view, offset)
        if opcode not in VALID_OPCODES:
            raise DecodeError(f"unknown opcode {opcode:#04x}", offset=offset, index=index)
        if opcode == LDDW:
            if index + 1 >= nslots:
                raise DecodeError("incomplete lddw: the second slot is missing",
                                  offset=offset, index=index)
            op2, regs2, off2, imm2 = unpack(view, offset + SLOT_SIZE)
            if op2 or regs2 or off2:
                raise DecodeError("invalid lddw second half: only its imm may be set",
                                  offset=offset + SLOT_SIZE, index=index + 1)
            insns.append(Instruction(opcode, regs & 0xF, regs >> 4, off, imm,
                                     imm2 & 0xFFFFFFFF))
            index += 2
            continue
        insns.append(Instruction(opcode, regs & 0xF, regs >> 4, off, imm))
        index += 1
    return insns


def encode(insns: Iterable[Instruction]) -> bytes:
    """Encode instructions into bytecode; the inverse of :func:`decode`."""
    out = bytearray()
    pack = SLOT.pack
    for insn in insns:
        check_fields(insn)
        out += pack(insn.opcode, insn.dst | (insn.src << 4), insn.off, insn.imm)
        if insn.opcode == LDDW:
            next_imm = insn.next_imm - (1 << 32) if insn.next_imm & 0x80000000 else insn.next_imm
            out += pack(0, 0, 0, next_imm)
    return bytes(out)


def encode_words(insns: Iterable[Instruction]) -> list[int]:
    """Each slot as the 64-bit little-endian word the ``-- raw`` test sections use."""
    data = encode(insns)
    return [int.from_bytes(data[i:i + SLOT_SIZE], "little") for i in range(0, len(data), SLOT_SIZE)]


def words_to_bytes(words: Sequence[int]) -> bytes:
    """Bytecode from 64-bit words (the inverse of :func:`encode_words` before decoding)."""
    out = bytearray()
    for word in words:
        if not 0 <= word < 1 << 64:
            raise EncodeError(f"raw word {word:#x} does not fit in 64 bits")
        out += word.to_bytes(SLOT_SIZE, "little")
    return bytes(out)
