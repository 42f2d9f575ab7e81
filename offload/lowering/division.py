"""Signed division and modulo (v4) through unsigned ``div``/``mod`` (RFC 9669 section 4.1).

The RFC's signed forms truncate toward zero, and the remainder takes the dividend's sign; so
``a sdiv b = sign(a)*sign(b) * (|a| div |b|)`` and ``a smod b = sign(a) * (|a| mod |b|)``,
with magnitudes taken as unsigned 64-bit values (``|INT64_MIN|`` is 2^63, which ``neg`` gives
and unsigned division handles). The corner cases then fall out of the unsigned operations:

* division by zero: ``div`` gives 0 and the sign fix keeps 0;
* modulo by zero: ``mod`` leaves ``|a|`` and the sign fix restores ``a``;
* ``INT_MIN sdiv -1``: 2^63 div 1 = 2^63, both negative, so no negation: ``INT_MIN``;
* ``INT_MIN smod -1``: 2^63 mod 1 = 0.

Signs are not kept in a flag register but in which of the branches runs, so a register
divisor needs one scratch register (its magnitude) and an immediate none; ``|K|`` fits the
immediate except for ``K = -2^31``, where dividing by 2^31 is ``rsh 31`` and the remainder is
``and 0x7fffffff``.

The 32-bit forms sign-extend both low halves to 64 bits, run the same sequence (every
quotient and remainder of 32-bit operands fits, and ``INT32_MIN sdiv -1`` = 2^31 truncates to
``INT32_MIN``), and zero-extend the result with ``mov32 d, d`` - which also gives the RFC's
"modulo by zero leaves the dividend with its upper half cleared".
"""

from __future__ import annotations

from offload.isa import AluOp, InsnClass, Instruction, JmpOp, Source

from .emit import END, Item, Label, Mark, alu, ja, jump, neg
from .scratch import ScratchPool

INT32_MIN = -(1 << 31)


def _sign_extend32(reg: int) -> list[Item]:
    return [alu(AluOp.LSH, reg, imm=32), alu(AluOp.ARSH, reg, imm=32)]


def lower_signed_division(insn: Instruction, pool: ScratchPool) -> list[Item]:
    """``sdiv``/``smod`` in the 32- or 64-bit class, register or immediate divisor."""
    d = insn.dst
    wide = insn.cls == InsnClass.ALU64
    modulo = insn.alu_op == AluOp.MOD
    done = Label("done") if not wide else END
    items: list[Item] = [] if wide else _sign_extend32(d)
    if insn.source == Source.X:
        t = pool.take(avoid=(d,))
        if t != insn.src:
            items.append(alu(AluOp.MOV, t, src=insn.src))
        if not wide:
            items += _sign_extend32(t)
        items += _by_register(d, t, modulo, done)
    elif insn.imm == 0:
        if wide:
            # Division by zero gives 0, modulo by zero leaves dst: a no-op.
            return [alu(AluOp.MOV, d, imm=0) if not modulo else alu(AluOp.MOV, d, src=d)]
        return [alu(AluOp.MOV, d, imm=0, wide=False) if not modulo
                else alu(AluOp.MOV, d, src=d, wide=False)]
    else:
        items += _by_constant(d, insn.imm, modulo, done)
    if not wide:
        items += [Mark(done), alu(AluOp.MOV, d, src=d, wide=False)]
    return items


def _by_register(d: int, t: int, modulo: bool, done: Label) -> list[Item]:
    """``d = d sdiv t`` (or smod) on signed 64-bit values; ``t`` is clobbered."""
    op = AluOp.MOD if modulo else AluOp.DIV
    unsigned = alu(op, d, src=t)
    if modulo:
        divisor_positive = Label("divisor >= 0")
        return [jump(JmpOp.JSGE, t, divisor_positive, imm=0), neg(t), Mark(divisor_positive),
                *_mod_by_magnitude(d, unsigned, done)]
    divisor_positive = Label("divisor >= 0")
    neg_pos = Label("divisor < 0, dividend >= 0")
    pos_pos = Label("both >= 0")
    return [
        jump(JmpOp.JSGE, t, divisor_positive, imm=0),
        neg(t),
        jump(JmpOp.JSGE, d, neg_pos, imm=0),
        neg(d), unsigned, ja(done),  # both negative: positive quotient
        Mark(neg_pos), unsigned, neg(d), ja(done),
        Mark(divisor_positive),
        jump(JmpOp.JSGE, d, pos_pos, imm=0),
        neg(d), unsigned, neg(d), ja(done),
        Mark(pos_pos), unsigned,
    ]


def _mod_by_magnitude(d: int, unsigned: Item, done: Label) -> list[Item]:
    """``d = sign(d) * (|d| mod divisor)`` where ``unsigned`` computes ``d mod divisor``."""
    positive = Label("dividend >= 0")
    return [jump(JmpOp.JSGE, d, positive, imm=0), neg(d), unsigned, neg(d), ja(done),
            Mark(positive), unsigned]


def _by_constant(d: int, k: int, modulo: bool, done: Label) -> list[Item]:
    """``d = d sdiv k`` (or smod) for a non-zero constant ``k`` (a signed 32-bit value)."""
    if k == INT32_MIN:  # |k| = 2^31 does not fit the sign-extended immediate
        unsigned = (alu(AluOp.AND, d, imm=0x7FFFFFFF) if modulo
                    else alu(AluOp.RSH, d, imm=31))
    else:
        unsigned = alu(AluOp.MOD if modulo else AluOp.DIV, d, imm=abs(k))
    if modulo:
        return _mod_by_magnitude(d, unsigned, done)
    positive = Label("dividend >= 0")
    negate_if_negative_k = [neg(d)] if k < 0 else []
    negate_if_positive_k = [neg(d)] if k > 0 else []
    return [jump(JmpOp.JSGE, d, positive, imm=0), neg(d), unsigned, *negate_if_positive_k,
            ja(done), Mark(positive), unsigned, *negate_if_negative_k]
