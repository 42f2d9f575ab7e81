"""Program listings: instructions back to text.

``to_asm`` writes text the assembler reads back (jump and call targets become labels);
``listing`` is for people: slot numbers, labels, and the raw words on request.
"""

from __future__ import annotations

from collections.abc import Sequence

from .codec import encode_words
from .instruction import Instruction
from .opcodes import PseudoSrc


def slot_positions(insns: Sequence[Instruction]) -> list[int]:
    """The slot index of each instruction (``lddw`` takes two slots)."""
    positions = []
    slot = 0
    for insn in insns:
        positions.append(slot)
        slot += insn.width
    return positions


def _target(insn: Instruction, slot: int) -> int | None:
    """The slot a jump, local call or ``lddw func`` refers to, if any."""
    if insn.field_problem() is not None:
        return None
    if insn.is_jump:
        return slot + 1 + insn.jump_offset
    if insn.is_local_call or (insn.is_lddw and insn.src == PseudoSrc.FUNC):
        return slot + 1 + insn.imm
    return None


def label_names(insns: Sequence[Instruction]) -> dict[int, str]:
    """Names for every slot that some instruction targets: ``fn_N`` for calls, ``LN`` else."""
    calls: set[int] = set()
    jumps: set[int] = set()
    positions = slot_positions(insns)
    starts = set(positions)
    if insns:
        starts.add(positions[-1] + insns[-1].width)
    for insn, slot in zip(insns, positions):
        target = _target(insn, slot)
        if target is None or target not in starts:
            continue  # out of range or inside an lddw: keep the relative form
        (calls if insn.is_local_call or insn.is_lddw else jumps).add(target)
    names = {slot: f"fn_{slot}" for slot in calls}
    for slot in sorted(jumps - calls):
        names[slot] = f"L{slot}"
    return names


def _with_label(insn: Instruction, slot: int, names: dict[int, str]) -> str:
    text = str(insn)
    target = _target(insn, slot)
    if target is None or target not in names:
        return text
    head, _, _ = text.rpartition(" ")
    return f"{head} {names[target]}"


def to_asm(insns: Sequence[Instruction]) -> str:
    """Assembler text with labels; ``assemble(to_asm(p)) == p`` for every valid program."""
    names = label_names(insns)
    lines = []
    positions = slot_positions(insns)
    for insn, slot in zip(insns, positions):
        if slot in names:
            lines.append(f"{names[slot]}:")
        lines.append(_with_label(insn, slot, names))
    end = positions[-1] + insns[-1].width if insns else 0
    if end in names:  # a jump just past the end: keep it expressible
        lines.append(f"{names[end]}:")
    return "\n".join(lines) + "\n"


def listing(insns: Sequence[Instruction], *, raw: bool = False,
            source_lines: dict[int, str] | None = None) -> str:
    """A human listing: ``slot: instruction``, labels, optional raw words and source lines."""
    names = label_names(insns)
    lines = []
    for insn, slot in zip(insns, slot_positions(insns)):
        if source_lines and slot in source_lines:
            lines.append(f"; {source_lines[slot]}")
        if slot in names:
            lines.append(f"{names[slot]}:")
        text = f"{slot:5d}: {_with_label(insn, slot, names)}"
        if raw:
            words = " ".join(f"{word:016x}" for word in encode_words([insn]))
            text = f"{text:<48} ; {words}"
        lines.append(text)
    return "\n".join(lines)
