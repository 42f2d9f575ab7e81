"""The device's object table: handles for maps and programs, and what each was made from.

Handles play the role of file descriptors on the control queue: small integers, one space for
maps and programs, never reused while the device lives (so a stale handle is EBADF, not a
different object). Each entry keeps what a checkpoint needs: a map's spec, a program's
original bytecode and map references as the guest sent them, before the device patched them.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from ..backends.base import LoadReport
from ..errors import ErrnoError
from ..isa.instruction import Instruction
from ..isa.opcodes import PseudoSrc
from ..isa.tag import program_tag
from ..maps.spec import MapSpec
from ..program import FuncInfo, MapReference
from ..uapi import ProgType, XdpAction
from ..verifier.env import GPL_COMPATIBLE

#: The ``ActionCounters`` field that counts each XDP action.
ACTION_FIELDS = {XdpAction.ABORTED: "aborted", XdpAction.DROP: "drop", XdpAction.PASS: "pass_",
                 XdpAction.TX: "tx", XdpAction.REDIRECT: "redirect"}
#: Counters are u64 and wrap, as the kernel's statistics do. Counts carried in from another
#: device (a migration, a restore) may start anywhere in that range, so every value leaves the
#: device (status, snapshots, a migration's FINAL) reduced modulo 2^64.
COUNTER_MASK = (1 << 64) - 1


@dataclass(slots=True)
class ActionCounters:
    """Frames per XDP action, as the status view and snapshots report them."""

    aborted: int = 0
    drop: int = 0
    pass_: int = 0
    tx: int = 0
    redirect: int = 0
    bytes: int = 0

    def count(self, action: XdpAction, size: int) -> None:
        field = ACTION_FIELDS[action]
        setattr(self, field, getattr(self, field) + 1)
        self.bytes += size

    def as_dict(self) -> dict[str, int]:
        """By action name (``pass``, not the field's ``pass_``), as u64 values."""
        m = COUNTER_MASK
        return {"pass": self.pass_ & m, "drop": self.drop & m, "tx": self.tx & m,
                "redirect": self.redirect & m, "aborted": self.aborted & m,
                "bytes": self.bytes & m}

    def fields(self) -> dict[str, int]:
        """By field name, as u64 values (what a snapshot or a migration carries)."""
        return {name: getattr(self, name) & COUNTER_MASK for name in self.__slots__}

    @property
    def total(self) -> int:
        return self.aborted + self.drop + self.pass_ + self.tx + self.redirect


@dataclass(slots=True)
class MapObject:
    handle: int
    spec: MapSpec
    inner_handle: int = 0
    released: bool = False  # the guest let go; alive while a program uses it
    memory: int = 0  # bytes charged to the device's map memory (offload.maps.memory)
    #: the guest's reference dropped in the backend too; the map lives on (listed, charged)
    #: while a map of maps holds it, as the kernel's map_in_map holds a reference per entry
    dropped: bool = False


@dataclass(slots=True)
class ProgramObject:
    """A loaded program: its original instructions and the guest's map references as
    (slot, map handle, kind, offset), before the device patched handles into them."""

    handle: int
    name: str
    prog_type: ProgType
    license: str
    instructions: tuple[Instruction, ...]
    refs: tuple[tuple[int, int, int, int], ...]  # (slot, map handle, kind, offset)
    flags: int
    report: LoadReport
    counters: ActionCounters = field(default_factory=ActionCounters)
    unloaded: bool = False  # the guest let go; alive while attached or a map's entry holds it
    #: unloaded in the backend too; it lives on (listed, checkpointed) while an entry of a
    #: prog array, devmap or cpumap holds it, as the kernel's hold a reference per entry
    dropped: bool = False
    expected_attach_type: int = 0  # BPF_XDP_DEVMAP / BPF_XDP_CPUMAP for map-entry programs
    isa: int = 1  # the ISA version its instructions need (a lowered program's is the target's)
    #: linkage and prototypes from the BTF ``func_info`` the guest sent (none: all static)
    functions: tuple[FuncInfo, ...] = ()
    _tag: bytes = b""

    @property
    def tag(self) -> bytes:
        """The kernel's program tag (:mod:`offload.isa.tag`), computed once."""
        if not self._tag:
            self._tag = program_tag(self.instructions)
        return self._tag

    @property
    def gpl_compatible(self) -> bool:
        """Whether the license lets the program call GPL-only helpers, as bpftool shows it."""
        return self.license in GPL_COMPATIBLE

    def map_references(self, names: dict[int, str]) -> tuple[MapReference, ...]:
        """The references with map names instead of handles (for a snapshot)."""
        return tuple(MapReference(slot, names[handle], PseudoSrc(kind), offset)
                     for slot, handle, kind, offset in self.refs)


class ObjectTable:
    """Maps and programs by handle."""

    def __init__(self) -> None:
        self.maps: dict[int, MapObject] = {}
        self.programs: dict[int, ProgramObject] = {}
        self._next = 1

    def new_handle(self) -> int:
        handle = self._next
        self._next += 1
        return handle

    def map(self, handle: int) -> MapObject:
        found = self.maps.get(handle)
        if found is None or found.released:
            kind = "a program" if handle in self.programs else "nothing"
            raise ErrnoError(errno.EBADF, f"handle {handle} is not a map on this device (it "
                                          f"names {kind})")
        return found

    def map_in_use(self, handle: int) -> bool:
        return any(ref[1] == handle for program in self.programs.values()
                   for ref in program.refs)

    def program(self, handle: int) -> ProgramObject:
        found = self.programs.get(handle)
        if found is None or found.unloaded:
            kind = "a map" if handle in self.maps else "nothing"
            raise ErrnoError(errno.EBADF, f"handle {handle} is not a program on this device "
                                          f"(it names {kind})")
        return found
