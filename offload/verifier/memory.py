"""Loads, stores and atomics: which memory a pointer may touch, and what a load gives back.

Context: only the ``struct xdp_md`` fields, 4 bytes at a time, read-only. Packet: only bytes
proven to lie before ``data_end`` (per pointer id as the kernel does, or by the packet length
the state has proven, which also covers variable offsets). Map values: within ``value_size``,
never written when the map is read-only to programs (BPF_F_RDONLY_PROG, frozen, devmaps), never
read when it is write-only (BPF_F_WRONLY_PROG). Ring buffer records: within their reserved
size. Sockets: only the ``struct bpf_sock`` reads the kernel allows (``sock.py``). Stack:
within 512 bytes, aligned, reads only of
written bytes, pointers only spilled and filled whole; an unprivileged program can never read a
pointer back as a number. Stack a helper may write forgets what it held (``check_helper_mem``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..helpers.prototypes import FILL, READ
from ..isa.opcodes import ATOMIC_FETCH, AtomicOp, InsnClass, Mode
from ..maps.spec import MapSpec
from ..uapi import AttachType, MapFlags, MapType
from ..xdp import XDP_MD_SIZE, XdpMd
from . import liveness, locks
from .alu import read_reg, write_reg
from .arith import sign_extend as sign_extend_value
from .arith import zext32
from .env import Env
from .ops import Op
from .reject import Reject, VerifierBug
from .scalar import Scalar
from .sock import check_sock_access
from .state import (
    EMPTY_SLOT,
    FULL_SPILL,
    PACKETS,
    POINTERS,
    PTR_TO_CTX,
    PTR_TO_MAP_VALUE,
    PTR_TO_PACKET,
    PTR_TO_PACKET_META,
    PTR_TO_STACK,
    SCALAR,
    SLOT,
    SOCKETS,
    TYPE_NAMES,
    UNKNOWN,
    ByteKind,
    Reg,
    RegType,
    Slot,
    State,
)

#: Packet offsets beyond this are never proven (kernel MAX_PACKET_OFF).
MAX_PACKET_OFF = 0xFFFF
_UNSIGNED = {n: Scalar.urange(0, (1 << (8 * n)) - 1) for n in (1, 2, 4, 8)}
_SIGNED = {n: Scalar.srange(-(1 << (8 * n - 1)), (1 << (8 * n - 1)) - 1) for n in (1, 2, 4, 8)}
_CTX_FIELDS = {XdpMd.DATA: RegType.PTR_TO_PACKET, XdpMd.DATA_END: RegType.PTR_TO_PACKET_END,
               XdpMd.DATA_META: RegType.PTR_TO_PACKET_META}
_MISC = (ByteKind.MISC,) * SLOT
_ZEROS = {n: (ByteKind.ZERO,) * n for n in (1, 2, 4, 8)}
_ZERO = Reg.const(0)
# Python 3.11 looks an enum member up through EnumType.__getattr__, at about ten times the cost
# of a global: the byte kinds the stack accesses compare against, by name.
_B_INVALID, _B_MISC, _B_ZERO, _B_SPILL = (ByteKind.INVALID, ByteKind.MISC, ByteKind.ZERO,
                                          ByteKind.SPILL)


#: What a load of n bytes gives: (n, sign-extended) -> register
_LOADED = {(n, sx): Reg.scalar(_SIGNED[n] if sx else _UNSIGNED[n])
           for n in (1, 2, 4, 8) for sx in (False, True)}


def loaded(size: int, sign_extend: bool = False) -> Reg:
    return _LOADED[size, sign_extend]


#: Maps whose values programs never write, whatever their flags: the kernel gives devmaps
#: BPF_F_RDONLY_PROG, and an xskmap lookup yields a socket, not memory to write.
_READ_ONLY_TYPES = frozenset({MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.XSKMAP})


def map_can_read(spec: MapSpec) -> bool:
    """Whether programs may read the map's values (not with BPF_F_WRONLY_PROG)."""
    return not spec.flags & MapFlags.WRONLY_PROG


def map_can_write(spec: MapSpec) -> bool:
    """Whether programs may change the map's values: not with BPF_F_RDONLY_PROG, not once
    frozen (``.rodata``: the device's frozen flag guards programs too), never a devmap's."""
    return not (spec.frozen or spec.flags & MapFlags.RDONLY_PROG
                or spec.type in _READ_ONLY_TYPES)


# ---------------------------------------------------------------- instructions
def check_load(env: Env, state: State, insn: Op) -> None:
    ptr = read_reg(state, insn.src)
    value = access(env, state, insn.src, ptr, insn.off, insn.nbytes, write=False,
                   sign_extend=insn.mode == Mode.MEMSX)
    write_reg(state, insn.dst, value)


def check_store(env: Env, state: State, insn: Op) -> None:
    ptr = read_reg(state, insn.dst)
    if insn.cls == InsnClass.ST:
        if ptr.type == PTR_TO_CTX:
            raise Reject(f"BPF_ST stores into R{insn.dst} ctx is not allowed")
        value = insn.imm_reg
        value_regno = -1
    else:
        value = read_reg(state, insn.src)
        value_regno = insn.src
    access(env, state, insn.dst, ptr, insn.off, insn.nbytes, write=True, value=value,
           value_regno=value_regno)


def check_atomic(env: Env, state: State, insn: Op) -> None:
    """A read-modify-write: the location must be readable and writable memory."""
    ptr = read_reg(state, insn.dst)
    src = read_reg(state, insn.src)
    size = insn.nbytes
    if src.type != SCALAR:
        raise Reject(f"R{insn.src} leaks addr into mem")
    if insn.imm == AtomicOp.CMPXCHG:
        r0 = read_reg(state, 0)
        if r0.type != SCALAR:
            raise Reject("R0 leaks addr into mem")
    if ptr.type not in (PTR_TO_STACK, PTR_TO_MAP_VALUE,
                        RegType.PTR_TO_RINGBUF_MEM, RegType.PTR_TO_MEM):
        raise Reject(f"BPF_ATOMIC stores into R{insn.dst} {TYPE_NAMES[ptr.type]} is not "
                     "allowed")
    if ptr.type != PTR_TO_STACK:
        # atomics need natural alignment wherever they land (the stack checks its own)
        var = ptr.var
        if (var.var.value + ptr.off + insn.off) % size or var.var.mask % size:
            raise Reject(f"misaligned value access off {var.var}+{ptr.off}+{insn.off} size "
                         f"{size}")
    old = access(env, state, insn.dst, ptr, insn.off, size, write=False)
    if old.type != SCALAR:
        raise Reject("cannot perform an atomic operation on a spilled pointer")
    access(env, state, insn.dst, ptr, insn.off, size, write=True, value=UNKNOWN,
           value_regno=insn.src)
    fetched = Reg.scalar(_UNSIGNED[size])
    if insn.imm == AtomicOp.CMPXCHG:
        write_reg(state, 0, fetched)
    elif insn.imm & ATOMIC_FETCH or insn.imm == AtomicOp.XCHG:
        write_reg(state, insn.src, fetched)


# ---------------------------------------------------------------- dispatch
def access(env: Env, state: State, regno: int, ptr: Reg, off: int, size: int, *, write: bool,
           value: Reg | None = None, value_regno: int = -1, sign_extend: bool = False) -> Reg:
    """Check one access through ``ptr``; for loads return the loaded register."""
    t = ptr.type
    if t == PTR_TO_CTX:
        return _ctx(env, ptr, regno, off, size, write, sign_extend)
    if t in PACKETS:
        if write and value is not None and value.type in POINTERS:
            raise Reject(f"R{value_regno} leaks addr into packet")
        check_packet(env, state, regno, ptr, off, size)
        return loaded(size, sign_extend)
    if t == PTR_TO_MAP_VALUE:
        if write and value is not None and value.type in POINTERS:
            raise Reject(f"R{value_regno} leaks addr into map")
        check_map_value(regno, ptr, off, size, read=not write, write=write)
        return loaded(size, sign_extend)
    if t == PTR_TO_STACK:
        if write:
            if value is None:
                raise VerifierBug(f"a store through R{regno} without a value")
            stack_write(env, state, regno, ptr, off, size, value, value_regno)
            return value
        reg = stack_read(env, state, regno, ptr, off, size)
        if sign_extend and reg.type == SCALAR and size < 8:
            return Reg.scalar(sign_extend_value(reg.var, size * 8))
        return reg
    if t == RegType.PTR_TO_RINGBUF_MEM or t == RegType.PTR_TO_MEM:
        if write and value is not None and value.type in POINTERS:
            raise Reject(f"R{value_regno} leaks addr into mem")
        check_mem_region(regno, ptr, off, size)
        return loaded(size, sign_extend)
    if t in SOCKETS:
        if write:
            raise Reject(f"R{regno} cannot write into {TYPE_NAMES[t]}")
        check_sock_access(regno, ptr, off, size)
        return loaded(size, sign_extend)
    raise Reject(f"R{regno} invalid mem access '{TYPE_NAMES[t]}'")


# ---------------------------------------------------------------- context


def _ctx(env: Env, ptr: Reg, regno: int, off: int, size: int, write: bool,
         sign_extend: bool) -> Reg:
    if ptr.off or not ptr.var.is_const or ptr.var.value:
        raise Reject(f"dereference of modified ctx ptr R{regno} off={ptr.off} disallowed")
    if write or size != 4 or off < 0 or off + size > XDP_MD_SIZE or off % 4:
        raise Reject(f"invalid bpf_context access off={off} size={size}")
    if off == XdpMd.EGRESS_IFINDEX and env.expected_attach_type != AttachType.XDP_DEVMAP:
        # only a program a devmap entry runs has an egress interface (kernel
        # xdp_is_valid_access)
        raise Reject(f"invalid bpf_context access off={off} size={size}")
    kind = _CTX_FIELDS.get(XdpMd(off))
    if kind is None:
        return loaded(4, sign_extend)
    if sign_extend:
        raise Reject(f"invalid bpf_context access off={off} size={size}: a sign-extending "
                     "load of a packet pointer field")
    return Reg(kind)


# ---------------------------------------------------------------- packet
def check_packet(env: Env, state: State, regno: int, ptr: Reg, off: int, size: int) -> None:
    """Bytes [off, off+size) past ``ptr`` lie inside the packet (or metadata) for certain."""
    fixed = ptr.off + off
    var = ptr.var
    if var.smin < 0 or fixed + var.smin < 0:
        raise Reject(f"R{regno} min value is negative, either use unsigned index or do a "
                     "if (index >=0) check.")
    proven = state.pkt_len if ptr.type == PTR_TO_PACKET else state.meta_len
    by_id = fixed + size <= ptr.range and (ptr.id != 0 or var.is_const)
    by_len = var.umax <= MAX_PACKET_OFF and fixed + var.umax + size <= proven
    if by_len and not by_id:
        env.demand_packet(state, fixed + var.umax + size, meta=ptr.type != PTR_TO_PACKET)
    elif not by_id:
        what = "packet" if ptr.type == PTR_TO_PACKET else "packet metadata"
        extra = "" if var.is_const else f", var_off={var.var},umax={var.umax}"
        raise Reject(f"invalid access to {what}, off={fixed} size={size}, R{regno}(id={ptr.id},"
                     f"off={ptr.off},r={max(ptr.range, proven)}{extra})")


# ---------------------------------------------------------------- map values
def check_map_value(regno: int, ptr: Reg, off: int, size: int, *, read: bool,
                    write: bool) -> None:
    """Bytes [off, off+size) past ``ptr`` lie in the value, and the map lets programs read
    (``read``) and write (``write``) them; an atomic operation needs both."""
    spec = ptr.map
    if spec is None:
        raise VerifierBug(f"R{regno} points to a map value without its map")
    fixed = ptr.off + off
    var = ptr.var
    vs = spec.value_size
    if write and not map_can_write(spec):
        raise Reject(f"write into map forbidden, value_size={vs} off={fixed} size={size}")
    if read and not map_can_read(spec):
        raise Reject(f"read from map forbidden, value_size={vs} off={fixed} size={size}")
    if var.is_const:
        if fixed < 0 or fixed + size > vs:
            raise Reject(f"invalid access to map value, value_size={vs} off={fixed} "
                         f"size={size}")
        if spec.spin_lock_off is not None:
            locks.check_field(spec, fixed + var.value, fixed + var.value + size)
        return
    if fixed + var.smin < 0:
        raise Reject(f"R{regno} min value is outside of the allowed memory range")
    if var.umax >= 1 << 29:
        raise Reject(f"R{regno} unbounded memory access, make sure to bounds check any such "
                     "access")
    if fixed + var.umax + size > vs:
        raise Reject(f"R{regno} max value is outside of the allowed memory range "
                     f"(value_size={vs} off={fixed} umax={var.umax} size={size})")
    if spec.spin_lock_off is not None:
        locks.check_field(spec, fixed + var.smin, fixed + var.umax + size)


# ---------------------------------------------------------------- ring buffer memory
def check_mem_region(regno: int, ptr: Reg, off: int, size: int) -> None:
    """Bytes [off, off+size) past ``ptr`` lie in the reserved ring buffer record, whose size
    is the register's ``range`` (the kernel's ``check_mem_region_access``)."""
    fixed = ptr.off + off
    var = ptr.var
    mem_size = ptr.range
    if var.is_const:
        if fixed + var.value < 0 or fixed + var.value + size > mem_size:
            raise Reject(f"invalid access to memory, mem_size={mem_size} "
                         f"off={fixed + var.value} size={size}")
        return
    if fixed + var.smin < 0:
        raise Reject(f"R{regno} min value is negative, either use unsigned index or do a "
                     "if (index >=0) check.")
    if var.umax >= 1 << 29:
        raise Reject(f"R{regno} unbounded memory access, make sure to bounds check any such "
                     "access")
    if fixed + var.umax + size > mem_size:
        raise Reject(f"invalid access to memory, mem_size={mem_size} off={fixed + var.umax} "
                     f"size={size}")


# ---------------------------------------------------------------- stack
def _stack_bounds(env: Env, state: State, regno: int, ptr: Reg, off: int, size: int,
                  write: bool) -> tuple[int, int]:
    """The lowest and highest start offset of the access (relative to its frame's fp)."""
    fixed = ptr.off + off
    var = ptr.var
    limit = env.caps.limits.stack_size
    if var.is_const:
        start = fixed + var.smin
        if start < -limit or start + size > 0:
            raise Reject(f"invalid stack off={start} size={size}")
        if start % size:
            raise Reject(f"misaligned stack access off {var.var}+{ptr.off}+{off} size {size}")
        lo, hi = start, start
    else:
        lo, hi = fixed + var.smin, fixed + var.smax
        if lo < -limit or hi + size > 0:
            what = "write to" if write else "read from"
            raise Reject(f"invalid variable-offset {what} stack R{regno} var_off={var.var} "
                         f"off={off} size={size}")
        if (var.var.value + fixed) % size or var.var.mask % size:
            raise Reject(f"misaligned stack access off {var.var}+{ptr.off}+{off} size {size}")
    env.note_stack(state.frames[ptr.frameno].subprog, -lo)
    return lo, hi


def _locate(addr: int) -> tuple[int, int]:
    """Slot number and byte index (0 = lowest address) of stack byte ``fp+addr``."""
    k = (-addr - 1) // SLOT
    return k, addr + (k + 1) * SLOT


def truncated(reg: Reg, size: int) -> Reg:
    """A scalar register as a ``size``-byte fill gives it back: its low bytes, zero-extended
    (kernel: the spilled register copied, then ``coerce_reg_to_size``). A value that fits
    comes back whole, still linked to its copies."""
    var = reg.var
    if size == SLOT or var.umax < 1 << (8 * size):
        return reg
    if var.is_const:
        return Reg.const(var.value & ((1 << (8 * size)) - 1))
    return Reg.scalar(zext32(var)) if size == 4 else loaded(size)


def _without_spill(slot: Slot) -> Slot:
    """``slot`` once part of it is overwritten: the spilled register is gone and its bytes
    hold unknown numbers; bytes it did not cover keep what they were (never written stays
    never written)."""
    plain = _WITHOUT_SPILL.get(slot.kinds)
    if plain is None:
        plain = _WITHOUT_SPILL[slot.kinds] = Slot(tuple(_B_MISC if kind == _B_SPILL else kind
                                                        for kind in slot.kinds))
    return plain


#: ``_without_spill`` by the kinds of the slot (slots share a few kinds tuples)
_WITHOUT_SPILL: dict[tuple[ByteKind, ...], Slot] = {}


def stack_read(env: Env, state: State, regno: int, ptr: Reg, off: int, size: int) -> Reg:
    lo, hi = _stack_bounds(env, state, regno, ptr, off, size, write=False)
    if env.precision is not None:
        liveness.read(state, ptr.frameno, lo, hi + size)
    stack = state.frames[ptr.frameno].stack
    if lo == hi:
        k, i = _locate(lo)
        slot = stack.get(k, EMPTY_SLOT)
        spilled = slot.spilled
        if spilled is not None:
            spilled_bytes = slot.spilled_bytes
            if size == SLOT and spilled_bytes == SLOT:
                return spilled
            if spilled.type != SCALAR:
                raise Reject("invalid size of register fill")
            if i + size <= spilled_bytes:  # within the bytes the register was spilled to
                if spilled.var.is_const:
                    part = (spilled.var.value >> (8 * i)) & ((1 << (8 * size)) - 1)
                    return Reg.const(part)
                return truncated(spilled, size) if i == 0 else loaded(size)
        # aligned (``_stack_bounds``), so within this slot
        kinds = slot.kinds[i:i + size]
        if _B_INVALID in kinds:
            raise Reject(f"invalid read from stack off {lo}+{kinds.index(_B_INVALID)} "
                         f"size {size}")
        if kinds == _ZEROS[size]:
            return _ZERO
        if spilled is not None and spilled.is_const and spilled.var.value == 0 and \
                _B_MISC not in kinds:
            return _ZERO  # zeros, some of them the bytes of a spilled zero
        return loaded(size)
    zero = True
    for addr in range(lo, hi + size):
        k, i = _locate(addr)
        slot = stack.get(k, EMPTY_SLOT)
        kind = slot.kinds[i]
        if kind == _B_INVALID:
            if lo == hi:
                raise Reject(f"invalid read from stack off {lo}+{addr - lo} size {size}")
            raise Reject(f"invalid variable-offset read from stack R{regno} var_off="
                         f"{ptr.var.var} off={off} size={size}: fp{addr} is not initialized")
        if kind == _B_SPILL:
            if slot.spilled is None:
                raise VerifierBug(f"stack byte fp{addr} is marked spilled without a "
                                  "register")
            if slot.spilled.type != SCALAR:
                raise Reject(f"invalid read from stack off {lo}+{addr - lo} size {size}: part "
                             "of a spilled pointer")
            zero = zero and slot.spilled.is_const and slot.spilled.var.value == 0
        elif kind != _B_ZERO:
            zero = False
    return Reg.const(0) if zero else loaded(size)


def stack_write(env: Env, state: State, regno: int, ptr: Reg, off: int, size: int, value: Reg,
                value_regno: int) -> None:
    lo, hi = _stack_bounds(env, state, regno, ptr, off, size, write=True)
    stack = state.frames[ptr.frameno].stack
    if value.type == PTR_TO_STACK and value.frameno > ptr.frameno:
        raise Reject("cannot spill pointers to stack into stack frame of the caller")
    if lo == hi and size == SLOT and lo % SLOT == 0:
        stack[_locate(lo)[0]] = Slot(FULL_SPILL, value)
        if env.precision is not None:
            liveness.wrote(state, ptr.frameno, lo)
        return
    if value.type.is_pointer:
        if lo != hi:
            raise Reject(f"R{value_regno} variable-offset stack write of a pointer prohibited")
        raise Reject("invalid size of register spill")
    zero = value.is_const and value.var.value == 0
    new_kind = _B_ZERO if zero else _B_MISC
    if lo == hi:  # aligned (``_stack_bounds``), so within one slot
        k, i = _locate(lo)
        slot = stack.get(k, EMPTY_SLOT)
        if slot.spilled is not None:
            if slot.spilled.type != SCALAR:
                raise Reject("attempt to corrupt spilled pointer on stack")
            slot = _without_spill(slot)
        if i == 0:
            # a number stored at the start of a slot is kept, as a narrow spill (the kernel
            # does so for loaders with CAP_BPF, which XDP always has), zero included
            if value.id and value.var.umax >= 1 << (8 * size):
                value = value.with_id(0)  # the stack holds part of it: no longer a copy
            stack[k] = Slot(FULL_SPILL[:size] + slot.kinds[size:], value)
            return
        kinds = list(slot.kinds)
        kinds[i:i + size] = (new_kind,) * size
        stack[k] = Slot(tuple(kinds))
        return
    for addr in range(lo, hi + size):  # a variable offset: any of these bytes may be written
        k, i = _locate(addr)
        slot = stack.get(k, EMPTY_SLOT)
        if slot.spilled is not None:
            if slot.spilled.type != SCALAR:
                raise Reject("spilled ptr in range of var-offset stack write")
            slot = _without_spill(slot)
        kinds = list(slot.kinds)
        if kinds[i] != _B_INVALID and kinds[i] != new_kind:
            kinds[i] = _B_MISC  # some byte in the range was written, not known which
        stack[k] = Slot(tuple(kinds))


# ---------------------------------------------------------------- helper memory arguments
#: What a helper call does to the stack once all its arguments are checked (or None).
HelperWrite = Callable[[], None] | None


def check_helper_mem(env: Env, state: State, regno: int, ptr: Reg, size: int, *, mode: str,
                     exact: bool = True, align: int = 0) -> HelperWrite:
    """A helper reads (``read``), reads and writes (``rw``) or fills (``fill``) up to ``size``
    bytes at ``ptr``; ``exact``: it uses exactly ``size`` bytes (a constant size argument).

    Reading needs every byte written and no pointer among them (that would hand an address to
    the helper, e.g. into a map) and a map programs may read. Writing needs a map programs may
    write, and leaves every stack byte the helper may have written holding an unknown number:
    zeros, constants and spilled registers there are forgotten. Filling initialises the stack
    only where the bytes written are certain (a constant offset and size); otherwise the bytes
    must be initialised already, as the kernel requires. ``align``: the pointer must be a
    multiple of it (MEM_ALIGNED).

    Nothing changes here: the stack write is returned, for the caller to make once every
    argument is checked (an argument checked later must not see what the helper writes).
    """
    t = ptr.type
    reads, writes = mode != FILL, mode != READ
    write: HelperWrite = None
    if t in (PTR_TO_PACKET, PTR_TO_PACKET_META):
        if size:
            check_packet(env, state, regno, ptr, 0, size)
    elif t == PTR_TO_MAP_VALUE:
        if size:
            check_map_value(regno, ptr, 0, size, read=reads, write=writes)
    elif t == RegType.PTR_TO_RINGBUF_MEM or t == RegType.PTR_TO_MEM:
        if size:
            check_mem_region(regno, ptr, 0, size)
    elif t == PTR_TO_STACK:
        if size:
            write = _helper_stack(env, state, regno, ptr, size, mode, exact)
    else:
        raise Reject(f"R{regno} type={TYPE_NAMES[t]} expected=fp, pkt, pkt_meta, map_value, "
                     "ringbuf_mem, mem")
    if align > 1:
        _check_aligned(regno, ptr, align)
    return write


def _check_aligned(regno: int, ptr: Reg, align: int) -> None:
    """The kernel's strict alignment check (packet offsets count from a 2-byte IP align)."""
    known = ptr.var.var
    base = 2 if ptr.type in PACKETS else 0
    if not (known.mask & (align - 1) or (known.value + base + ptr.off) & (align - 1)):
        return
    if ptr.type in PACKETS:
        raise Reject(f"misaligned packet access off {base}+{known}+{ptr.off}+0 size {align}")
    what = "stack" if ptr.type == PTR_TO_STACK else "value"
    raise Reject(f"misaligned {what} access off {known}+{ptr.off}+0 size {align}: R{regno} "
                 f"must be {align}-byte aligned")


def _helper_stack(env: Env, state: State, regno: int, ptr: Reg, size: int, mode: str,
                  exact: bool) -> HelperWrite:
    fixed = ptr.off
    var = ptr.var
    limit = env.caps.limits.stack_size
    lo, hi = fixed + var.smin, fixed + var.smax
    if lo < -limit or hi + size > 0 or var.umax >= 1 << 29 and not var.is_const:
        raise Reject(f"invalid indirect access to stack R{regno} off={lo} size={size}")
    env.note_stack(state.frames[ptr.frameno].subprog, -lo)
    stack = state.frames[ptr.frameno].stack
    end = hi + size
    if mode != FILL and env.precision is not None:
        liveness.read(state, ptr.frameno, lo, end)
    if mode == FILL and exact and var.is_const:
        for k in range(_locate(end - 1)[0], _locate(lo)[0] + 1):
            spilled = stack.get(k, EMPTY_SLOT).spilled
            if spilled is not None and spilled.type != SCALAR:
                raise Reject("attempt to corrupt spilled pointer on stack: a helper would "
                             f"write fp{max(lo, -8 * (k + 1))}")
        return lambda: _fill_stack(stack, lo, end)
    # Every byte in [lo, end) may be read, or may be written without certainty which:
    # all of them must be initialised, and any write leaves all of them unknown.
    addr = lo
    while addr < end:  # slot by slot, in address order
        k, i = _locate(addr)
        n = min(SLOT - i, end - addr)  # the bytes of slot k in the range: i .. i + n - 1
        slot = stack.get(k, EMPTY_SLOT)
        spilled = slot.spilled  # in its first bytes or all of them (a pointer: all)
        if spilled is not None and spilled.type != SCALAR:
            why = ("it holds a spilled pointer" if mode != FILL else
                   "a helper writing where it is not certain may not overwrite a spilled "
                   "pointer")
            raise Reject(f"invalid indirect read from stack R{regno} off {lo}+{addr - lo} "
                         f"size {size}: {why}")
        if _B_INVALID in slot.kinds[i:i + n]:
            first = addr + slot.kinds[i:i + n].index(_B_INVALID)
            why = "" if mode != FILL else (
                ": a helper filling memory at a variable offset or of a variable size "
                "needs all of it initialised first")
            raise Reject(f"invalid indirect read from stack R{regno} off {lo}+{first - lo} "
                         f"size {size}{why}")
        addr += n
    if mode == READ:
        return None
    return lambda: _fill_stack(stack, lo, end)


def _fill_stack(stack: dict[int, Slot], lo: int, end: int) -> None:
    """Bytes [lo, end) may have been written by a helper: they hold unknown numbers, and a
    spilled number they overlap is gone (checked before: no spilled pointer is among them)."""
    addr = lo
    while addr < end:
        k, i = _locate(addr)
        n = min(SLOT - i, end - addr)
        slot = stack.get(k, EMPTY_SLOT)
        if slot.spilled is not None:
            slot = _without_spill(slot)
            stack[k] = slot
        if slot.kinds[i:i + n] != _MISC[:n]:
            kinds = list(slot.kinds)
            kinds[i:i + n] = _MISC[:n]
            stack[k] = Slot(tuple(kinds))
        addr += n
