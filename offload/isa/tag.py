"""A program's tag, as the kernel computes it (``bpf_prog_calc_tag``) and bpftool shows it.

The first 8 bytes of SHA-256 over the bytecode (Linux 6.18; earlier kernels used SHA-1, so
their tags differ), with both immediates of every ``lddw`` that
loads a map (``BPF_PSEUDO_MAP_FD``, ``BPF_PSEUDO_MAP_VALUE``) zeroed: one program has one tag
whatever file descriptors or handles its maps got, so the tag names the same program on the
source device, the target device and the host kernel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

from .codec import encode
from .instruction import Instruction
from .opcodes import LDDW, PseudoSrc

TAG_SIZE = 8
_MAP_LOADS = (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE)


def program_tag(insns: Iterable[Instruction]) -> bytes:
    """The 8-byte tag; ``.hex()`` gives bpftool's spelling."""
    canonical = (replace(insn, imm=0, next_imm=0)
                 if insn.opcode == LDDW and insn.src in _MAP_LOADS else insn
                 for insn in insns)
    return hashlib.sha256(encode(canonical)).digest()[:TAG_SIZE]
