"""BTF function records: for programs that take a subprogram's address (callbacks), and for
programs whose global functions are given (``FuncInfo``).

Linux loads ``lddw func`` (a callback for ``bpf_loop``) only with BTF ``func_info`` for every
subprogram, and the callback's must be static ("missing btf func_info", "callback function
not static"). Programs loaded here come as bare instructions, so such a program gets a
minimal BTF of its own: one function type (``int f(void)``) per subprogram, the main one
global, the others static, and one record per subprogram start. A program given its
functions' linkage and prototypes gets them instead, so the kernel verifies its global
functions on their own as the device does: when they cover every subprogram, the BTF the
guest driver sends the device (:mod:`offload.loader.func_btf`, prototype problems and
argument tags included); otherwise numbers are ``int``, the context ``struct xdp_md *``,
memory of N bytes a pointer to ``char[N]``. Layout per Documentation/bpf/btf.rst (header,
types, strings) and ``struct bpf_func_info``.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence

from ...isa.instruction import Instruction
from ...isa.opcodes import LDDW, PseudoSrc
from ...loader.func_btf import function_btf as loader_function_btf
from ...program import ArgKind, FuncInfo, Linkage
from .attr import BtfLoadAttr
from .handle import KernelHandle
from .syscall import BpfCmd, bpf

_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT = 1, 2, 3, 4
_KIND_FUNC, _KIND_FUNC_PROTO = 12, 13
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


def prototype_btf(starts: Sequence[int], functions: Sequence[FuncInfo]) -> bytes:
    """A BTF blob with a function per subprogram start: those in ``functions`` with their
    linkage and prototype (one without a usable prototype, and every other, ``int f(void)``
    and static; the main program global). Type ids: ``int`` 1, ``char`` 2, ``struct xdp_md``
    3, its pointer 4, ``int (void)`` 5, then arrays, pointers, prototypes and functions."""
    strings = bytearray(b"\0int\0char\0xdp_md\0a0\0a1\0a2\0a3\0a4\0")
    arg_names = [17 + 3 * i for i in range(5)]  # a FUNC's parameters must be named
    types = bytearray()
    types += struct.pack("<IIII", 1, _KIND_INT << 24, 4, (1 << 24) | 32)
    types += struct.pack("<IIII", 5, _KIND_INT << 24, 1, 8)
    types += struct.pack("<III", 10, _KIND_STRUCT << 24, 24)
    types += struct.pack("<III", 0, _KIND_PTR << 24, 3)
    types += struct.pack("<III", 0, _KIND_FUNC_PROTO << 24, 1)
    next_id = 6
    mem_ptr: dict[int, int] = {}
    by_slot = {f.slot: f for f in functions}

    def mem(size: int) -> int:
        nonlocal next_id, types
        if size not in mem_ptr:
            types += struct.pack("<IIIIII", 0, _KIND_ARRAY << 24, 0, 2, 1, size)
            types += struct.pack("<III", 0, _KIND_PTR << 24, next_id)
            mem_ptr[size] = next_id + 1
            next_id += 2
        return mem_ptr[size]

    for i, start in enumerate(starts):
        info = by_slot.get(start)
        proto_id = 5
        linkage = _GLOBAL if i == 0 else _STATIC
        if info is not None and info.proto is not None and not info.proto.problem and \
                (info.linkage == Linkage.GLOBAL or i == 0):
            params = [1 if a.kind == ArgKind.SCALAR else 4 if a.kind == ArgKind.CTX
                      else mem(a.size) for a in info.proto.args]
            types += struct.pack("<III", 0, _KIND_FUNC_PROTO << 24 | len(params), 1)
            for n, param in enumerate(params):
                types += struct.pack("<II", arg_names[n], param)
            proto_id = next_id
            next_id += 1
            linkage = _GLOBAL if info.linkage == Linkage.GLOBAL else linkage
        name = (info.name if info is not None else f"f{i}").encode()
        types += struct.pack("<III", len(strings), _KIND_FUNC << 24 | linkage, proto_id)
        strings += name + b"\0"
        next_id += 1
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                         len(strings))
    return header + bytes(types) + bytes(strings)


def load_function_btf(insns: Sequence[Instruction], functions: Sequence[FuncInfo] = ()
                      ) -> tuple[ProgramBtf, bytes, int]:
    """The loaded BTF, the ``func_info`` records and their count for ``insns``; with
    ``functions``, their linkage and prototypes (``prototype_btf``)."""
    starts = subprogram_starts(insns)
    written = loader_function_btf(functions) if functions else None
    if written is not None and [start for start, _ in written.records] == starts:
        # every function's own: its prototype's problems and argument tags as the object's
        btf = _load_btf(written.btf)
        return btf, b"".join(FUNC_INFO.pack(*r) for r in written.records), len(starts)
    blob = prototype_btf(starts, functions) if functions else function_btf(len(starts))
    btf = _load_btf(blob)
    if functions:
        ids = _function_ids(blob)
        records = b"".join(FUNC_INFO.pack(start, ids[i]) for i, start in enumerate(starts))
        return btf, records, len(starts)
    records = b"".join(FUNC_INFO.pack(start, 3 + i) for i, start in enumerate(starts))
    return btf, records, len(starts)


def _load_btf(blob: bytes) -> ProgramBtf:
    buf = ctypes.create_string_buffer(blob, len(blob))
    attr = BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(blob))
    return ProgramBtf(bpf(BpfCmd.BTF_LOAD, attr, what="the program's function BTF"), "funcs")


def _function_ids(blob: bytes) -> list[int]:
    """The type ids of the FUNC records of a blob ``prototype_btf`` built, in order."""
    _, _, _, hdr_len, type_off, type_len, _, _ = struct.unpack_from("<HBBIIIII", blob)
    pos, end, type_id, ids = hdr_len + type_off, hdr_len + type_off + type_len, 1, []
    while pos < end:
        _, info, _ = struct.unpack_from("<III", blob, pos)
        kind, vlen = info >> 24 & 0x1F, info & 0xFFFF
        pos += 12 + {_KIND_INT: 4, _KIND_ARRAY: 12, _KIND_FUNC_PROTO: 8 * vlen}.get(kind, 0)
        if kind == _KIND_FUNC:
            ids.append(type_id)
        type_id += 1
    return ids
