"""The loader's errors: an object that cannot be read at all, and programs refused one by one.

An object is refused whole only when its container is broken (ELF, BTF, symbol tables, map
definitions that overlap): nothing in it can be trusted. What one program needs and the
device does not offer - a CO-RE relocation its BTF cannot answer, an extern, an instruction it
cannot decode, a section that names no program type, a map it cannot create - refuses that
program alone, as a :class:`ProgramRefusal`, and the object's other programs load.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..errors import OffloadError


class RefusalKind(Enum):
    """Why a program of an object cannot be loaded (``ProgramRefusal.kind``)."""

    SECTION = "section"  # the section name names no program type, and none was given
    CO_RE = "co-re"  # a CO-RE relocation the device's BTF cannot answer (offload.loader.core)
    INSTRUCTION = "instruction"  # an instruction that cannot be decoded
    EXTERN = "extern"  # a kfunc call, __ksym or __kconfig extern
    RELOCATION = "relocation"  # a relocation the loader cannot apply
    LINK = "link"  # a call or function address that leads nowhere
    MAP = "map"  # a map it uses cannot be created (unsupported, or not sized)


class LoaderError(OffloadError):
    """An ELF object, its BTF or its relocations cannot be loaded.

    ``section`` and ``symbol`` name where the problem is, when known, so the message points
    at the part of the object to look at. ``kind`` is set when the problem concerns only the
    programs whose code reaches it (see :class:`ProgramRefusal`).
    """

    def __init__(self, message: str, *, section: str | None = None,
                 symbol: str | None = None, kind: RefusalKind | None = None) -> None:
        where = []
        if section is not None:
            where.append(f"section '{section}'")
        if symbol is not None:
            where.append(f"symbol '{symbol}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.section = section
        self.symbol = symbol
        self.detail = message
        self.kind = kind


class LoadOptionError(LoaderError):
    """A program type or map size asked for that does not fit the object (unknown program or
    map, a type name that names no type, a size out of range)."""


@dataclass(frozen=True, slots=True)
class ProgramRefusal:
    """One program of an object that cannot be loaded, and why.

    ``reason`` is a sentence in the kernel's and libbpf's vocabulary; ``symbol`` names what
    in the object it is about (the extern, the map, the function) when that is not the
    program itself; ``maps`` the maps its code uses, when it could be linked.
    """

    program: str
    section: str
    kind: RefusalKind
    reason: str
    symbol: str | None = None
    maps: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"program '{self.program}' (section '{self.section}'): {self.reason}"
