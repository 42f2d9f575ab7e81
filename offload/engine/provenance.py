"""Pointer provenance in the reference interpreter: every register carries the region it was
derived from, and memory is reached only through pointers into that region.

A tag is the slot of a region (its address >> 32), 0 for a plain number, or the value itself
for an opaque object pointer (a map pointer from ``lddw``). The rules follow what a verified
program may do with pointers: ``mov`` copies the tag; a 64-bit add or sub of a pointer and a
number keeps it; anything else (pointer minus pointer, 32-bit operations, every other
operation) gives a number. Loads give numbers, except the context's ``data``/``data_end``/
``data_meta`` fields (pointers into the packet) and an 8-byte fill of a pointer spilled to
the stack (recorded in ``Execution.spills`` with its value; any other store over it forgets it,
and a fill whose value differs gives a number). Helper results that are pointers get the tag
of what they point to. An access, or a helper's memory argument, whose address does not lie
in the region its tag names is a :class:`~.memory.ProvenanceFault`: even if the verifier let
a wrong address through, a program reaches only memory it was given.

The register file holds the values in slots 0-10 and their tags in slots 11-21 (``TAG``), so
the steps keep the interpreter's signature and cost one list store more. An access compares
the address's region slot with the tag and nothing else: a number below 4 GiB passes that
comparison (slot 0 with tag 0) and faults in the memory model, where slot 0 is never mapped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..isa.instruction import Instruction
from ..isa.opcodes import (
    ATOMIC_FETCH,
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    Mode,
    PseudoSrc,
    Source,
)
from .alu import (
    ALU32_OPS,
    ALU64_OPS,
    ATOMIC_ARITH,
    M32,
    M64,
    bswap,
    sign_extend,
    to_little_endian,
)
from .memory import REGION_SHIFT, RegionKind

STACK = RegionKind.STACK
# The steps below compare ``address >> 32`` with a tag: 32 is REGION_SHIFT, written out on
# the hot paths (a constant costs less than a global lookup).

#: Offset of a register's tag in the register file: r[n + TAG] is the tag of rN.
TAG = 11
Step = Callable[[list[int], Any], int]


class ArgUse(Enum):
    """What a helper does with a pointer argument, as far as provenance goes."""

    MEMORY = "memory"  # reads or writes through it: it must lie in its tag's region
    MEMORY_OR_NULL = "memory or NULL"  # the same, or NULL
    MAP = "map pointer"  # an object pointer the program was given, unchanged


@dataclass(frozen=True, slots=True)
class HelperSig:
    """A helper's pointer arguments (register number and use) and whether it returns a
    pointer, for the provenance checks around a call."""

    name: str
    args: tuple[tuple[int, ArgUse], ...] = ()
    returns_pointer: bool = False


def check_helper_args(sig: HelperSig, r: list[int], ex: Any) -> None:
    """Each pointer argument of a call must be what the program was given."""
    for regno, use in sig.args:
        value, tag = r[regno], r[regno + TAG]
        if use is ArgUse.MAP:
            if not tag or value != tag:
                raise ex.memory.provenance_fault(
                    f"R{regno}", tag, value, 0, False,
                    f": {sig.name} needs a map pointer the program was given")
            continue
        if use is ArgUse.MEMORY_OR_NULL and value == 0:
            continue
        if not tag or value >> REGION_SHIFT != tag:
            raise ex.memory.provenance_fault(f"R{regno}", tag, value, 0, False,
                                             f" (an argument of {sig.name})")


def tagged_alu_step(insn: Instruction, slot: int) -> Step:
    d, s = insn.dst, insn.src
    td, ts = d + TAG, s + TAG
    nxt = slot + 1
    op = insn.alu_op
    wide = insn.cls == InsnClass.ALU64
    if op == AluOp.END:
        width = insn.imm
        convert: Callable[[int], int]
        if wide or insn.source == Endian.TO_BE:
            def convert(v: int) -> int:
                return bswap(v, width)
        else:
            def convert(v: int) -> int:
                return to_little_endian(v, width)

        def end(r: list[int], ex: Any) -> int:
            r[d] = convert(r[d])
            r[td] = 0
            return nxt
        return end
    fn = (ALU64_OPS if wide else ALU32_OPS)[(op, insn.off)]
    plain64 = wide and insn.off == 0
    if insn.source == Source.X:
        if plain64 and op == AluOp.MOV:
            def mov(r: list[int], ex: Any) -> int:
                r[d] = r[s]
                r[td] = r[ts]
                return nxt
            return mov
        if plain64 and op == AluOp.ADD:
            def add(r: list[int], ex: Any) -> int:
                r[d] = (r[d] + r[s]) & M64
                a, b = r[td], r[ts]
                r[td] = 0 if a and b else a or b  # pointer + number, either way round
                return nxt
            return add
        if plain64 and op == AluOp.SUB:
            def sub(r: list[int], ex: Any) -> int:
                r[d] = (r[d] - r[s]) & M64
                if r[ts]:
                    r[td] = 0  # pointer - pointer, number - pointer: a number
                return nxt
            return sub
        if wide:
            def step_reg(r: list[int], ex: Any) -> int:
                r[d] = fn(r[d], r[s])
                r[td] = 0
                return nxt
            return step_reg

        def step_reg32(r: list[int], ex: Any) -> int:
            r[d] = fn(r[d] & M32, r[s] & M32)
            r[td] = 0
            return nxt
        return step_reg32
    imm = insn.imm & (M64 if wide else M32)
    if plain64 and op in (AluOp.ADD, AluOp.SUB):
        def keep(r: list[int], ex: Any) -> int:
            r[d] = fn(r[d], imm)  # a pointer moved by a constant stays a pointer
            return nxt
        return keep
    if wide:
        def step_imm(r: list[int], ex: Any) -> int:
            r[d] = fn(r[d], imm)
            r[td] = 0
            return nxt
        return step_imm

    def step_imm32(r: list[int], ex: Any) -> int:
        r[d] = fn(r[d] & M32, imm)
        r[td] = 0
        return nxt
    return step_imm32


def lddw_tag(insn: Instruction, value: int) -> int:
    """What an ``lddw`` loads: a number, a pointer into a map value, or a map pointer (a
    subprogram's address is no memory: untagged, it faults wherever it is dereferenced)."""
    if insn.src in (PseudoSrc.IMM64, PseudoSrc.FUNC) or not value:
        return 0
    if insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
        return value >> REGION_SHIFT
    return value


def forget_spills(spills: dict[int, tuple[int, int]], address: int, size: int) -> None:
    """A store over a spilled pointer turns the slot back into bytes."""
    spills.pop(address & ~7, None)
    spills.pop((address + size - 1) & ~7, None)


def tagged_memory_step(insn: Instruction, slot: int) -> Step:
    d, s, off = insn.dst, insn.src, insn.off
    td, ts = d + TAG, s + TAG
    nxt = slot + 1
    size = insn.size.nbytes
    cls, mode = insn.cls, insn.mode
    if cls == InsnClass.LDX:
        return _tagged_load_step(insn, slot)
    who = f"R{d}"
    if cls == InsnClass.ST:
        value = insn.imm & M64

        def store_imm(r: list[int], ex: Any) -> int:
            a = (r[d] + off) & M64
            if a >> 32 != r[td]:
                raise ex.memory.provenance_fault(who, r[td], a, size, True)
            ex.memory.store(a, size, value)
            if ex.spills:
                forget_spills(ex.spills, a, size)
            return nxt
        return store_imm
    if mode == Mode.ATOMIC:
        return _tagged_atomic_step(insn, slot)
    if size != 8:
        def store(r: list[int], ex: Any) -> int:
            a = (r[d] + off) & M64
            if a >> 32 != r[td]:
                raise ex.memory.provenance_fault(who, r[td], a, size, True)
            ex.memory.store(a, size, r[s])
            if ex.spills:
                forget_spills(ex.spills, a, size)
            return nxt
        return store

    def store8(r: list[int], ex: Any) -> int:
        """An 8-byte store: a pointer stored whole, aligned, on the stack is a spill."""
        a = (r[d] + off) & M64
        if a >> 32 != r[td]:
            raise ex.memory.provenance_fault(who, r[td], a, 8, True)
        value = r[s]
        region = ex.memory.store(a, 8, value)
        if r[ts] and not a & 7 and region.kind is STACK:
            if ex.spills is None:
                ex.spills = {}
            ex.spills[a] = (r[ts], value)
        elif ex.spills:
            forget_spills(ex.spills, a, 8)
        return nxt
    return store8


def _tagged_load_step(insn: Instruction, slot: int) -> Step:
    """Loads give numbers, but for pointers read from computed memory (the context's packet
    fields) and the 8-byte fill of a spilled pointer whose bytes are unchanged."""
    d, s, off = insn.dst, insn.src, insn.off
    td, ts = d + TAG, s + TAG
    nxt = slot + 1
    size = insn.size.nbytes
    who = f"R{s}"
    if insn.mode == Mode.MEMSX:
        bits = size * 8

        def load_sx(r: list[int], ex: Any) -> int:
            a = (r[s] + off) & M64
            if a >> 32 != r[ts]:
                raise ex.memory.provenance_fault(who, r[ts], a, size, False)
            r[d] = sign_extend(ex.memory.load(a, size), bits)
            r[td] = 0
            return nxt
        return load_sx
    if size != 8:
        def load(r: list[int], ex: Any) -> int:
            a = (r[s] + off) & M64
            if a >> 32 != r[ts]:
                raise ex.memory.provenance_fault(who, r[ts], a, size, False)
            r[d], r[td] = ex.memory.load_tagged(a, size)
            return nxt
        return load

    def load8(r: list[int], ex: Any) -> int:
        a = (r[s] + off) & M64
        if a >> 32 != r[ts]:
            raise ex.memory.provenance_fault(who, r[ts], a, 8, False)
        value, tag = ex.memory.load_tagged(a, 8)
        spills = ex.spills
        if spills:
            spilled = spills.get(a)
            if spilled is not None and spilled[1] == value:
                tag = spilled[0]
        r[d] = value
        r[td] = tag
        return nxt
    return load8


def _tagged_atomic_step(insn: Instruction, slot: int) -> Step:
    """Atomic read-modify-write; what it fetches is a number."""
    d, s, off = insn.dst, insn.src, insn.off
    td, ts = d + TAG, s + TAG
    nxt = slot + 1
    size = insn.size.nbytes
    mask = (1 << (size * 8)) - 1
    imm = insn.imm
    who = f"R{d}"
    combine = None if imm in (AtomicOp.CMPXCHG, AtomicOp.XCHG) else \
        ATOMIC_ARITH[imm & ~ATOMIC_FETCH]

    def atomic(r: list[int], ex: Any) -> int:
        a = (r[d] + off) & M64
        if a >> 32 != r[td]:
            raise ex.memory.provenance_fault(who, r[td], a, size, True)
        memory = ex.memory
        old = memory.load(a, size)
        if imm == AtomicOp.CMPXCHG:
            if old == r[0] & mask:
                memory.store(a, size, r[s])
            r[0], r[TAG] = old, 0
        elif imm == AtomicOp.XCHG:
            memory.store(a, size, r[s])
            r[s], r[ts] = old, 0
        else:
            # combine is None only for the exchanges handled above
            memory.store(a, size, combine(old, r[s]) & mask)  # type: ignore[misc]  # see above
            if imm & ATOMIC_FETCH:
                r[s], r[ts] = old, 0
        if ex.spills:
            forget_spills(ex.spills, a, size)
        return nxt
    return atomic
