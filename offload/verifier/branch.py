"""Conditional jumps: narrow both successor states, and drop the ones that cannot happen.

Scalars are narrowed on both branches in the width of the jump (kernel ``reg_set_min_max``),
and the narrowing reaches every register linked to them by a plain copy. A successor whose
narrowed ranges are empty is dead, which subsumes the kernel's ``is_branch_taken``. Pointer
comparisons follow ``try_match_pkt_pointers`` (packet against ``data_end``, metadata against
``data``) and ``mark_ptr_or_null_regs`` (null checks of ``map_value_or_null``); any other
pointer comparison would leak address bits, which an unprivileged program may not.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from ..isa.opcodes import JmpOp
from . import refs
from .alu import read_reg
from .env import Env
from .memory import MAX_PACKET_OFF
from .ops import Op
from .reject import Reject
from .scalar import Scalar, signed
from .state import (
    MAYBE_NULL,
    NOT_NULL,
    POINTERS,
    PTR_TO_PACKET,
    PTR_TO_PACKET_META,
    SCALAR,
    Reg,
    RegType,
    State,
)
from .tnum import U32, U64, Tnum

_NEGATE = {JmpOp.JEQ: JmpOp.JNE, JmpOp.JNE: JmpOp.JEQ, JmpOp.JGT: JmpOp.JLE,
           JmpOp.JLE: JmpOp.JGT, JmpOp.JGE: JmpOp.JLT, JmpOp.JLT: JmpOp.JGE,
           JmpOp.JSGT: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGT, JmpOp.JSGE: JmpOp.JSLT,
           JmpOp.JSLT: JmpOp.JSGE}
_SWAP = {JmpOp.JEQ: JmpOp.JEQ, JmpOp.JNE: JmpOp.JNE, JmpOp.JGT: JmpOp.JLT,
         JmpOp.JLT: JmpOp.JGT, JmpOp.JGE: JmpOp.JLE, JmpOp.JLE: JmpOp.JGE,
         JmpOp.JSGT: JmpOp.JSLT, JmpOp.JSLT: JmpOp.JSGT, JmpOp.JSGE: JmpOp.JSLE,
         JmpOp.JSLE: JmpOp.JSGE}
_NOT_JSET = -1  # pseudo operation: (a & b) == 0
_MAP_VALUE_OR_NULL = RegType.PTR_TO_MAP_VALUE_OR_NULL  # (looked up once: see state.py)
_SCALARS = frozenset({SCALAR})
_ONLY = {t: frozenset({t}) for t in RegType}
# Members compared on every pointer comparison, as module names (see state.SCALAR).
_JLT, _JGE = JmpOp.JLT, JmpOp.JGE
_EQUALITY = frozenset({JmpOp.JEQ, JmpOp.JNE})
_ORDERING = frozenset({JmpOp.JGT, JmpOp.JGE, JmpOp.JLT, JmpOp.JLE})
_BELOW = frozenset({JmpOp.JLE, JmpOp.JLT})
_PACKET_PAIRS = frozenset({(PTR_TO_PACKET, RegType.PTR_TO_PACKET_END),
                           (PTR_TO_PACKET_META, PTR_TO_PACKET)})
_NEGATE_ANY = {**_NEGATE, JmpOp.JSET: _NOT_JSET}
#: How two concrete values compare: unsigned tests, then signed ones (``holds``)
_Test = Callable[[int, int], bool]
_UNSIGNED_TESTS: dict[int, _Test] = {
    JmpOp.JEQ: operator.eq, JmpOp.JNE: operator.ne, JmpOp.JGT: operator.gt,
    JmpOp.JGE: operator.ge, JmpOp.JLT: operator.lt, JmpOp.JLE: operator.le,
    JmpOp.JSET: lambda x, y: x & y != 0, _NOT_JSET: lambda x, y: x & y == 0}
_SIGNED_TESTS: dict[int, _Test] = {JmpOp.JSGT: operator.gt, JmpOp.JSGE: operator.ge,
                                   JmpOp.JSLT: operator.lt, JmpOp.JSLE: operator.le}


def branch(env: Env, state: State, insn: Op) -> tuple[State | None, State | None]:
    """(taken, fall-through) successor states; None for a successor that cannot happen."""
    op = insn.jmp_op
    bits = insn.bits
    dst = read_reg(state, insn.dst)
    if insn.reg_operand:
        src = read_reg(state, insn.src)
        src_regno = insn.src
    else:
        src = insn.imm_reg
        src_regno = -1
    if dst.type == SCALAR and src.type == SCALAR:
        taken = _narrow(env, op, dst.var, src.var, bits)
        other = _narrow(env, _NEGATE_ANY[op], dst.var, src.var, bits)
        if taken is None or other is None:
            # decided by the values: a state with other values may go the other way
            env.demand(state, insn.dst, src_regno)
        # the state is this path's own: the last live successor takes it, others a copy
        return (_scalar_branch(state, taken, insn.dst, dst, src_regno, src, other is not None),
                _scalar_branch(state, other, insn.dst, dst, src_regno, src, False))
    return _pointer_branch(env, state, insn, op, bits, dst, src, src_regno)


# ---------------------------------------------------------------- scalars
def _narrow(env: Env, op: int, a: Scalar, b: Scalar,
            bits: int) -> tuple[Scalar, Scalar] | None:
    """``narrow``, remembered per verification (two constants are decided faster)."""
    if a.var.mask == 0 and b.var.mask == 0:
        return narrow(op, a, b, bits)
    return env.cached(narrow_sets, op, a, b, bits)


def narrow(op: int, a: Scalar, b: Scalar, bits: int) -> tuple[Scalar, Scalar] | None:
    """Both operands restricted to the values for which ``a op b`` holds; None if none."""
    if a.var.mask == 0 and b.var.mask == 0:
        # two constants (counted loops): the comparison is decided and narrows nothing, which
        # is what narrow_sets finds too, at many times the cost
        return (a, b) if holds(op, a.var.value, b.var.value, bits) else None
    return narrow_sets(op, a, b, bits)


def holds(op: int, x: int, y: int, bits: int) -> bool:
    """Whether ``x op y`` for two concrete values, compared in ``bits`` bits."""
    if bits == 32:
        x &= U32
        y &= U32
    test = _UNSIGNED_TESTS.get(op)
    if test is not None:
        return test(x, y)
    return _SIGNED_TESTS[op](signed(x, bits), signed(y, bits))


def narrow_sets(op: int, a: Scalar, b: Scalar, bits: int) -> tuple[Scalar, Scalar] | None:
    """``narrow`` for any two sets, through the views of both operands."""
    ta, ua0, ua1, sa0, sa1 = a.view(bits)
    tb, ub0, ub1, sb0, sb1 = b.view(bits)
    full = U64 if bits == 64 else U32
    if op == JmpOp.JEQ:
        if ta.conflicts(tb):
            return None
        t = ta.intersect(tb)
        view = (t, max(ua0, ub0), min(ua1, ub1), max(sa0, sb0), min(sa1, sb1))
        na, nb = a.with_view(bits, *view), b.with_view(bits, *view)
    elif op == JmpOp.JNE:
        na, nb = _not_equal(a, b, bits), _not_equal(b, a, bits)
    elif op in (JmpOp.JGT, JmpOp.JGE, JmpOp.JLT, JmpOp.JLE):
        if op in (JmpOp.JLT, JmpOp.JLE):
            swapped = narrow_sets(_SWAP[JmpOp(op)], b, a, bits)
            return None if swapped is None else (swapped[1], swapped[0])
        strict = 1 if op == JmpOp.JGT else 0
        na = a.with_view(bits, ta, max(ua0, ub0 + strict), ua1, sa0, sa1)
        nb = b.with_view(bits, tb, ub0, min(ub1, ua1 - strict), sb0, sb1)
    elif op in (JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE):
        if op in (JmpOp.JSLT, JmpOp.JSLE):
            swapped = narrow_sets(_SWAP[JmpOp(op)], b, a, bits)
            return None if swapped is None else (swapped[1], swapped[0])
        strict = 1 if op == JmpOp.JSGT else 0
        na = a.with_view(bits, ta, ua0, ua1, max(sa0, sb0 + strict), sa1)
        nb = b.with_view(bits, tb, ub0, ub1, sb0, min(sb1, sa1 - strict))
    elif op == JmpOp.JSET:
        if ta.umax & tb.umax == 0:
            return None
        na, nb = a, b
        if tb.is_const and tb.value & (tb.value - 1) == 0:  # one bit: it must be set
            na = a.with_view(bits, Tnum(ta.value | tb.value, ta.mask & ~tb.value & full),
                             ua0, ua1, sa0, sa1)
    else:  # not JSET
        if ta.value & tb.value:
            return None
        na, nb = a, b
        if tb.is_const:
            na = a.with_view(bits, Tnum(ta.value, ta.mask & ~tb.value & full), ua0, ua1, sa0,
                             sa1)
    if na is None or nb is None:
        return None
    return na, nb


def _not_equal(a: Scalar, b: Scalar, bits: int) -> Scalar | None:
    """``a != b``: only a constant ``b`` at an end of ``a``'s range removes anything."""
    tb = b.view(bits)[0]
    ta, ua0, ua1, sa0, sa1 = a.view(bits)
    if not tb.is_const:
        return a
    c = tb.value
    if ta.is_const:
        return None if ta.value == c else a
    sc = c - (1 << bits) if c >> (bits - 1) else c
    if ua0 == c:
        ua0 += 1
    if ua1 == c:
        ua1 -= 1
    if sa0 == sc:
        sa0 += 1
    if sa1 == sc:
        sa1 -= 1
    return a.with_view(bits, ta, ua0, ua1, sa0, sa1)


def _scalar_branch(state: State, result: tuple[Scalar, Scalar] | None, dst_regno: int,
                   dst: Reg, src_regno: int, src: Reg, copy: bool) -> State | None:
    """The successor where the operands are narrowed to ``result`` (None: no successor)."""
    if result is None:
        return None
    new = state.copy() if copy else state
    _set_scalar(new, dst_regno, dst, result[0])
    if src_regno >= 0:
        _set_scalar(new, src_regno, src, result[1])
    return new


def _set_scalar(state: State, regno: int, old: Reg, var: Scalar) -> None:
    """Narrow this register and every register linked to it by a copy."""
    if var == old.var:
        return
    state.frame.regs[regno] = old.with_var(var)
    if old.id:
        ident = old.id
        state.map_regs(lambda r: r.with_var(var) if r.id == ident else r, _SCALARS)


# ---------------------------------------------------------------- pointers
def _pointer_branch(env: Env, state: State, insn: Op, op: JmpOp, bits: int, dst: Reg,
                    src: Reg, src_regno: int) -> tuple[State | None, State | None]:
    is_zero = src.type == SCALAR and src.var.is_const and src.var.value == 0
    if is_zero and dst.type in POINTERS and op in _EQUALITY:
        env.demand(state, src_regno)  # a register compared as NULL must hold 0
        if dst.type in MAYBE_NULL:
            if bits == 32:
                raise Reject(f"R{insn.dst} pointer comparison prohibited: null checks use "
                             "64-bit jumps")
            null, not_null = state.copy(), state
            _mark_null(null, dst, is_null=True)
            _mark_null(not_null, dst, is_null=False)
            return (null, not_null) if op == JmpOp.JEQ else (not_null, null)
        # any other pointer is valid, hence never NULL
        return (None, state) if op == JmpOp.JEQ else (state, None)
    pkt = _packet_compare(env, state, op, bits, dst, src)
    if pkt is not None:
        return pkt
    regno = insn.dst if dst.type in POINTERS else src_regno
    raise Reject(f"R{regno} pointer comparison prohibited")


def _mark_null(state: State, reg: Reg, *, is_null: bool) -> None:
    """Every copy sharing ``reg``'s id (registers and spilled, every frame) is NULL, or is
    the pointer itself. A NULL acquired object holds nothing: its reference is dropped; a
    pointer proven valid keeps its reference, to be released."""
    ident = reg.id
    if is_null and reg.ref and reg.ref == ident:
        refs.drop(state, reg.ref)

    def mark(r: Reg) -> Reg:
        if r.id != ident:
            return r
        if is_null:
            return Reg.const(0)
        if r.type == _MAP_VALUE_OR_NULL:
            # the id stays on a value holding a bpf_spin_lock: it names the lock (kernel
            # mark_ptr_or_null_reg keeps it for reg_may_point_to_spin_lock)
            keep = r.map is not None and r.map.spin_lock_off is not None
            return r._replace(type=RegType.PTR_TO_MAP_VALUE, id=r.id if keep else 0)
        return r._replace(type=NOT_NULL[r.type], id=0)

    state.map_regs(mark, MAYBE_NULL)


def _packet_compare(env: Env, state: State, op: JmpOp, bits: int, dst: Reg,
                    src: Reg) -> tuple[State | None, State | None] | None:
    """``pkt <op> pkt_end`` or ``pkt_meta <op> pkt``: which successor proves a range."""
    if bits == 32 or op not in _ORDERING:
        return None
    if (dst.type, src.type) in _PACKET_PAIRS:
        ptr, end, op_ptr_first = dst, src, op
    elif (src.type, dst.type) in _PACKET_PAIRS:
        ptr, end, op_ptr_first = src, dst, _SWAP[op]
    else:
        return None
    if end.type == PTR_TO_PACKET and (end.off or not end.var.is_const or end.var.value):
        return None  # metadata is only compared against data itself
    # with the pointer on the left: "ptr > end" / "ptr >= end" fail, "<"/"<=" succeed
    if op_ptr_first in _BELOW:
        strict = op_ptr_first == _JLT
        good_is_taken = True
    else:
        strict = op_ptr_first == _JGE
        good_is_taken = False
    extra = 1 if strict else 0
    var = ptr.var
    proven_len = state.pkt_len if ptr.type == PTR_TO_PACKET else state.meta_len
    usable = var.smin >= 0 and var.umax + ptr.off <= MAX_PACKET_OFF and ptr.off >= 0
    # already proven: the failing side cannot happen
    bad_possible = not (usable and var.umax + ptr.off + extra <= proven_len)
    if not bad_possible:
        env.demand_packet(state, var.umax + ptr.off + extra, meta=ptr.type != PTR_TO_PACKET)
    good = state.copy() if bad_possible else state
    bad = state if bad_possible else None
    if usable:
        _prove(good, ptr, ptr.off + extra, var.umin + ptr.off + extra)
    return (good, bad) if good_is_taken else (bad, good)


def _prove(state: State, ptr: Reg, new_range: int, length: int) -> None:
    """``ptr.base + new_range <= end`` holds: raise the range of every pointer sharing its id."""
    kind = ptr.type
    if kind == PTR_TO_PACKET:
        state.pkt_len = max(state.pkt_len, length)
    else:
        state.meta_len = max(state.meta_len, length)
    ident = ptr.id

    def mark(r: Reg) -> Reg:
        # Only the pointers sharing the compared one's id (kernel ``find_good_pkt_pointers``);
        # the others reach what the state's proven length covers (``memory.check_packet``),
        # which pruning compares only as far as an access relied on it.
        if r.id == ident and new_range > r.range:
            return r.with_range(new_range)
        return r

    state.map_regs(mark, _ONLY[kind])
