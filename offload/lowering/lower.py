"""Lowering a program to an older ISA version: the driver over every rewrite.

Each instruction the target version does not define (``versions.required_version``) is
replaced by an equivalent sequence from :mod:`.jumps`, :mod:`.arith`, :mod:`.division` or
:mod:`.atomics`; scratch registers come from liveness (:mod:`offload.isa.liveness`), or are spilled to a
stack slot below the function's deepest use (:mod:`.frame`); :mod:`.placement` then
recomputes every offset. Anything that cannot be done - an atomic operation without
``allow_non_atomic``, a spill with no static frame or no room in 512 bytes, an offset that no
longer fits - raises :class:`LoweringError` naming the original instruction, and nothing is
returned: a lowering is all or nothing. The result is still to be verified by the target, as
any program is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from offload.isa import AluOp, InsnClass, Instruction, JmpOp, Mode, PseudoSrc
from offload.isa.liveness import live_out, uses_defs
from offload.isa.structure import Layout, StructureError, build_layout
from offload.isa.versions import program_version, required_version

from .arith import ByteOrder, lower_bswap, lower_ldxs, lower_movsx
from .atomics import lower_atomic
from .division import lower_signed_division
from .emit import TARGET, Emit, Item
from .errors import LoweringError
from .frame import FrameUse, frame_use
from .jumps import lower_gotol, lower_jmp32, lower_v2_jump
from .placement import Expansion, OffsetOverflow, place
from .report import Lowering, LoweringReport, kind_of
from .scratch import ScratchPool, with_spills
from .upper_halves import uses_upper

STACK_LIMIT = 512
VERSIONS = (1, 2, 3, 4)


def lower(insns: Sequence[Instruction], target_version: int, *, allow_non_atomic: bool = False,
          byte_order: ByteOrder = "little") -> list[Instruction]:
    """The program rewritten to use only ISA ``target_version`` instructions.

    ``byte_order`` is the target device's: ``bswap`` becomes ``be`` on a little-endian device
    and ``le`` on a big-endian one. ``allow_non_atomic`` lowers v3 atomics to load/op/store,
    correct only on a single-threaded target.
    """
    return list(lower_with_report(insns, target_version, allow_non_atomic=allow_non_atomic,
                                  byte_order=byte_order).instructions)


def lower_with_report(insns: Sequence[Instruction], target_version: int, *,
                      allow_non_atomic: bool = False,
                      byte_order: ByteOrder = "little") -> Lowering:
    """:func:`lower`, with the report and the map from old slots to new ones."""
    if target_version not in VERSIONS:
        raise LoweringError(f"ISA version {target_version} does not exist; it is 1 to 4",
                            insn_index=None, target_version=target_version)
    if byte_order not in ("little", "big"):
        raise LoweringError(f"byte order {byte_order!r} is neither 'little' nor 'big'",
                            insn_index=None, target_version=target_version)
    insns = tuple(insns)
    try:
        layout = build_layout(insns)
    except StructureError as err:
        raise LoweringError(f"the program is malformed: {err.reason}",
                            insn_index=err.insn_index, target_version=target_version) from None
    source = program_version(insns)
    if source <= target_version:
        identity = tuple(range(layout.size + 1))
        report = LoweringReport(source, target_version, layout.size, layout.size)
        return Lowering(insns, report, identity)
    return _Lowerer(layout, target_version, allow_non_atomic, byte_order).run(source)


def _target_slot(insn: Instruction, slot: int) -> int | None:
    """The original slot a jump, ``call local`` or ``lddw`` of a function refers to."""
    if insn.is_jump:
        return slot + 1 + insn.jump_offset
    if insn.is_local_call or insn.pseudo == PseudoSrc.FUNC:
        return slot + 1 + insn.imm
    return None


class _Lowerer:
    def __init__(self, layout: Layout, target: int, allow_non_atomic: bool,
                 byte_order: ByteOrder) -> None:
        self.layout = layout
        self.target = target
        self.allow_non_atomic = allow_non_atomic
        self.byte_order = byte_order
        self.live = live_out(layout)
        self.upper_live = live_out(layout, uses_upper)
        self.frames: dict[int, FrameUse] = {}
        self.spills = 0
        self.stack_growth = 0

    def fail(self, reason: str, slot: int | None) -> LoweringError:
        return LoweringError(reason, insn_index=slot, target_version=self.target)

    def run(self, source: int) -> Lowering:
        counts: Counter[str] = Counter()
        expansions: list[Expansion] = []
        for slot, insn in enumerate(self.layout.slots):
            if insn is None:
                continue
            target = _target_slot(insn, slot)
            if required_version(insn) <= self.target:
                to = TARGET if target is not None else None
                expansions.append(Expansion(slot, (Emit(insn, to),), target))
                continue
            expansions.append(Expansion(slot, tuple(self.expand(insn, slot)), target))
            counts[kind_of(insn)] += 1
        try:
            out, slot_map = place(expansions, self.layout.size)
        except OffsetOverflow as err:
            raise self.fail(self._overflow_reason(err), err.slot) from None
        self._check(out)
        report = LoweringReport(source, self.target, self.layout.size, slot_map[-1],
                                tuple(sorted(counts.items())), self.spills, self.stack_growth)
        return Lowering(tuple(out), report, tuple(slot_map))

    # ------------------------------------------------------------------ one instruction
    def expand(self, insn: Instruction, slot: int) -> list[Item]:
        uses, defs = uses_defs(insn)
        pool = ScratchPool(self.live[slot], uses | defs)
        items = self._rewrite(insn, slot, pool)
        if pool.spilled:
            offsets = self._spill_slots(slot, len(pool.spilled))
            items = with_spills(items, pool.spilled, offsets)
            self.spills += 1
        return items

    def _rewrite(self, insn: Instruction, slot: int, pool: ScratchPool) -> list[Item]:
        cls = insn.cls
        if cls == InsnClass.JMP32:
            if insn.jmp_op == JmpOp.JA:
                return lower_gotol(insn)
            return lower_jmp32(insn, pool, self.target, ~self.upper_live[slot])
        if cls == InsnClass.JMP:
            return lower_v2_jump(insn, self.target)
        if cls.is_alu:
            op = insn.alu_op
            if op == AluOp.END:
                return lower_bswap(insn, self.byte_order)
            if op == AluOp.MOV:
                return lower_movsx(insn)
            return lower_signed_division(insn, pool)
        if cls == InsnClass.LDX and insn.mode == Mode.MEMSX:
            return lower_ldxs(insn)
        if not self.allow_non_atomic:
            raise self.fail(
                f"'{kind_of(insn)}' is an atomic operation and ISA v{self.target} has no "
                "atomic operation but 'lock add'; lowering it to a load, an operation and a "
                "store is correct only on a single-threaded target (allow_non_atomic)", slot)
        return lower_atomic(insn, pool)

    def _spill_slots(self, slot: int, count: int) -> list[int]:
        """Stack offsets (r10-relative) for ``count`` spilled registers at ``slot``."""
        index = self.layout.subprogram_of(slot)
        frame = self.frames.get(index)
        if frame is None:
            frame = self.frames[index] = frame_use(self.layout, index)
        if frame.not_static is not None:
            raise self.fail("no register is free here and a spill needs a stack slot, but the "
                            f"function's stack use is not static: {frame.not_static}", slot)
        base = -(-frame.depth // 8) * 8
        needed = base + 8 * count
        if needed > STACK_LIMIT:
            raise self.fail(f"no register is free here and spilling {count} register(s) needs "
                            f"{needed} bytes of stack: the function already uses "
                            f"{frame.depth} of the {STACK_LIMIT} bytes", slot)
        self.stack_growth = max(self.stack_growth, needed - frame.depth)
        return [-(base + 8 * (k + 1)) for k in range(count)]

    # ------------------------------------------------------------------ the result
    def _overflow_reason(self, err: OffsetOverflow) -> str:
        insn = self.layout.slots[err.slot]
        assert insn is not None
        if insn.opcode == InsnClass.JMP32 | JmpOp.JA:
            return (f"gotol jumps {err.offset} slots after lowering, beyond the 16-bit offset "
                    "of ja; only ISA v4 has 32-bit jump offsets")
        return (f"after lowering, this instruction's target is {err.offset} slots away, which "
                f"does not fit its {err.field} field")

    def _check(self, out: list[Instruction]) -> None:
        """The rewrites' promise, kept: only target instructions, a well-formed program."""
        version = program_version(out)
        if version > self.target:
            raise AssertionError(f"lowering left an ISA v{version} instruction")
        try:
            build_layout(out)
        except StructureError as err:
            raise self.fail(f"the lowered program is invalid: {err.reason}", None) from None
