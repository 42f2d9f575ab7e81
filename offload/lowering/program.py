"""Lowering a whole :class:`~offload.program.ProgramSpec`, relocation records included.

Map references, line info and function starts name instruction slots; each moves to the
start of its instruction's expansion (``lddw`` is never rewritten, so a map reference still
points at its ``lddw``).
"""

from __future__ import annotations

from dataclasses import replace

from offload.program import ProgramSpec

from .arith import ByteOrder
from .errors import LoweringError
from .lower import lower_with_report
from .report import LoweringReport


def lower_program(spec: ProgramSpec, target_version: int, *, allow_non_atomic: bool = False,
                  byte_order: ByteOrder = "little") -> ProgramSpec:
    """``spec`` with its instructions lowered and every slot reference remapped."""
    return lower_program_with_report(spec, target_version, allow_non_atomic=allow_non_atomic,
                                     byte_order=byte_order)[0]


def lower_program_with_report(spec: ProgramSpec, target_version: int, *,
                              allow_non_atomic: bool = False,
                              byte_order: ByteOrder = "little",
                              ) -> tuple[ProgramSpec, LoweringReport]:
    result = lower_with_report(spec.instructions, target_version,
                               allow_non_atomic=allow_non_atomic, byte_order=byte_order)
    starts: set[int] = set()
    slot = 0
    for insn in spec.instructions:
        starts.add(slot)
        slot += insn.width

    def moved(old: int, what: str) -> int:
        if old not in starts:
            raise LoweringError(f"{what} refers to slot {old}, which does not start an "
                                f"instruction of program {spec.name!r}", insn_index=old,
                                target_version=target_version)
        return result.slot_map[old]

    lowered = replace(
        spec,
        instructions=result.instructions,
        map_refs=tuple(replace(ref, slot=moved(ref.slot, f"the reference to map "
                                                    f"{ref.map_name!r}"))
                       for ref in spec.map_refs),
        line_info=tuple(replace(info, slot=moved(info.slot, "a line info record"))
                        for info in spec.line_info),
        functions=tuple(replace(func, slot=moved(func.slot, f"function {func.name!r}"))
                        for func in spec.functions),
        core=None if spec.core is None else
        spec.core.moved(lambda slot: moved(slot, "a CO-RE relocation")),
    )
    return lowered, result.report
