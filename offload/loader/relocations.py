"""What each relocation of a code section asks for, checked against the instruction it patches.

clang leaves map and global data references, subprogram calls and function addresses as
relocations against symbols (``R_BPF_64_64`` on ``lddw``, ``R_BPF_64_32`` on ``call``). This
module turns each one into a :class:`Fixup` in the loader's terms; the linker applies them.
For a symbol that names a section, the target offset is in the instruction itself: the
``lddw`` immediate for data, ``(imm + 1) * 8`` bytes past the symbol for calls.

A relocation the loader cannot apply (an extern, a reference it does not understand) becomes
a ``REFUSED`` fixup: it refuses the programs whose code holds that instruction, not the
object. Only a relocation that does not even land on an instruction refuses the object.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

from ..isa.opcodes import LDDW, CallSrc, InsnClass, JmpOp
from .elf import SHN_UNDEF, ElfObject, Relocation, RelocType, Section
from .errors import LoaderError, RefusalKind
from .maps import MapSymbols

SLOT = struct.Struct("<BBhi")
CALL_OPCODE = InsnClass.JMP | JmpOp.CALL


class FixupKind(Enum):
    MAP = "map"  # lddw of a map: PseudoSrc.MAP_FD
    MAP_VALUE = "map_value"  # lddw of an address in global data: PseudoSrc.MAP_VALUE
    CALL = "call"  # bpf-to-bpf call
    FUNC_ADDR = "func"  # lddw of a subprogram address: PseudoSrc.FUNC
    REFUSED = "refused"  # cannot be applied: refuses the programs holding the instruction


@dataclass(frozen=True, slots=True)
class Fixup:
    """What the instruction at byte ``offset`` of its section must refer to."""

    offset: int
    kind: FixupKind
    symbol: str
    map_name: str = ""
    value_offset: int = 0
    target_section: int = 0
    target_offset: int = 0
    #: for REFUSED: why, and the class of refusal
    reason: str = ""
    refusal: RefusalKind | None = None


def resolve_fixups(elf: ElfObject, section: Section, maps: MapSymbols) -> dict[int, Fixup]:
    """The fixups of one code section by instruction byte offset."""
    fixups: dict[int, Fixup] = {}
    for reloc in elf.relocations.get(section.index, ()):
        name = elf.symbol_name(reloc.symbol)
        if reloc.offset % SLOT.size or reloc.offset + SLOT.size > section.size:
            raise LoaderError(f"relocation offset {reloc.offset} is not an instruction of the "
                              "section.", section=section.name, symbol=name)
        try:
            fixup = _resolve(elf, section, reloc, maps)
        except LoaderError as err:
            fixup = Fixup(reloc.offset, FixupKind.REFUSED, name, reason=err.detail,
                          refusal=err.kind or RefusalKind.RELOCATION)
        if fixup.offset in fixups:
            fixup = Fixup(reloc.offset, FixupKind.REFUSED, name,
                          reason=f"two relocations patch the instruction at offset "
                                 f"{reloc.offset}.", refusal=RefusalKind.RELOCATION)
        fixups[fixup.offset] = fixup
    return fixups


def _resolve(elf: ElfObject, section: Section, reloc: Relocation, maps: MapSymbols) -> Fixup:
    symbol = reloc.symbol
    name = elf.symbol_name(symbol)

    def fail(message: str) -> LoaderError:
        return LoaderError(message, section=section.name, symbol=name)

    offset = reloc.offset
    if offset % SLOT.size or offset + SLOT.size > section.size:
        raise fail(f"relocation offset {offset} is not an instruction of the section.")
    opcode, regs, _off, imm = SLOT.unpack_from(section.data, offset)
    src = regs >> 4
    if symbol.shndx == SHN_UNDEF:
        raise _extern(section, name, opcode)
    if not 0 < symbol.shndx < len(elf.sections):
        raise fail(f"relocation against special section index {symbol.shndx:#x} is not "
                   "supported.")
    target = elf.sections[symbol.shndx]
    is_section_symbol = symbol.type == "STT_SECTION"

    if reloc.type == RelocType.R_64_32:
        if opcode != CALL_OPCODE or src != CallSrc.LOCAL:
            raise fail(f"R_BPF_64_32 relocation at offset {offset} is not on a bpf-to-bpf "
                       "call.")
        if not target.is_code:
            raise fail(f"call into section '{target.name}', which holds no code.")
        return Fixup(offset, FixupKind.CALL, name, target_section=target.index,
                     target_offset=symbol.value + (imm + 1) * SLOT.size)

    if reloc.type != RelocType.R_64_64:
        try:
            kind = f"R_BPF_{RelocType(reloc.type).name[2:]}"
        except ValueError:
            kind = f"type {reloc.type}"
        raise fail(f"relocation {kind} at offset {offset} is not supported in code.")
    if opcode != LDDW or offset + 2 * SLOT.size > section.size:
        raise fail(f"R_BPF_64_64 relocation at offset {offset} is not on an lddw.")
    if src:
        raise fail(f"the lddw at offset {offset} already has src {src}.")

    data_map = maps.data_sections.get(target.index)
    if data_map is not None:
        value_offset = symbol.value + imm
        if not 0 <= value_offset < target.size:
            raise fail(f"offset {value_offset} is outside global data of {target.size} bytes.")
        return Fixup(offset, FixupKind.MAP_VALUE, name, map_name=data_map,
                     value_offset=value_offset)
    definition_offset = symbol.value + (imm if is_section_symbol else 0)
    map_name = maps.definitions.get((target.index, definition_offset))
    if map_name is not None:
        if imm and not is_section_symbol:
            raise fail(f"the lddw of map '{map_name}' adds offset {imm}; a map reference "
                       "cannot point inside a map definition.")
        return Fixup(offset, FixupKind.MAP, name, map_name=map_name)
    if target.is_code and symbol.type in ("STT_FUNC", "STT_SECTION"):
        return Fixup(offset, FixupKind.FUNC_ADDR, name, target_section=target.index,
                     target_offset=symbol.value + imm)
    if target.name in (".maps", "maps"):
        raise fail(f"offset {definition_offset} is not the start of a map definition.")
    raise fail(f"relocation against section '{target.name}' is not supported.")


def _extern(section: Section, name: str, opcode: int) -> LoaderError:
    """The refusal of a reference to an extern: a kfunc call, a __ksym or a __kconfig."""
    if opcode == CALL_OPCODE:
        what = (f"calls the kernel function (kfunc) '{name}', which the device does not "
                "offer; kfuncs are resolved against the running kernel's BTF.")
    elif opcode == LDDW:
        what = (f"reads the extern '{name}' (__ksym or __kconfig), which the device does not "
                "provide; externs are resolved against the running kernel.")
    else:
        what = f"refers to the extern '{name}', which the device does not provide."
    return LoaderError(what, section=section.name, symbol=name, kind=RefusalKind.EXTERN)
