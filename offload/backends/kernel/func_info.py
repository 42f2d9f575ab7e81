"""BTF function records for programs that take a subprogram's address (callbacks).

Linux loads ``lddw func`` (a callback for ``bpf_loop``) only with BTF ``func_info`` for every
subprogram, and the callback's must be static ("missing btf func_info", "callback function
not static"). Programs loaded here come as bare instructions, so such a program gets a
minimal BTF of its own: one function type (``int f(void)``) per subprogram, the main one
global, the others static, and one record per subprogram start. Layout per
Documentation/bpf/btf.rst (header, types, strings) and ``struct bpf_func_info``.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence

from ...isa.instruction import Instruction
from ...isa.opcodes import LDDW, PseudoSrc
from .attr import BtfLoadAttr
from .handle import KernelHandle
from .syscall import BpfCmd, bpf

_KIND_INT, _KIND_FUNC, _KIND_FUNC_PROTO = 1, 12, 13
_STATIC, _GLOBAL = 0, 1
FUNC_INFO = struct.Struct("<II")  # insn_off, type_id


class ProgramBtf(KernelHandle):
    kind = "BTF object"


def takes_function_address(insns: Sequence[Instruction]) -> bool:
    return any(insn.opcode == LDDW and insn.src == PseudoSrc.FUNC for insn in insns)


def subprogram_starts(insns: Sequence[Instruction]) -> list[int]:
    """The first slot of each function: 0, call targets and subprogram addresses."""
    starts = {0}
    slot = 0
    for insn in insns:
        if insn.is_local_call or insn.opcode == LDDW and insn.src == PseudoSrc.FUNC:
            starts.add(slot + 1 + insn.imm)
        slot += insn.width
    return sorted(starts)


def function_btf(count: int) -> bytes:
    """A BTF blob: ``int`` (id 1), ``int (void)`` (id 2), then ``count`` functions of that
    type (ids 3..), the first global, the rest static."""
    names = [b"main"] + [f"f{i}".encode() for i in range(1, count)]
    strings = bytearray(b"\0int\0")
    types = bytearray(struct.pack("<IIII", 1, _KIND_INT << 24, 4, (1 << 24) | 32))
    types += struct.pack("<III", 0, _KIND_FUNC_PROTO << 24, 1)
    for i, name in enumerate(names):
        linkage = _GLOBAL if i == 0 else _STATIC
        types += struct.pack("<III", len(strings), _KIND_FUNC << 24 | linkage, 2)
        strings += name + b"\0"
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                         len(strings))
    return header + bytes(types) + bytes(strings)


def load_function_btf(insns: Sequence[Instruction]) -> tuple[ProgramBtf, bytes, int]:
    """The loaded BTF, the ``func_info`` records and their count for ``insns``."""
    starts = subprogram_starts(insns)
    blob = function_btf(len(starts))
    buf = ctypes.create_string_buffer(blob, len(blob))
    attr = BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(blob))
    btf = ProgramBtf(bpf(BpfCmd.BTF_LOAD, attr, what="the program's function BTF"), "funcs")
    records = b"".join(FUNC_INFO.pack(start, 3 + i) for i, start in enumerate(starts))
    return btf, records, len(starts)
