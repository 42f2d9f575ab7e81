"""ALU instructions on the abstract state: scalar arithmetic and the pointer arithmetic rules.

Pointer rules follow the kernel's ``adjust_ptr_min_max_vals`` for an unprivileged loader: only
64-bit add/sub of a scalar, never on ``pkt_end``, map pointers or unchecked
``map_value_or_null``; no pointer-pointer arithmetic except subtracting packet pointers
(a length, which leaks no address); no 32-bit or bitwise operations that would turn an address
into a number.
"""

from __future__ import annotations

from ..isa.opcodes import AluOp, Endian
from .arith import alu, byte_swap, sign_extend, zext32
from .env import Env
from .ops import Op
from .reject import Reject
from .scalar import Scalar
from .state import (
    MAYBE_NULL,
    PACKETS,
    POINTERS,
    SCALAR,
    TYPE_NAMES,
    UNINIT,
    UNKNOWN,
    Reg,
    RegType,
    State,
)

#: Variable offsets beyond this make a pointer meaningless (kernel BPF_MAX_VAR_OFF).
MAX_VAR_OFF = 1 << 29

_OP_NAMES = {AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=",
             AluOp.OR: "|=", AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=",
             AluOp.NEG: "neg", AluOp.MOD: "%=", AluOp.XOR: "^=", AluOp.MOV: "=",
             AluOp.ARSH: "s>>=", AluOp.END: "endian"}
_NO_ARITH = frozenset({RegType.PTR_TO_PACKET_END, RegType.CONST_PTR_TO_MAP,
                       RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON,
                       RegType.PTR_TO_FUNC}) | MAYBE_NULL
# Members compared on every ALU instruction, as module names (see state.SCALAR).
_MOV, _END, _NEG, _ADD, _SUB = AluOp.MOV, AluOp.END, AluOp.NEG, AluOp.ADD, AluOp.SUB
_DIV_MOD = frozenset({AluOp.DIV, AluOp.MOD})
_SHIFTS = frozenset({AluOp.LSH, AluOp.RSH, AluOp.ARSH})


def read_reg(state: State, regno: int) -> Reg:
    reg = state.frame.regs[regno]
    if reg.type == UNINIT:
        raise Reject(f"R{regno} !read_ok")
    return reg


def write_reg(state: State, regno: int, reg: Reg) -> None:
    if regno == 10:
        raise Reject("frame pointer is read only")
    state.frame.regs[regno] = reg


def check_alu(env: Env, state: State, insn: Op) -> None:
    bits = insn.bits
    op = insn.alu_op
    dst = insn.dst
    if dst == 10:
        raise Reject("frame pointer is read only")
    if op == _MOV:
        _mov(env, state, insn, bits)
        return
    dreg = read_reg(state, dst)
    if op == _END:
        if dreg.type != SCALAR:
            raise Reject(f"R{dst} byte swap of pointer prohibited")
        swap = bits == 64 or insn.source == Endian.TO_BE  # the device is little-endian
        write_reg(state, dst, Reg.scalar(env.cached(byte_swap, dreg.var, insn.imm, swap)))
        return
    if op == _NEG:
        if dreg.type != SCALAR:
            raise Reject(f"R{dst} pointer arithmetic with neg operator prohibited")
        write_reg(state, dst, env.cached(scalar_alu, _NEG, dreg.var, dreg.var, bits, False))
        return
    if insn.reg_operand:
        sreg = read_reg(state, insn.src)
    else:
        if op in _DIV_MOD and insn.imm == 0:
            raise Reject("div by zero")
        if op in _SHIFTS and not 0 <= insn.imm < bits:
            raise Reject(f"invalid shift {insn.imm}")
        sreg = insn.imm_reg
    if dreg.type == SCALAR and sreg.type == SCALAR:
        a, b = dreg.var, sreg.var
        if a.var.mask == 0 and b.var.mask == 0:  # constants: computed faster than looked up
            write_reg(state, dst, scalar_alu(op, a, b, bits, insn.off == 1))
        else:
            write_reg(state, dst, env.cached(scalar_alu, op, a, b, bits, insn.off == 1))
        return
    if dreg.type == SCALAR:
        env.demand(state, dst)  # the offset moves a pointer: its value matters
    elif insn.reg_operand and sreg.type == SCALAR:
        env.demand(state, insn.src)
    write_reg(state, dst, _pointer_alu(env, insn, op, bits, dreg, sreg))


def scalar_alu(op: AluOp, a: Scalar, b: Scalar, bits: int, signed_div: bool) -> Reg:
    """The register ``a op b`` gives (a pure function: see ``Env.cached``)."""
    return Reg.scalar(alu(op, a, b, bits=bits, signed_div=signed_div))


def _mov(env: Env, state: State, insn: Op, bits: int) -> None:
    if not insn.reg_operand:
        write_reg(state, insn.dst, insn.imm_reg)
        return
    src = read_reg(state, insn.src)
    if insn.off:  # movsx
        if src.type != SCALAR:
            raise Reject(f"R{insn.src} sign-extension part of pointer")
        write_reg(state, insn.dst, Reg.scalar(env.cached(sign_extend, src.var, insn.off, bits)))
        return
    if bits == 32:
        if src.type != SCALAR:
            raise Reject(f"R{insn.src} partial copy of pointer")
        write_reg(state, insn.dst, Reg.scalar(env.cached(zext32, src.var)))
        return
    if src.type == SCALAR and not src.var.is_const and insn.src != insn.dst:
        # link both copies so a later comparison of one narrows the other
        if not src.id:
            src = src.with_id(env.next_id())
            state.frame.regs[insn.src] = src
    write_reg(state, insn.dst, src)


def _pointer_alu(env: Env, insn: Op, op: AluOp, bits: int, dreg: Reg,
                 sreg: Reg) -> Reg:
    dst, src = insn.dst, insn.src
    if op == _SUB and _is_pkt_kind(dreg) and _is_pkt_kind(sreg):
        diff = _packet_difference(dreg, sreg)
        return Reg.scalar(zext32(diff.var)) if bits == 32 else diff
    if bits == 32:
        regno = dst if dreg.type in POINTERS else src
        raise Reject(f"R{regno} 32-bit pointer arithmetic prohibited")
    if dreg.type in POINTERS and sreg.type in POINTERS:
        raise Reject(f"R{dst} pointer {_OP_NAMES[op]} pointer prohibited")
    if op != _ADD and op != _SUB:
        regno = dst if dreg.type in POINTERS else src
        kind = "bitwise operator" if op in (AluOp.AND, AluOp.OR, AluOp.XOR) else \
            "pointer arithmetic with operator"
        raise Reject(f"R{regno} {kind} {_OP_NAMES[op]} on pointer prohibited")
    if dreg.type not in POINTERS:
        if op == _SUB:
            raise Reject(f"R{dst} tried to subtract pointer from scalar")
        ptr, scalar, ptr_regno = sreg, dreg, src
    else:
        ptr, scalar, ptr_regno = dreg, sreg, dst
    if ptr.type in _NO_ARITH:
        extra = ", null-check it first" if ptr.type.maybe_null else ""
        raise Reject(f"R{ptr_regno} pointer arithmetic on {TYPE_NAMES[ptr.type]} "
                     f"prohibited{extra}")
    return add_offset(env, ptr, scalar.var, negate=op == _SUB, regno=dst)


def add_offset(env: Env, ptr: Reg, value: Scalar, *, negate: bool, regno: int) -> Reg:
    """``ptr +/- value``: constants move the fixed offset, anything else the variable part."""
    name = TYPE_NAMES[ptr.type]
    if value.var.mask == 0:  # a constant
        delta = value.smin if not negate else -value.smin
        off = ptr.off + delta
        if not -MAX_VAR_OFF < off < MAX_VAR_OFF:
            raise Reject(f"value {delta} makes {name} pointer be out of bounds")
        return ptr.with_off(off)
    if value.smin <= -MAX_VAR_OFF or value.smin >= MAX_VAR_OFF:
        # the kernel's check_reg_sane_offset looks at the minimum only: a large maximum
        # leaves a pointer no comparison proves a range for, hence one never dereferenced
        if ptr.type in PACKETS:
            raise Reject(f"R{regno} unbounded variable offset makes {name} pointer be out of "
                         "bounds; bound it with 'if (var < const)' first")
    var = env.cached(_offset_var, ptr.var, value, negate)
    if ptr.type in PACKETS:
        # a new variable part: ranges proven for the old one do not carry over
        return ptr._replace(var=var, id=env.next_id(), range=0)
    return ptr.with_var(var)


def _offset_var(var: Scalar, value: Scalar, negate: bool) -> Scalar:
    """A pointer's variable offset moved by ``value`` (a pure function: see ``Env.cached``)."""
    return alu(_SUB if negate else _ADD, var, value, bits=64)


def _is_pkt_kind(reg: Reg) -> bool:
    return reg.type in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META,
                        RegType.PTR_TO_PACKET_END)


def _packet_difference(a: Reg, b: Reg) -> Reg:
    """Two packet pointers subtracted: a length, exact when both share the same base."""
    if a.type == b.type and a.type != RegType.PTR_TO_PACKET_END and a.var.is_const \
            and b.var.is_const:
        return Reg.const(a.off + a.var.value - b.off - b.var.value)
    return UNKNOWN


