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
TAG_UNKNOWN = "arg#{index} has unsupported set of tags"
TAG_NOT_POINTER = "arg#{index} has pointer tag, but is not a pointer type"
TAG_COMBINATION = "arg#{index} has invalid combination of tags"
TAG_CTX_TYPE = "arg#{index} should be `struct {ctx} *`"
TAG_UNSUPPORTED = "arg#{index} tag arg:{tag} is not supported by the device"
#: Argument tags Linux knows (``btf_prepare_func_args``); the device takes ctx and nonnull.
ARG_TAG = "arg:"
KNOWN_TAGS = frozenset({"ctx", "nonnull", "trusted", "untrusted", "nullable", "arena"})


def kind_name(kind: BtfKind) -> str:
    return _KIND_NAMES.get(kind, kind.name)


def _skip_modifiers(btf: Btf, type_id: int) -> BtfType:
    t = btf[type_id]
    for _ in range(32):
        if t.kind not in MODIFIER_KINDS:
            return t
        t = btf[t.type_id]
    return t


#: FUNC type id -> argument index -> the names after ``arg:`` of its decl tags
ArgTags = dict[int, dict[int, list[str]]]


def arg_tags(btf: Btf) -> ArgTags:
    """Every ``arg:`` decl tag of the BTF by the FUNC and the parameter it is on, read once."""
    found: ArgTags = {}
    for t in btf.types:
        if t.kind == BtfKind.DECL_TAG and t.name.startswith(ARG_TAG) and t.component_idx >= 0:
            found.setdefault(t.type_id, {}).setdefault(t.component_idx, []).append(
                t.name[len(ARG_TAG):])
    return found


def prototype(btf: Btf, func: BtfType, ctx_name: str = XDP_CTX,
              tags: ArgTags | None = None) -> FuncProto:
    """What the verifier makes of FUNC ``func``'s prototype (``btf_prepare_func_args``),
    with the ``arg:ctx`` and ``arg:nonnull`` tags of its parameters (``tags``: those of the
    whole BTF, from :func:`arg_tags`, read here when not given)."""
    name = func.name
    on_func = (arg_tags(btf) if tags is None else tags).get(func.id, {})
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
        names = set(on_func.get(i, ()))
        if names - KNOWN_TAGS:
            return FuncProto(problem=TAG_UNKNOWN.format(index=i))
        t = _skip_modifiers(btf, param.type_id)
        if t.kind != BtfKind.PTR and names:
            return FuncProto(problem=TAG_NOT_POINTER.format(index=i))
        if t.kind in _SCALAR_KINDS:
            args.append(FuncArg(ArgKind.SCALAR))
            continue
        if t.kind != BtfKind.PTR:
            return FuncProto(problem=UNSUPPORTED_ARG.format(index=i, kind=kind_name(t.kind),
                                                            name=name))
        target = _skip_modifiers(btf, t.type_id) if t.type_id else btf[0]
        is_ctx = target.kind == BtfKind.STRUCT and target.name == ctx_name
        if "ctx" in names or is_ctx:
            if names - {"ctx"}:
                return FuncProto(problem=TAG_COMBINATION.format(index=i))
            if not is_ctx and target.id:  # arg:ctx takes void * or the context struct
                return FuncProto(problem=TAG_CTX_TYPE.format(index=i, ctx=ctx_name))
            args.append(FuncArg(ArgKind.CTX))
            continue
        other = sorted(names - {"nonnull"})
        if other:
            return FuncProto(problem=TAG_UNSUPPORTED.format(index=i, tag=other[0]))
        try:
            size = btf.size_of(target.id) if target.id else -1
        except LoaderError:
            size = -1
        if size < 0 or target.kind in (BtfKind.FWD, BtfKind.FUNC_PROTO, BtfKind.FUNC):
            return FuncProto(problem=UNSIZED_ARG.format(
                index=i, kind=kind_name(target.kind), target=target.name if target.id else ""))
        args.append(FuncArg(ArgKind.MEM_NONNULL if "nonnull" in names else ArgKind.MEM, size))
    return FuncProto(tuple(args))


def with_prototypes(functions: Sequence[FuncInfo], starts: Sequence[tuple[str, int]],
                    records: dict[str, tuple[FuncRecord, ...]], btf: Btf) -> tuple[FuncInfo, ...]:
    """``functions`` (in placement order) with linkage and prototype from their records;
    ``starts`` gives each function's code section and byte offset there. Unchanged unless
    every function has a record naming a BTF FUNC."""
    found = []
    tags = arg_tags(btf)
    for info, (section, start) in zip(functions, starts):
        record = next((r for r in records.get(section, ()) if r.insn_off == start), None)
        if record is None or not 0 < record.type_id < len(btf.types):
            return tuple(functions)
        func = btf[record.type_id]
        if func.kind != BtfKind.FUNC:
            return tuple(functions)
        linkage = Linkage(func.linkage) if func.linkage in (0, 1, 2) else Linkage.STATIC
        found.append(FuncInfo(info.slot, info.name, linkage, prototype(btf, func, tags=tags)))
    return tuple(found)
