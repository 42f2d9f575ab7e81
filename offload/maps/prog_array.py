"""BPF_MAP_TYPE_PROG_ARRAY: the jump table of bpf_tail_call() (kernel/bpf/arraymap.c).

Slots hold references on programs. All programs in one array, and every program that uses
the array, must share one program type: the first to arrive becomes the owner
(``bpf_prog_map_compatible()``), later ones must match (EINVAL). Extension programs never go
in. Programs cannot read or write the array; they only tail-call through it, which is what
``program_at`` serves.
"""

from __future__ import annotations

import errno

from ..errors import ErrnoError
from ..uapi import ProgType
from .fd_array import FdArrayMap
from .resolver import ProgramHandle


class ProgArrayMap(FdArrayMap):
    """Program references indexed by u32; lookups report program ids."""

    batch_lookup = batch_update = False

    owner_prog_type: int | None = None

    def compatible(self, prog_type: int) -> bool:
        """Whether a program of ``prog_type`` may use this array; the first one claims it."""
        if prog_type == ProgType.EXT:
            return False
        if self.owner_prog_type is None:
            self.owner_prog_type = prog_type
        return self.owner_prog_type == prog_type

    def _acquire(self, fd: int) -> ProgramHandle:
        program = self.resolver.acquire_program(fd)
        if not self.compatible(program.prog_type):
            self.resolver.release(program)
            raise ErrnoError(errno.EINVAL, f"Program fd {fd} has type {program.prog_type}, but "
                                           f"this array belongs to programs of type "
                                           f"{self.owner_prog_type}.")
        return program

    def program_at(self, index: int) -> ProgramHandle | None:
        """The tail-call target at ``index``, or None (the tail call falls through)."""
        return self.handle_at(index)  # type: ignore[return-value]
