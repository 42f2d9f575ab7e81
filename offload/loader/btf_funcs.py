"""Function linkage and prototypes from BTF ``func_info``, as the kernel reads them.

libbpf hands the kernel one ``func_info`` record per function of a program (``.BTF.ext``,
Documentation/bpf/btf.rst 4.2), naming the function's BTF FUNC: its linkage and its
FUNC_PROTO. Linux verifies a GLOBAL subprogram once, on its own, with arguments typed from
that prototype (``btf_prepare_func_args``): an integer or enum is any number, a pointer to
the program type's context struct is the context, a pointer to any other sized type is that
many bytes of memory or NULL; anything else, or a return type that is not a number, refuses
the program at the first call, in the kernel's words. A program some of whose functions have
no record gets none (every subprogram static), as the kernel treats a program without
``func_info``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..program import ArgKind, FuncArg, FuncInfo, FuncProto, Linkage
from .btf import MODIFIER_KINDS, Btf, BtfType
from .btf_ext import FuncRecord
from .btf_layout import BtfKind
from .errors import LoaderError

#: Arguments a BPF function takes in registers (R1-R5).
MAX_ARGS = 5
#: The context struct an XDP program's global functions may take.
XDP_CTX = "xdp_md"
_SCALAR_KINDS = frozenset({BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64})
#: The kernel's names for BTF kinds (``btf_kind_str``).
_KIND_NAMES = {BtfKind.UNKN: "UNKNOWN", BtfKind.FUNC_PROTO: "FUNC_PROTO",
               BtfKind.DECL_TAG: "DECL_TAG", BtfKind.TYPE_TAG: "TYPE_TAG"}


#: The kernel's reasons a prototype cannot be verified against (``btf_prepare_func_args``),
#: written here and read back where a prototype is written as BTF again (:mod:`.func_btf`).
NO_PROTOTYPE = "Function {name} doesn't have a prototype"
TOO_MANY_ARGS = "Global function {name}() with {count} > {limit} args. Buggy compiler."
NOT_SCALAR = "Global function {name}() doesn't return scalar. Only those are supported."
UNSUPPORTED_ARG = "Arg#{index} type {kind} in {name}() is not supported yet."
UNSIZED_ARG = "arg#{index} reference type('{kind} {target}') size cannot be determined: -22"


def kind_name(kind: BtfKind) -> str:
    return _KIND_NAMES.get(kind, kind.name)


def _skip_modifiers(btf: Btf, type_id: int) -> BtfType:
    t = btf[type_id]
    for _ in range(32):
        if t.kind not in MODIFIER_KINDS:
            return t
        t = btf[t.type_id]
    return t


def prototype(btf: Btf, func: BtfType, ctx_name: str = XDP_CTX) -> FuncProto:
    """What the verifier makes of FUNC ``func``'s prototype (``btf_prepare_func_args``)."""
    name = func.name
    proto = btf[func.type_id]
    if proto.kind != BtfKind.FUNC_PROTO:
        return FuncProto(problem=NO_PROTOTYPE.format(name=name))
    if len(proto.params) > MAX_ARGS:
        return FuncProto(problem=TOO_MANY_ARGS.format(name=name, count=len(proto.params),
                                                      limit=MAX_ARGS))
    ret = _skip_modifiers(btf, proto.type_id) if proto.type_id else None
    if ret is None or ret.kind not in _SCALAR_KINDS:
        return FuncProto(problem=NOT_SCALAR.format(name=name))
    args = []
    for i, param in enumerate(proto.params):
        t = _skip_modifiers(btf, param.type_id)
        if t.kind in _SCALAR_KINDS:
            args.append(FuncArg(ArgKind.SCALAR))
            continue
        if t.kind != BtfKind.PTR:
            return FuncProto(problem=UNSUPPORTED_ARG.format(index=i, kind=kind_name(t.kind),
                                                            name=name))
        target = _skip_modifiers(btf, t.type_id) if t.type_id else btf[0]
        if target.kind == BtfKind.STRUCT and target.name == ctx_name:
            args.append(FuncArg(ArgKind.CTX))
            continue
        try:
            size = btf.size_of(target.id) if target.id else -1
        except LoaderError:
            size = -1
        if size < 0 or target.kind in (BtfKind.FWD, BtfKind.FUNC_PROTO, BtfKind.FUNC):
            return FuncProto(problem=UNSIZED_ARG.format(
                index=i, kind=kind_name(target.kind), target=target.name if target.id else ""))
        args.append(FuncArg(ArgKind.MEM, size))
    return FuncProto(tuple(args))


def with_prototypes(functions: Sequence[FuncInfo], starts: Sequence[tuple[str, int]],
                    records: dict[str, tuple[FuncRecord, ...]], btf: Btf) -> tuple[FuncInfo, ...]:
    """``functions`` (in placement order) with linkage and prototype from their records;
    ``starts`` gives each function's code section and byte offset there. Unchanged unless
    every function has a record naming a BTF FUNC."""
    found = []
    for info, (section, start) in zip(functions, starts):
        record = next((r for r in records.get(section, ()) if r.insn_off == start), None)
        if record is None or not 0 < record.type_id < len(btf.types):
            return tuple(functions)
        func = btf[record.type_id]
        if func.kind != BtfKind.FUNC:
            return tuple(functions)
        linkage = Linkage(func.linkage) if func.linkage in (0, 1, 2) else Linkage.STATIC
        found.append(FuncInfo(info.slot, info.name, linkage, prototype(btf, func)))
    return tuple(found)
