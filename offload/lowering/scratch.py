"""Scratch registers for one rewrite: dead ones when liveness allows, spilled ones otherwise.

A rewrite asks its :class:`ScratchPool` for registers one at a time, saying which of the
instruction's operands must not be handed out for that role. Dead registers (not live after
the instruction) come first; the instruction's own dead operands are preferred, so work can
happen in place. When none is left, a live register that is not an operand is borrowed:
:func:`with_spills` saves it to a stack slot before the expansion and restores it on every
way out, so every other instruction of the program sees it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from offload.isa import Size
from offload.isa.liveness import bit

from .emit import END, TARGET, Emit, Item, Label, Mark, ja, ldx, stx

#: Registers a rewrite may use: r10 is the read-only frame pointer.
GENERAL = range(10)


class ScratchPool:
    """Registers free at one instruction. ``spilled`` lists those that must be saved."""

    def __init__(self, live_after: int, operands: int) -> None:
        dead = [reg for reg in GENERAL if not live_after & bit(reg)]
        self._dead = sorted(dead, key=lambda reg: not operands & bit(reg))
        self._operands = operands
        self.taken: list[int] = []
        self.spilled: list[int] = []

    def take(self, *, avoid: Iterable[int] = ()) -> int:
        """A register not in ``avoid`` and not already taken."""
        excluded = set(avoid) | set(self.taken)
        for reg in self._dead:
            if reg not in excluded:
                self.taken.append(reg)
                return reg
        for reg in reversed(GENERAL):
            if reg not in excluded and not self._operands & bit(reg):
                self.taken.append(reg)
                self.spilled.append(reg)
                return reg
        raise AssertionError("a rewrite asked for more scratch registers than exist")


def with_spills(items: Sequence[Item], regs: Sequence[int], offsets: Sequence[int]) -> list[Item]:
    """Wrap an expansion so ``regs`` are saved at ``[r10+offset]`` and restored on every exit.

    Exits are the fall-through (and jumps to END) and jumps to the original TARGET; each gets
    its own restore sequence, so the jump to TARGET still leaves from inside the expansion.
    """
    saves = [stx(Size.DW, 10, reg, off) for reg, off in zip(regs, offsets)]
    restore: list[Item] = [ldx(Size.DW, reg, 10, off) for reg, off in zip(regs, offsets)]
    at_end = Label("restore, then continue")
    at_target = Label("restore, then jump")
    body: list[Item] = []
    jumps_to_target = False
    for item in items:
        if isinstance(item, Emit) and item.to is END:
            item = Emit(item.insn, at_end)
        elif isinstance(item, Emit) and item.to is TARGET:
            item = Emit(item.insn, at_target)
            jumps_to_target = True
        body.append(item)
    out: list[Item] = [*saves, *body, Mark(at_end), *restore]
    if jumps_to_target:
        out += [ja(END), Mark(at_target), *restore, ja(TARGET)]
    return out
