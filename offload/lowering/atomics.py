"""Atomic operations beyond ``lock add`` (v3) as plain load, operation and store.

Before v3 the only atomic operation is ``lock add`` without fetch; nothing else can be made
atomic with v1 instructions. These sequences give the RFC 9669 section 5.3 results - the new
memory value, and for the fetch forms, ``xchg`` and ``cmpxchg`` the old value in the register
the RFC names (zero-extended for 32-bit operations) - but another CPU or program writing the
same memory between the load and the store would be lost. They are correct only on a
single-threaded target, so :mod:`.lower` uses them only when the caller opts in
(``allow_non_atomic=True``) and refuses otherwise.
"""

from __future__ import annotations

from offload.isa import AluOp, AtomicOp, Instruction, JmpOp, Size
from offload.isa.opcodes import ATOMIC_FETCH

from .emit import Item, Label, Mark, alu, jump, ldx, stx
from .scratch import ScratchPool

_ALU_OF = {AtomicOp.ADD: AluOp.ADD, AtomicOp.OR: AluOp.OR, AtomicOp.AND: AluOp.AND,
           AtomicOp.XOR: AluOp.XOR}


def lower_atomic(insn: Instruction, pool: ScratchPool) -> list[Item]:
    size, d, s, off, imm = Size(insn.size), insn.dst, insn.src, insn.off, insn.imm
    if imm == AtomicOp.CMPXCHG:
        return _cmpxchg(size, d, s, off, pool)
    old = pool.take(avoid=(d, s))
    load = ldx(size, old, d, off)
    if imm == AtomicOp.XCHG:
        return [load, stx(size, d, s, off), alu(AluOp.MOV, s, src=old)]
    op = _ALU_OF[AtomicOp(imm & ~ATOMIC_FETCH)]
    if not imm & ATOMIC_FETCH:
        return [load, alu(op, old, src=s), stx(size, d, old, off)]
    if d != s:  # combine into src, store it, then give src the old value
        return [load, alu(op, s, src=old), stx(size, d, s, off), alu(AluOp.MOV, s, src=old)]
    new = pool.take(avoid=(d,))
    return [load, alu(AluOp.MOV, new, src=old), alu(op, new, src=s), stx(size, d, new, off),
            alu(AluOp.MOV, s, src=old)]


def _cmpxchg(size: Size, d: int, s: int, off: int, pool: ScratchPool) -> list[Item]:
    """r0 = old; if old == r0 (its low half for 32-bit) store src."""
    old = pool.take(avoid=(d, s, 0))
    items: list[Item] = [ldx(size, old, d, off)]
    expected = 0
    if size == Size.W:
        # Compare with the low half of r0. r0 is overwritten at the end anyway, so it can be
        # truncated in place - unless it is also the address register.
        if d == 0:
            expected = pool.take(avoid=(d, s, 0))
        items.append(alu(AluOp.MOV, expected, src=0, wide=False))
    differs = Label("old value differs")
    return [*items, jump(JmpOp.JNE, old, differs, src=expected), stx(size, d, s, off),
            Mark(differs), alu(AluOp.MOV, 0, src=old)]
