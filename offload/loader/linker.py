"""Programs out of code sections: entry functions, linked subprograms, symbolic map references.

Each function symbol in a program section is a program. Its instructions come first; every
subprogram it reaches through bpf-to-bpf calls (or takes the address of) is appended once,
after it, as libbpf does, and the call immediates are rewritten to the appended copies.
``lddw`` of a map or of global data keeps ``src`` MAP_FD / MAP_VALUE with a zero ``imm`` (and
the value offset in ``next_imm``) for a device to fill in its own map handle; a
:class:`~offload.program.MapReference` names the map. Line info follows the instructions.

What one program reaches and the loader cannot use - a function it cannot decode, a
relocation it cannot apply - fails linking that program only (a :class:`LoaderError` with a
``kind``); the object's other programs link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..isa.codec import DecodeError, decode
from ..isa.disasm import slot_positions
from ..isa.instruction import Instruction
from ..isa.opcodes import PseudoSrc
from ..program import FuncInfo, LineInfo, MapReference
from .btf_ext import LineRecord
from .elf import ElfObject, Section
from .errors import LoaderError, RefusalKind
from .relocations import SLOT, Fixup, FixupKind

SUBPROGRAM_SECTION = ".text"


@dataclass(frozen=True, slots=True)
class Function:
    """A function symbol's code: ``start`` and ``size`` in bytes of its section.

    ``error`` says why the code could not be decoded (then ``instructions`` is empty): the
    programs that reach the function are refused, the others are not.
    """

    section: Section
    name: str
    start: int
    size: int
    instructions: tuple[Instruction, ...]
    error: str = ""

    @property
    def slots(self) -> int:
        return self.size // SLOT.size


@dataclass(frozen=True, slots=True)
class LinkedProgram:
    instructions: tuple[Instruction, ...]
    map_refs: tuple[MapReference, ...]
    line_info: tuple[LineInfo, ...]
    functions: tuple[FuncInfo, ...]
    #: the functions placed, in order (the entry first)
    placed: tuple[Function, ...] = ()


def section_functions(elf: ElfObject, section: Section) -> list[Function]:
    """The functions of a code section, decoded, in address order."""
    symbols = sorted((s for s in elf.symbols_in(section.index) if s.type == "STT_FUNC"),
                     key=lambda s: s.value)
    functions: list[Function] = []
    for i, symbol in enumerate(symbols):
        start, size = symbol.value, symbol.size
        if size == 0:  # hand-written code: up to the next function or the end
            size = (symbols[i + 1].value if i + 1 < len(symbols) else section.size) - start
        if start % SLOT.size or size <= 0 or size % SLOT.size or start + size > section.size:
            raise LoaderError(f"function at offset {start} with size {size} does not fit "
                              f"the section's {section.size} bytes of instructions.",
                              section=section.name, symbol=symbol.name)
        if functions and start < functions[-1].start + functions[-1].size:
            raise LoaderError(f"function overlaps '{functions[-1].name}'.",
                              section=section.name, symbol=symbol.name)
        try:
            insns = tuple(decode(section.data[start:start + size]))
        except DecodeError as exc:  # the message names the instruction
            functions.append(Function(section, symbol.name, start, size, (),
                                      f"cannot decode function '{symbol.name}': {exc}."))
            continue
        functions.append(Function(section, symbol.name, start, size, insns))
    return functions


def link_program(entry: Function, functions: dict[tuple[int, int], Function],
                 fixups: dict[int, dict[int, Fixup]],
                 lines: dict[str, tuple[LineRecord, ...]]) -> LinkedProgram:
    """Link ``entry`` with the subprograms it reaches.

    ``functions`` holds every function by (section index, start offset), ``fixups`` the
    resolved relocations by section index then instruction offset, ``lines`` the line info
    by section name.
    """
    layout: list[tuple[Function, int]] = [(entry, 0)]
    placed: dict[tuple[int, int], int] = {(entry.section.index, entry.start): 0}
    total = entry.slots
    instructions: list[Instruction] = []
    map_refs: list[MapReference] = []

    def place(caller: Function, section_index: int, offset: int) -> int:
        nonlocal total
        key = (section_index, offset)
        if key not in placed:
            callee = functions.get(key)
            if callee is None:
                raise LoaderError(f"a call or function address refers to offset {offset} of "
                                  f"section {section_index}, which is not the start of a "
                                  "function.", section=caller.section.name,
                                  symbol=caller.name, kind=RefusalKind.LINK)
            if callee.section.name != SUBPROGRAM_SECTION and \
                    callee.section.index != caller.section.index:
                raise LoaderError(f"call to '{callee.name}' in program section "
                                  f"'{callee.section.name}'; subprograms belong in .text.",
                                  section=caller.section.name, symbol=caller.name,
                                  kind=RefusalKind.LINK)
            placed[key] = total
            layout.append((callee, total))
            total += callee.slots
        return placed[key]

    index = 0
    while index < len(layout):
        function, base = layout[index]
        index += 1
        if function.error:
            raise LoaderError(function.error, section=function.section.name,
                              symbol=function.name, kind=RefusalKind.INSTRUCTION)
        section_fixups = fixups.get(function.section.index, {})
        for rel_slot, insn in zip(slot_positions(function.instructions), function.instructions):
            slot = base + rel_slot
            offset = function.start + rel_slot * SLOT.size
            fixup = section_fixups.get(offset)
            insn = _apply(function, insn, slot, offset, fixup, place, map_refs)
            instructions.append(insn)
    return LinkedProgram(tuple(instructions), tuple(map_refs),
                         _line_info(layout, lines), tuple(FuncInfo(base, f.name)
                                                          for f, base in layout),
                         tuple(f for f, _ in layout))


def _apply(function: Function, insn: Instruction, slot: int, offset: int, fixup: Fixup | None,
           place: Callable[[Function, int, int], int],
           map_refs: list[MapReference]) -> Instruction:
    if fixup is None:
        if insn.is_local_call:  # a call within one section may carry no relocation
            target = place(function, function.section.index,
                           offset + (insn.imm + 1) * SLOT.size)
            return insn.with_fields(imm=target - slot - 1)
        return insn
    if fixup.kind == FixupKind.REFUSED:
        raise LoaderError(fixup.reason, section=function.section.name, symbol=fixup.symbol,
                          kind=fixup.refusal or RefusalKind.RELOCATION)
    if fixup.kind == FixupKind.CALL:
        target = place(function, fixup.target_section, fixup.target_offset)
        return insn.with_fields(imm=target - slot - 1)
    if fixup.kind == FixupKind.FUNC_ADDR:
        target = place(function, fixup.target_section, fixup.target_offset)
        return insn.with_fields(src=PseudoSrc.FUNC, imm=target - slot - 1, next_imm=0)
    if fixup.kind == FixupKind.MAP:
        map_refs.append(MapReference(slot, fixup.map_name, PseudoSrc.MAP_FD, 0))
        return insn.with_fields(src=PseudoSrc.MAP_FD, imm=0, next_imm=0)
    map_refs.append(MapReference(slot, fixup.map_name, PseudoSrc.MAP_VALUE, fixup.value_offset))
    return insn.with_fields(src=PseudoSrc.MAP_VALUE, imm=0, next_imm=fixup.value_offset)


def _line_info(layout: list[tuple[Function, int]],
               lines: dict[str, tuple[LineRecord, ...]]) -> tuple[LineInfo, ...]:
    result = []
    for function, base in layout:
        for record in lines.get(function.section.name, ()):
            rel = record.insn_off - function.start
            if not 0 <= rel < function.size:
                continue
            if rel % SLOT.size:
                raise LoaderError(f"line info at byte {record.insn_off} is not on an "
                                  "instruction.", section=".BTF.ext", symbol=function.name)
            result.append(LineInfo(base + rel // SLOT.size, record.file, record.line,
                                   record.column, record.text))
    return tuple(sorted(result, key=lambda info: info.slot))
