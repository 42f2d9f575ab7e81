"""Laying expansions end to end and turning labels into offsets.

Every original instruction becomes an :class:`Expansion` (itself, unchanged, if it needed no
rewrite). Once all sizes are known, each original slot has a new position - the start of its
expansion, so jumps to it, its line info and its relocation records follow it - and every
label-carrying instruction gets its offset recomputed: jump offsets in ``off`` (``gotol`` in
``imm``), ``call local`` and ``lddw`` of a function in ``imm``, all relative to the next slot
and counted in slots (``lddw`` takes two), as RFC 9669 section 4.3 defines them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from offload.isa import InsnClass, Instruction, JmpOp

from .emit import END, TARGET, Emit, Item, Label, Mark

OFF_MIN, OFF_MAX = -(1 << 15), (1 << 15) - 1
IMM_MIN, IMM_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class Expansion:
    """What the original instruction at ``slot`` became; ``target`` is the original slot
    that TARGET means (jump or call destination), if any."""

    slot: int
    items: tuple[Item, ...]
    target: int | None = None


class OffsetOverflow(Exception):
    """A recomputed offset does not fit its field; ``slot`` is the original instruction."""

    def __init__(self, slot: int, offset: int, field: str) -> None:
        super().__init__(f"offset {offset} does not fit the {field} field")
        self.slot = slot
        self.offset = offset
        self.field = field


def place(expansions: Sequence[Expansion], size: int) -> tuple[list[Instruction], list[int]]:
    """The final instructions and ``slot_map``: new position of each original slot.

    ``slot_map`` has ``size + 1`` entries; the last is the new program size, and the second
    slot of an unchanged ``lddw`` maps to the second slot of its copy.
    """
    slot_map = list(range(size + 1))
    starts: list[int] = []
    ends: list[int] = []
    locals_: list[dict[Label, int]] = []
    position = 0
    for expansion in expansions:
        starts.append(position)
        slot_map[expansion.slot] = position
        marks: dict[Label, int] = {}
        for item in expansion.items:
            if isinstance(item, Mark):
                marks[item.label] = position
            else:
                position += item.insn.width
        first = next((i for i in expansion.items if isinstance(i, Emit)), None)
        if first is not None and first.insn.width == 2 and expansion.slot + 1 < size:
            slot_map[expansion.slot + 1] = starts[-1] + 1  # an lddw kept as it was
        ends.append(position)
        locals_.append(marks)
    slot_map[size] = position

    out: list[Instruction] = []
    for index, expansion in enumerate(expansions):
        here = starts[index]
        for item in expansion.items:
            if isinstance(item, Mark):
                continue
            insn = item.insn
            if item.to is not None:
                if item.to is END:
                    target = ends[index]
                elif item.to is TARGET:
                    assert expansion.target is not None
                    target = slot_map[expansion.target]
                else:
                    target = locals_[index][item.to]
                insn = _with_offset(insn, target - (here + 1), expansion.slot)
            out.append(insn)
            here += insn.width
    return out, slot_map


def _with_offset(insn: Instruction, offset: int, slot: int) -> Instruction:
    in_imm = insn.is_call or insn.is_lddw or insn.opcode == InsnClass.JMP32 | JmpOp.JA
    if in_imm:
        if not IMM_MIN <= offset <= IMM_MAX:
            raise OffsetOverflow(slot, offset, "32-bit immediate")
        return insn.with_fields(imm=offset)
    if not OFF_MIN <= offset <= OFF_MAX:
        raise OffsetOverflow(slot, offset, "16-bit offset")
    return insn.with_fields(off=offset)
