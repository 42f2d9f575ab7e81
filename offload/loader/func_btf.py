"""The function BTF a program carries to a device, and the functions the device reads from it.

A device sees no ELF object: PROG_LOAD brings a program's functions the way BPF_PROG_LOAD
takes them, as a BTF blob and one ``func_info`` record (insn_off, type_id) per function. The
guest writes the blob from the functions' linkage and prototypes (``FuncInfo``, from an object
or a snapshot): a number is ``int``, the context ``struct xdp_md *``, N bytes of memory a
pointer to ``char[N]`` (tagged ``arg:nonnull`` where it may not be NULL), and a prototype
Linux cannot verify against is written so that it reads back with the same reason. The device
reads blob and records back into ``FuncInfo`` with the kernel's checks (``check_btf_func``):
every refusal is EINVAL naming the field.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ErrnoError
from ..program import ArgKind, FuncArg, FuncInfo, Linkage
from .btf import BtfParam, BtfType, parse_btf
from .btf_encode import encode_btf
from .btf_funcs import (
    ARG_TAG,
    KNOWN_TAGS,
    MAX_ARGS,
    NOT_SCALAR,
    TAG_COMBINATION,
    TAG_CTX_TYPE,
    TAG_NOT_POINTER,
    TAG_UNKNOWN,
    TAG_UNSUPPORTED,
    TOO_MANY_ARGS,
    UNSIZED_ARG,
    UNSUPPORTED_ARG,
    XDP_CTX,
    arg_tags,
    prototype,
)
from .btf_layout import BtfKind
from .errors import LoaderError


@dataclass(frozen=True, slots=True)
class FunctionBtf:
    """What PROG_LOAD carries for a program's functions: the BTF blob and, per function in
    slot order, (insn_off, type_id) of its FUNC."""

    btf: bytes
    records: tuple[tuple[int, int], ...]


def function_btf(functions: Sequence[FuncInfo]) -> FunctionBtf | None:
    """The BTF and records for ``functions``; None unless every function has its linkage and
    prototype from BTF (a program without them loads with every subprogram static)."""
    if not functions or any(f.proto is None for f in functions):
        return None
    builder = _Builder()
    records = []
    for info in sorted(functions, key=lambda f: f.slot):
        proto_id, tags = builder.prototype(info)
        func_id = builder.add(BtfKind.FUNC, name=info.name, type_id=proto_id,
                              linkage=int(info.linkage))
        for index, tag in tags:
            builder.add(BtfKind.DECL_TAG, name=ARG_TAG + tag, type_id=func_id,
                        component_idx=index)
        records.append((info.slot, func_id))
    return FunctionBtf(encode_btf(builder.types), tuple(records))


def _pattern(template: str) -> re.Pattern[str]:
    """A template of :mod:`.btf_funcs` as a regular expression with its fields as groups."""
    parts = re.split(r"\{(\w+)\}", template)
    out = []
    for i, part in enumerate(parts):
        out.append(f"(?P<{part}>.*)" if i % 2 else re.escape(part))
    return re.compile("".join(out), re.DOTALL)


_TOO_MANY, _NOT_SCALAR = _pattern(TOO_MANY_ARGS), _pattern(NOT_SCALAR)
_UNSUPPORTED, _UNSIZED = _pattern(UNSUPPORTED_ARG), _pattern(UNSIZED_ARG)
_TAG_UNKNOWN, _TAG_NOT_POINTER = _pattern(TAG_UNKNOWN), _pattern(TAG_NOT_POINTER)
_TAG_COMBINATION, _TAG_CTX_TYPE = _pattern(TAG_COMBINATION), _pattern(TAG_CTX_TYPE)
_TAG_UNSUPPORTED = _pattern(TAG_UNSUPPORTED)
#: Tags a prototype carries: (argument index, the name after ``arg:``)
Tags = list[tuple[int, str]]


class _Builder:
    """Type records numbered 1, 2, ... as they are added; shared types written once."""

    def __init__(self) -> None:
        self.types: list[BtfType] = []
        self._shared: dict[object, int] = {}

    def add(self, kind: BtfKind, **fields: object) -> int:
        type_id = len(self.types) + 1
        self.types.append(BtfType(type_id, kind, **fields))  # type: ignore[arg-type]
        return type_id

    def shared(self, key: object, kind: BtfKind, **fields: object) -> int:
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = self.add(kind, **fields)
        return found

    def int_type(self) -> int:
        return self.shared("int", BtfKind.INT, name="int", size=4, int_encoding=1, int_bits=32)

    def arg(self, arg: FuncArg) -> int:
        if arg.kind == ArgKind.SCALAR:
            return self.int_type()
        if arg.kind == ArgKind.CTX:
            ctx = self.shared("ctx", BtfKind.STRUCT, name=XDP_CTX, size=24)
            return self.shared("ctx*", BtfKind.PTR, type_id=ctx)
        char = self.shared("char", BtfKind.INT, name="char", size=1, int_bits=8)
        array = self.shared(("char[]", arg.size), BtfKind.ARRAY, elem_type=char,
                            index_type=self.int_type(), nelems=arg.size)
        return self.shared(("char[]*", arg.size), BtfKind.PTR, type_id=array)

    def prototype(self, info: FuncInfo) -> tuple[int, Tags]:
        """The FUNC_PROTO of ``info`` and the tags its FUNC must carry."""
        proto = info.proto
        if proto is None or not proto.problem:
            args = proto.args if proto is not None else ()
            tags = [(i, "nonnull") for i, a in enumerate(args) if a.kind == ArgKind.MEM_NONNULL]
            return self._proto(self.int_type(), [self.arg(a) for a in args]), tags
        return self._tag_problem(proto.problem) or (self._problem(proto.problem), [])

    def _tag_problem(self, problem: str) -> tuple[int, Tags] | None:
        """A prototype whose tags read back with ``problem``, if it is about tags."""
        for pattern, tags in ((_TAG_UNKNOWN, ["unknown"]), (_TAG_NOT_POINTER, ["nonnull"]),
                              (_TAG_COMBINATION, ["ctx", "nonnull"]), (_TAG_CTX_TYPE, ["ctx"]),
                              (_TAG_UNSUPPORTED, None)):
            m = pattern.fullmatch(problem)
            if m is None or not m["index"].isdigit() or int(m["index"]) >= MAX_ARGS:
                continue
            index = int(m["index"])
            if tags is None:
                if m["tag"] not in KNOWN_TAGS - {"ctx", "nonnull"}:
                    return None
                tags = [m["tag"]]
            if pattern is _TAG_UNKNOWN or pattern is _TAG_NOT_POINTER:
                param = self.int_type()
            elif pattern is _TAG_COMBINATION:
                param = self.arg(FuncArg(ArgKind.CTX))
            elif pattern is _TAG_CTX_TYPE:
                param = self.add(BtfKind.PTR, type_id=self.int_type())
            else:
                param = self.arg(FuncArg(ArgKind.MEM, 1))
            params = [self.int_type()] * index + [param]
            return self._proto(self.int_type(), params), [(index, tag) for tag in tags]
        return None

    def _proto(self, ret: int, params: Sequence[int]) -> int:
        return self.add(BtfKind.FUNC_PROTO, type_id=ret, vlen=len(params),
                        params=tuple(BtfParam(f"a{i}", t) for i, t in enumerate(params)))

    def _problem(self, problem: str) -> int:
        """A prototype that reads back with ``problem``: each reason of ``btf_funcs`` has
        one; any other (never written by this tree) becomes a void return, which refuses
        every call as well. Reasons about tags are :meth:`_tag_problem`'s."""
        if (m := _TOO_MANY.fullmatch(problem)) and m["count"].isdigit() \
                and MAX_ARGS < int(m["count"]) <= 0xFFFF:
            return self._proto(self.int_type(), [self.int_type()] * int(m["count"]))
        if (m := _UNSUPPORTED.fullmatch(problem)) and m["index"].isdigit() \
                and int(m["index"]) < MAX_ARGS:
            param = self._of_kind(m["kind"])
            if param is not None:
                return self._proto(self.int_type(), [self.int_type()] * int(m["index"]) + [param])
        if (m := _UNSIZED.fullmatch(problem)) and m["index"].isdigit() \
                and int(m["index"]) < MAX_ARGS:
            target = self._unsized(m["kind"], m["target"])
            if target is not None:
                pointer = self.add(BtfKind.PTR, type_id=target)
                return self._proto(self.int_type(), [self.int_type()] * int(m["index"]) + [pointer])
        return self._proto(0, [])

    def _of_kind(self, kind: str) -> int | None:
        """A parameter type of BTF kind ``kind`` that is neither a number nor a pointer."""
        if kind == "UNKNOWN":
            return 0
        if kind in ("STRUCT", "UNION"):
            return self.add(BtfKind[kind], name="arg", size=8)
        if kind == "FLOAT":
            return self.add(BtfKind.FLOAT, name="double", size=8)
        if kind == "ARRAY":
            return self.add(BtfKind.ARRAY, elem_type=self.int_type(), index_type=self.int_type(),
                            nelems=1)
        if kind == "FWD":
            return self.add(BtfKind.FWD, name="arg")
        if kind == "FUNC_PROTO":
            return self._proto(self.int_type(), [])
        return None

    def _unsized(self, kind: str, target: str) -> int | None:
        """A pointee of ``kind`` named ``target`` whose size cannot be determined."""
        if kind == "UNKNOWN" and not target:
            return 0
        if kind == "FWD":
            return self.add(BtfKind.FWD, name=target)
        if kind == "FUNC_PROTO" and not target:
            return self._proto(self.int_type(), [])
        if kind == "FUNC":
            return self.add(BtfKind.FUNC, name=target, type_id=self._proto(self.int_type(), []))
        return None


def read_function_btf(blob: bytes, records: Sequence[tuple[int, int]],
                      subprograms: Sequence[int], ctx_name: str = XDP_CTX
                      ) -> tuple[FuncInfo, ...]:
    """The program's functions from the BTF and records PROG_LOAD brought, checked as
    ``check_btf_func`` checks them against the program's subprogram starts (``subprograms``,
    sorted, 0 first); a refusal is EINVAL naming the field."""
    try:
        btf = parse_btf(blob)
    except LoaderError as err:
        raise ErrnoError(errno.EINVAL, f"btf: {err}") from None
    if len(records) != len(subprograms):
        raise ErrnoError(errno.EINVAL, f"func_info_cnt: number of funcs in func_info "
                                       f"({len(records)}) doesn't match number of subprogs "
                                       f"({len(subprograms)})")
    found = []
    tags = arg_tags(btf)
    for i, ((insn_off, type_id), start) in enumerate(zip(records, subprograms, strict=True)):
        if insn_off != start:
            raise ErrnoError(errno.EINVAL, f"func_info[{i}].insn_off: func_info BTF section "
                                           f"doesn't match subprog layout in BPF program "
                                           f"({insn_off} is not the start of subprog {i}, "
                                           f"{start})")
        func = btf.types[type_id] if 0 < type_id < len(btf.types) else None
        if func is None or func.kind != BtfKind.FUNC:
            raise ErrnoError(errno.EINVAL, f"func_info[{i}].type_id: invalid type id "
                                           f"{type_id} in func info")
        if func.linkage not in (Linkage.STATIC, Linkage.GLOBAL):
            raise ErrnoError(errno.EINVAL, f"func_info[{i}].type_id: FUNC [{type_id}] "
                                           f"'{func.name}' has linkage {func.linkage}: a "
                                           "program's functions are static or global")
        if btf.types[func.type_id].kind != BtfKind.FUNC_PROTO:
            raise ErrnoError(errno.EINVAL, f"btf: FUNC [{type_id}] '{func.name}' refers to "
                                           f"type [{func.type_id}], which is not a "
                                           "FUNC_PROTO: Invalid type_id")
        found.append(FuncInfo(start, func.name, Linkage(func.linkage),
                              prototype(btf, func, ctx_name, tags)))
    return tuple(found)


__all__ = ["FunctionBtf", "function_btf", "read_function_btf"]
