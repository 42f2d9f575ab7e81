"""The eBPF instruction set (RFC 9669): opcodes, ``Instruction``, codec, assembler, listings."""

from .asm import AsmError, assemble
from .codec import DecodeError, EncodeError, decode, encode, encode_words, words_to_bytes
from .disasm import listing, slot_positions, to_asm
from .instruction import Instruction
from .opcodes import (
    CALL,
    CALLX,
    EXIT,
    LDDW,
    MAY_GOTO,
    AluOp,
    AtomicOp,
    CallSrc,
    CondSrc,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)

__all__ = [
    "AluOp", "AsmError", "AtomicOp", "CALL", "CALLX", "CallSrc", "CondSrc", "DecodeError", "EXIT",
    "EncodeError", "Endian", "InsnClass", "Instruction", "JmpOp", "LDDW", "MAY_GOTO", "Mode", "PseudoSrc",
    "Size", "Source", "assemble", "decode", "encode", "encode_words", "listing", "slot_positions",
    "to_asm", "words_to_bytes",
]
