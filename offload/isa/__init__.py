"""The eBPF instruction set (RFC 9669): opcodes, ``Instruction``, codec, assembler, listings.

The assembler and the listings load on first use (PEP 562): programs that only decode and
run bytecode - the conformance plugin, once per test case - do not pay for them.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports
from .codec import DecodeError, EncodeError, decode, encode, encode_words, words_to_bytes
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

if TYPE_CHECKING:
    from .asm import AsmError, assemble
    from .disasm import listing, slot_positions, to_asm

_LAZY = {"AsmError": "asm", "assemble": "asm", "listing": "disasm",
         "slot_positions": "disasm", "to_asm": "disasm"}


__getattr__ = lazy_exports(__name__, _LAZY)
