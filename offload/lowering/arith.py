"""v4 sign extensions and byte swaps in v1 instructions (RFC 9669 sections 4.1, 4.2, 5.2).

* ``movsx{8,16,32}64 d, s`` is ``mov d, s; lsh d, 64-N; arsh d, 64-N``: the shift pair
  replicates bit N-1 over the upper bits.
* ``movsx{8,16}32 d, s`` is the same on 32-bit operations; every ALU-class result is
  zero-extended, which is what the RFC asks of the 32-bit form.
* ``ldxs{b,h,w} d, [s+off]`` is the plain load followed by the same shift pair; the load
  reads the address before ``d`` is written, so ``d == s`` is fine.
* ``bswap{16,32,64} d`` (ALU64 END) swaps unconditionally. ``be{16,32,64}`` (ALU END TO_BE)
  converts to big-endian, which *is* a swap - and the same truncation to the width - on a
  little-endian device; on a big-endian one ``le`` is the swap. The device's byte order is
  therefore an explicit parameter.
"""

from __future__ import annotations

from typing import Literal

from offload.isa import AluOp, Endian, InsnClass, Instruction, Size

from .emit import Item, alu, byte_swap, ldx

ByteOrder = Literal["little", "big"]


def lower_movsx(insn: Instruction) -> list[Item]:
    wide = insn.cls == InsnClass.ALU64
    shift = (64 if wide else 32) - insn.off
    d = insn.dst
    return [alu(AluOp.MOV, d, src=insn.src, wide=wide), alu(AluOp.LSH, d, imm=shift, wide=wide),
            alu(AluOp.ARSH, d, imm=shift, wide=wide)]


def lower_ldxs(insn: Instruction) -> list[Item]:
    size = insn.size
    shift = 64 - 8 * size.nbytes
    d = insn.dst
    return [ldx(Size(size), d, insn.src, insn.off), alu(AluOp.LSH, d, imm=shift),
            alu(AluOp.ARSH, d, imm=shift)]


def lower_bswap(insn: Instruction, byte_order: ByteOrder) -> list[Item]:
    order = Endian.TO_BE if byte_order == "little" else Endian.TO_LE
    return [byte_swap(insn.dst, insn.imm, order)]
