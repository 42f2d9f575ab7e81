"""Map references of a ProgramSpec resolved to kernel map fds (a pure function).

The kernel reads the map of an ``lddw`` from its immediate: for BPF_PSEUDO_MAP_FD the
immediate is the map fd; for BPF_PSEUDO_MAP_VALUE it is the fd and the second slot's immediate
is the byte offset into the value (include/uapi/linux/bpf.h, "ld_imm64 with src_reg").
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping, Sequence

from ...errors import ErrnoError
from ...isa.disasm import slot_positions
from ...isa.instruction import Instruction
from ...isa.opcodes import PseudoSrc
from ...program import MapReference


def patch_map_references(instructions: Sequence[Instruction], refs: Iterable[MapReference],
                         fds: Mapping[str, int], *, program: str = "") -> tuple[Instruction, ...]:
    """A copy of ``instructions`` with every referenced ``lddw`` pointing at its map's fd.

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
