"""What a program is, apart from any device it is loaded on: ``ProgramSpec``.

A spec holds the instructions as the object file defines them, with ``lddw`` map references
left symbolic (``MapReference`` records name the map); a device resolves them to its own map
handles at load time, and a snapshot stores the spec unchanged so it can be re-resolved on
another device. Program types follow ``enum bpf_prog_type`` of the Linux uAPI.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

from .errors import ErrnoError
from .isa.disasm import slot_positions
from .isa.instruction import Instruction
from .isa.opcodes import PseudoSrc
from .uapi import CoreReloKind, ProgType

BPF_OBJ_NAME_LEN = 16


def bpf_object_name(name: str) -> str:
    """``name`` as bpf(2) accepts it for maps and programs: at most BPF_OBJ_NAME_LEN - 1
    characters of ``[A-Za-z0-9_.]``, shortened the way libbpf shortens ELF names (other
    characters become ``_``)."""
    cleaned = "".join(ch if (ch.isascii() and (ch.isalnum() or ch in "_.")) else "_"
                      for ch in name)
    return cleaned[:BPF_OBJ_NAME_LEN - 1]


@dataclass(frozen=True, slots=True)
class MapReference:
    """An ``lddw`` at slot ``slot`` that refers to the map ``map_name``.

    ``kind`` is MAP_FD (the map itself) or MAP_VALUE (an address inside the value of a
    single-entry array, global data), ``offset`` the byte offset for MAP_VALUE.
    """

    slot: int
    map_name: str
    kind: PseudoSrc = PseudoSrc.MAP_FD
    offset: int = 0


@dataclass(frozen=True, slots=True)
class LineInfo:
    """Source position of the instruction at ``slot`` (from ``.BTF.ext``)."""

    slot: int
    file: str
    line: int
    column: int
    text: str


class Linkage(IntEnum):
    """``enum btf_func_linkage``: how a BTF FUNC is visible (Documentation/bpf/btf.rst)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class ArgKind(IntEnum):
    """What the kernel makes of a global function's argument from its BTF type
    (``btf_prepare_func_args``): a number, the program's context, or memory of a size."""

    SCALAR = 0  # an integer or enum
    CTX = 1  # a pointer to the program type's context struct (``struct xdp_md *``), or one
    # tagged ``arg:ctx`` (``__arg_ctx``)
    MEM = 2  # a pointer to a sized type: ``size`` bytes of memory, or NULL
    MEM_NONNULL = 3  # the same tagged ``arg:nonnull`` (``__arg_nonnull``): never NULL


@dataclass(frozen=True, slots=True)
class FuncArg:
    kind: ArgKind
    size: int = 0  # MEM: the bytes the pointer must reach


@dataclass(frozen=True, slots=True)
class FuncProto:
    """A function's BTF prototype as the verifier checks calls against it: its arguments,
    or ``problem``, the kernel's message for a prototype it cannot verify against (an
    argument or return type it does not support), which refuses every call."""

    args: tuple[FuncArg, ...] = ()
    problem: str = ""


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """A function of the linked program (the entry or a subprogram) starting at ``slot``.

    ``linkage`` and ``proto`` come from BTF ``func_info`` (``.BTF.ext``) when the object has
    it: a GLOBAL subprogram with a prototype is verified once on its own, as Linux verifies
    it; without them every subprogram is static (verified at every call).
    """

    slot: int
    name: str
    linkage: Linkage = Linkage.STATIC
    proto: FuncProto | None = None

    @property
    def is_global(self) -> bool:
        return self.linkage == Linkage.GLOBAL and self.proto is not None


@dataclass(frozen=True, slots=True)
class CoreRelocation:
    """A relocated instruction at ``slot``: ``type_id`` and ``access`` in the binding's local
    BTF, ``value`` the answer it holds, ``size`` the access width given to a whole-field
    load or store (0 otherwise)."""

    slot: int
    kind: CoreReloKind
    type_id: int
    access: str
    value: int
    size: int = 0


@dataclass(frozen=True, slots=True)
class CoreBinding:
    """What a program's CO-RE relocations were resolved against: the local types they name
    (``btf``, encoded BTF), each relocation, and the device BTF's description and SHA-256.

    Plain data kept with the program; :mod:`offload.loader.core` reads the types
    (``local_btf``, ``describe_relocation``) and resolves the relocations again (``rebind``).
    """

    btf: bytes = field(repr=False)
    relocations: tuple[CoreRelocation, ...]
    target: str
    digest: str

    def moved(self, slot_map: Callable[[int], int]) -> CoreBinding:
        """The binding after the instructions moved (``slot_map``: old slot -> new)."""
        return replace(self, relocations=tuple(replace(r, slot=slot_map(r.slot))
                                               for r in self.relocations))


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    """A program ready to be loaded on any device: instructions plus symbolic references.

    ``core`` records what its CO-RE relocations were resolved against (the device BTF, each
    relocation and the value baked into its instruction), so another device can resolve them
    again; None for a program without CO-RE relocations.
    """

    name: str
    type: ProgType
    instructions: tuple[Instruction, ...]
    license: str = ""
    section: str = ""
    flags: int = 0
    map_refs: tuple[MapReference, ...] = field(default=())
    line_info: tuple[LineInfo, ...] = field(default=())
    functions: tuple[FuncInfo, ...] = field(default=())
    core: CoreBinding | None = None
    #: ``enum bpf_attach_type`` it is loaded for: BPF_XDP_DEVMAP (``SEC("xdp/devmap")``) or
    #: BPF_XDP_CPUMAP (``SEC("xdp/cpumap")``) for programs run from those maps' entries, else 0
    expected_attach_type: int = 0


def resolve_map_references(instructions: Sequence[Instruction], refs: Iterable[MapReference],
                           fds: Mapping[str, int], *, program: str = "") -> tuple[Instruction, ...]:
    """A copy of ``instructions`` with every referenced ``lddw`` pointing at its map.

    ``fds`` maps each map name to what the loader at hand uses as the immediate: a kernel map
    fd, or a device's map handle (include/uapi/linux/bpf.h, "ld_imm64 with src_reg").

    A reference to a map missing from ``fds`` is EBADF (what the kernel says of a bad map fd);
    one that does not land on an ``lddw`` is EINVAL.
    """
    what = f"program {program!r}" if program else "the program"
    insns = list(instructions)
    index_of = {slot: i for i, slot in enumerate(slot_positions(insns))}
    for ref in refs:
        index = index_of.get(ref.slot)
        if index is None or not insns[index].is_lddw:
            raise ErrnoError(errno.EINVAL, f"{what} has a reference to map {ref.map_name!r} at "
                                           f"slot {ref.slot}, which is not an lddw instruction")
        if ref.map_name not in fds:
            known = ", ".join(sorted(fds)) or "none"
            raise ErrnoError(errno.EBADF, f"{what} uses map {ref.map_name!r}, which is not among "
                                          f"the maps given (given: {known})")
        fd = fds[ref.map_name]
        if not 0 <= fd <= 0x7FFFFFFF:
            raise ErrnoError(errno.EBADF, f"map {ref.map_name!r} has the invalid fd {fd}")
        if ref.kind == PseudoSrc.MAP_FD:
            insns[index] = insns[index].with_fields(src=PseudoSrc.MAP_FD, imm=fd, next_imm=0)
        elif ref.kind == PseudoSrc.MAP_VALUE:
            if not 0 <= ref.offset <= 0xFFFFFFFF:
                raise ErrnoError(errno.EINVAL, f"{what} refers to offset {ref.offset} of map "
                                               f"{ref.map_name!r}, outside 0..2^32-1")
            insns[index] = insns[index].with_fields(src=PseudoSrc.MAP_VALUE, imm=fd,
                                                    next_imm=ref.offset)
        else:
            raise ErrnoError(errno.EINVAL, f"{what} has a {ref.kind.name} reference to map "
                                           f"{ref.map_name!r}; only MAP_FD and MAP_VALUE are "
                                           f"resolved to fds")
    return tuple(insns)
