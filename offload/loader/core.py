"""CO-RE: a program's relocations resolved against the device's BTF, as libbpf resolves them
against the kernel's.

clang compiles every access through a ``preserve_access_index`` type (and every
``bpf_core_*`` query) with the answer its own headers give, and leaves a ``bpf_core_relo``
record saying what the instruction asks: a field's byte offset, size, existence, signedness
or bitfield shifts; a type's id, existence, size or match; an enum value's existence or
value. This module answers each question for the device's own types and patches the
instruction (the ALU immediate, the load/store offset and size, the ``lddw`` immediate).

Resolution follows the documented CO-RE rules (libbpf's documentation, the UAPI): the
candidates are the device's types of the same kind whose name equals the local one once a
``___flavor`` suffix is dropped; the access string is walked by member name (anonymous
members are looked through), array index, typedefs and qualifiers; a field matches when the
types are compatible (any two structs or unions, integers of any size, enums of the same
name, pointers, arrays of compatible elements). A question about something the device does
not have answers 0 where CO-RE defines it (field, type and enum value existence, type id and
size); where libbpf would poison the instruction (an offset of a field that is not there),
the program is refused, naming the type and the field.

The result is a :class:`CoreBinding` kept with the program: the local types the relocations
name (as BTF), each relocation and the value baked into its instruction, and the device BTF
it was resolved against. :func:`rebind` resolves the same relocations against another
device's BTF and re-patches the instructions, which is how a migrated program follows its
new device's types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from ..isa.disasm import slot_positions
from ..isa.instruction import Instruction
from ..isa.opcodes import LDDW, InsnClass, Size, Source
from ..program import CoreBinding, CoreRelocation
from ..uapi import CoreReloKind
from .btf import Btf, BtfMember, BtfType, parse_btf
from .btf_encode import btf_subset
from .btf_ext import CoreRecord, access_path
from .btf_layout import BtfKind, IntEncoding
from .errors import LoaderError, RefusalKind

if TYPE_CHECKING:
    from .device_btf import DeviceBtf

FIELD_KINDS = frozenset({CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE,
                         CoreReloKind.FIELD_EXISTS, CoreReloKind.FIELD_SIGNED,
                         CoreReloKind.FIELD_LSHIFT_U64, CoreReloKind.FIELD_RSHIFT_U64})
TYPE_KINDS = frozenset({CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET,
                        CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_SIZE,
                        CoreReloKind.TYPE_MATCHES})
ENUMVAL_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})
#: Longest access string (libbpf's BPF_CORE_SPEC_MAX_LEN) and deepest type comparison.
MAX_SPEC_LEN = 64
MAX_DEPTH = 32
_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)
_ENUMS = (BtfKind.ENUM, BtfKind.ENUM64)
_MEMORY = (InsnClass.LDX, InsnClass.ST, InsnClass.STX)
_SIZE_OF_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}
_U64 = (1 << 64) - 1


class CoreError(LoaderError):
    """A CO-RE relocation the device cannot resolve or apply: refuses the program.
    ``slot`` is the instruction's, when known."""

    def __init__(self, message: str, *, section: str | None = None,
                 symbol: str | None = None, slot: int | None = None) -> None:
        super().__init__(message, section=section, symbol=symbol, kind=RefusalKind.CO_RE)
        self.slot = slot


def essential_name(name: str) -> str:
    """``name`` without a ``___flavor`` suffix: ``bpf_ct_opts___local`` is ``bpf_ct_opts``.

    The suffix starts at the last ``___`` that has a character other than ``_`` on each
    side; names without one are their own essential name.
    """
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1:i + 4] == "___" and name[i + 4] != "_":
            return name[:i + 1]
    return name


def kind_name(kind: CoreReloKind | int) -> str:
    return kind.name.lower() if isinstance(kind, CoreReloKind) else f"kind {kind}"


# ------------------------------------------------------------------ access specifications
@dataclass(frozen=True, slots=True)
class _Step:
    """One accessor: index ``index`` into type ``type_id`` (a resolved struct, union, array
    or enum); ``name`` is the member or enumerator name, empty for an array index."""

    type_id: int
    index: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class _Spec:
    """What an access string reaches in one BTF: the root, the named steps (anonymous members
    are walked through, not recorded), and the bit offset from the root pointer."""

    btf: Btf
    root_id: int
    steps: tuple[_Step, ...]
    bit_offset: int = 0


def _type_label(t: BtfType) -> str:
    prefix = {BtfKind.STRUCT: "struct ", BtfKind.UNION: "union ", BtfKind.ENUM: "enum ",
              BtfKind.ENUM64: "enum ", BtfKind.FWD: "struct "}.get(t.kind, "")
    return f"{prefix}{t.name or '(anon)'}"


def _indices(access: str) -> list[int]:
    try:
        indices = [int(part) for part in access.split(":")]
    except ValueError:
        raise CoreError(f"access string {access!r} is not a list of indices.") from None
    if not indices or len(indices) > MAX_SPEC_LEN or any(i < 0 for i in indices):
        raise CoreError(f"access string {access!r} has no index, a negative one, or more "
                        f"than {MAX_SPEC_LEN}.")
    return indices


def _local_spec(btf: Btf, type_id: int, access: str, kind: CoreReloKind) -> _Spec:
    """The local side of a record: its access string walked through the object's BTF."""
    indices = _indices(access)
    root = btf.resolve(type_id)
    if kind in TYPE_KINDS:
        if indices != [0]:
            raise CoreError(f"a {kind_name(kind)} relocation has access string {access!r}; "
                            "type relocations have '0'.")
        return _Spec(btf, type_id, ())
    if kind in ENUMVAL_KINDS:
        if root.kind not in _ENUMS or len(indices) != 1 or \
                indices[0] >= len(root.enumerators):
            raise CoreError(f"a {kind_name(kind)} relocation must name a value of an enum; "
                            f"it has access {access!r} into {_type_label(root)}.")
        return _Spec(btf, type_id, (_Step(root.id, indices[0],
                                          root.enumerators[indices[0]].name),))
    steps = [_Step(root.id, indices[0])]
    bit_offset = indices[0] * btf.size_of(root.id) * 8
    current = root.id
    for index in indices[1:]:
        t = btf.resolve(current)
        if t.kind in _COMPOSITE:
            if index >= len(t.members):
                raise CoreError(f"access string {access!r} names member {index} of "
                                f"{_type_label(t)}, which has {len(t.members)}.")
            member = t.members[index]
            bit_offset += member.bit_offset
            current = member.type_id
            if member.name:
                steps.append(_Step(t.id, index, member.name))
        elif t.kind == BtfKind.ARRAY:
            if index >= t.nelems and not _flexible(btf, steps[-1], t):
                raise CoreError(f"access string {access!r} indexes element {index} of an "
                                f"array of {t.nelems}.")
            current = t.elem_type
            steps.append(_Step(t.id, index))
            bit_offset += index * btf.size_of(t.elem_type) * 8
        else:
            raise CoreError(f"access string {access!r} goes into {_type_label(t)}, which has "
                            "no members.")
    return _Spec(btf, type_id, tuple(steps), bit_offset)


def _flexible(btf: Btf, previous: _Step, array: BtfType) -> bool:
    """A flexible array member: no elements, and the last member of its struct."""
    if array.nelems or not previous.name:
        return False
    return previous.index == len(btf[previous.type_id].members) - 1


# ------------------------------------------------------------------ compatibility
def _core_compatible_kinds(a: BtfType, b: BtfType) -> bool:
    return a.kind == b.kind or (a.kind in _ENUMS and b.kind in _ENUMS)


def fields_compatible(local: Btf, local_id: int, target: Btf, target_id: int) -> bool:
    """Whether a field of the local type may be read as one of the target type: two
    composites of any name, integers of any size (not the old bit-carrying ones), enums of
    the same name (or one anonymous), pointers, floats; arrays by their elements."""
    for _ in range(MAX_DEPTH):
        lt, tt = local.resolve(local_id), target.resolve(target_id)
        if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
            return True
        if not _core_compatible_kinds(lt, tt):
            return False
        if lt.kind in (BtfKind.PTR, BtfKind.FLOAT):
            return True
        if lt.kind in (*_ENUMS, BtfKind.FWD):
            a, b = essential_name(lt.name), essential_name(tt.name)
            return not a or not b or a == b
        if lt.kind == BtfKind.INT:
            return lt.int_offset == 0 and tt.int_offset == 0
        if lt.kind != BtfKind.ARRAY:
            return False
        local_id, target_id = lt.elem_type, tt.elem_type
    return False


def types_compatible(local: Btf, local_id: int, target: Btf, target_id: int,
                     depth: int = 0) -> bool:
    """The relation of type id, existence and size relocations: same kind (enum and enum64
    alike) once typedefs and qualifiers are dropped; integers without bit offsets; pointers
    and arrays by what they hold; function prototypes by their parameters and result."""
    if depth > MAX_DEPTH:
        return False
    if not _core_compatible_kinds(local[local_id], target[target_id]):
        return False
    lt, tt = local.resolve(local_id), target.resolve(target_id)
    if not _core_compatible_kinds(lt, tt):
        return False
    if lt.kind in (BtfKind.UNKN, *_COMPOSITE, *_ENUMS, BtfKind.FWD, BtfKind.FLOAT):
        return True
    if lt.kind == BtfKind.INT:
        return lt.int_offset == 0 and tt.int_offset == 0
    if lt.kind == BtfKind.PTR:
        return types_compatible(local, lt.type_id, target, tt.type_id, depth + 1)
    if lt.kind == BtfKind.ARRAY:
        return types_compatible(local, lt.elem_type, target, tt.elem_type, depth + 1)
    if lt.kind == BtfKind.FUNC_PROTO:
        return len(lt.params) == len(tt.params) and \
            types_compatible(local, lt.type_id, target, tt.type_id, depth + 1) and \
            all(types_compatible(local, a.type_id, target, b.type_id, depth + 1)
                for a, b in zip(lt.params, tt.params))
    return False


def _names_match(a: str, b: str) -> bool:
    if not b:
        return not a
    return essential_name(a) == essential_name(b)


def types_match(local: Btf, local_id: int, target: Btf, target_id: int, *,
                behind_pointer: bool = False, depth: int = 0) -> bool:
    """``bpf_core_type_matches``: the stricter relation. Names match (flavors ignored) at
    every level; integers by size and signedness; arrays by length and element; pointers by
    what they point to, where a struct or union may meet a forward declaration of the same
    kind; structs and unions member by member (every local member in the target with the
    same name and a matching type); enums by size and every local name; function
    prototypes by parameters and result."""
    if depth > MAX_DEPTH:
        return False
    lt, tt = local.resolve(local_id), target.resolve(target_id)
    if not _names_match(lt.name, tt.name):
        return False
    if lt.kind == BtfKind.FWD:
        if tt.kind == BtfKind.FWD:
            return lt.kind_flag == tt.kind_flag
        return behind_pointer and tt.kind == (BtfKind.UNION if lt.kind_flag else BtfKind.STRUCT)
    if lt.kind in _ENUMS:
        names = {essential_name(e.name) for e in tt.enumerators}
        return tt.kind in _ENUMS and lt.size == tt.size and \
            all(essential_name(e.name) in names for e in lt.enumerators)
    if lt.kind in _COMPOSITE:
        if behind_pointer:
            if tt.kind == BtfKind.FWD:
                return tt.kind_flag == (lt.kind == BtfKind.UNION)
            return lt.kind == tt.kind
        if lt.kind != tt.kind:
            return False
        return all(any(_names_match(m.name, t.name) and
                       types_match(local, m.type_id, target, t.type_id,
                                   behind_pointer=behind_pointer, depth=depth + 1)
                       for t in tt.members) for m in lt.members)
    if lt.kind != tt.kind:
        return False
    if lt.kind == BtfKind.INT:
        return lt.size == tt.size and \
            bool(lt.int_encoding & IntEncoding.SIGNED) == bool(tt.int_encoding & IntEncoding.SIGNED)
    if lt.kind == BtfKind.PTR:
        return types_match(local, lt.type_id, target, tt.type_id, behind_pointer=True,
                           depth=depth + 1)
    if lt.kind == BtfKind.ARRAY:
        return lt.nelems == tt.nelems and \
            types_match(local, lt.elem_type, target, tt.elem_type,
                        behind_pointer=behind_pointer, depth=depth + 1)
    if lt.kind == BtfKind.FUNC_PROTO:
        return len(lt.params) == len(tt.params) and \
            types_match(local, lt.type_id, target, tt.type_id, behind_pointer=True,
                        depth=depth + 1) and \
            all(types_match(local, a.type_id, target, b.type_id, behind_pointer=True,
                            depth=depth + 1) for a, b in zip(lt.params, tt.params))
    return lt.kind in (BtfKind.UNKN, BtfKind.FLOAT) and lt.size == tt.size


# ------------------------------------------------------------------ matching a target
def _find_member(local: Btf, member: BtfMember, target: Btf, type_id: int, bit_offset: int,
                 depth: int = 0) -> tuple[int, int, int] | None:
    """The member of target type ``type_id`` named like ``member``, looking through
    anonymous members: (its composite's id, its index, bit offset); None if absent. Raises
    a reason when the name is there with an incompatible type."""
    t = target.resolve(type_id)
    if t.kind not in _COMPOSITE or depth > MAX_DEPTH:
        return None
    for index, candidate in enumerate(t.members):
        offset = bit_offset + candidate.bit_offset
        if not candidate.name:
            inner = target.resolve(candidate.type_id)
            if inner.kind in _COMPOSITE:
                found = _find_member(local, member, target, inner.id, offset, depth + 1)
                if found is not None:
                    return found
            continue
        if candidate.name == member.name:
            if not fields_compatible(local, member.type_id, target, candidate.type_id):
                raise _Mismatch(f"{_type_label(t)} has field '{member.name}' of an "
                                f"incompatible type ({_kind_of(target, candidate.type_id)}, "
                                f"locally {_kind_of(local, member.type_id)})")
            return t.id, index, offset
    return None


def _kind_of(btf: Btf, type_id: int) -> str:
    t = btf.resolve(type_id)
    return _type_label(t) if t.name or t.kind in _COMPOSITE else t.kind.name.lower()


class _Mismatch(Exception):
    """Why a candidate does not match, to name in a refusal."""


def _match(local: _Spec, kind: CoreReloKind, target: Btf, cand_id: int) -> _Spec:
    """The target side of ``local`` rooted at candidate ``cand_id``; :class:`_Mismatch` if
    the candidate does not have what the access string reaches."""
    cand = target[cand_id]
    if kind in TYPE_KINDS:
        ok = types_match(local.btf, local.root_id, target, cand_id) \
            if kind == CoreReloKind.TYPE_MATCHES else \
            types_compatible(local.btf, local.root_id, target, cand_id)
        if not ok:
            how = "does not match" if kind == CoreReloKind.TYPE_MATCHES else "is not compatible"
            raise _Mismatch(f"{_type_label(cand)} of the device differs ({how})")
        return _Spec(target, cand_id, ())
    if kind in ENUMVAL_KINDS:
        enum = target.resolve(cand_id)
        wanted = essential_name(local.steps[0].name)
        for index, value in enumerate(enum.enumerators):
            if essential_name(value.name) == wanted:
                return _Spec(target, cand_id, (_Step(enum.id, index, value.name),))
        raise _Mismatch(f"{_type_label(enum)} has no value {local.steps[0].name}")
    root = target.resolve(cand_id)
    first = local.steps[0]
    steps = [_Step(root.id, first.index)]
    bit_offset = first.index * target.size_of(root.id) * 8
    current = root.id
    for step in local.steps[1:]:
        t = target.resolve(current)
        if step.name:
            member = local.btf[step.type_id].members[step.index]
            found = _find_member(local.btf, member, target, t.id, 0)
            if found is None:
                raise _Mismatch(f"{_type_label(t)} has no field '{step.name}'")
            owner, index, offset = found
            steps.append(_Step(owner, index, step.name))
            bit_offset += offset
            current = target[owner].members[index].type_id
            continue
        if t.kind != BtfKind.ARRAY:
            raise _Mismatch(f"{_kind_of(target, t.id)} of the device is not an array")
        if step.index >= t.nelems and not _flexible(target, steps[-1], t):
            raise _Mismatch(f"the device's array has {t.nelems} elements, not "
                            f"{step.index + 1}")
        steps.append(_Step(t.id, step.index))
        current = t.elem_type
        bit_offset += step.index * target.size_of(t.elem_type) * 8
    return _Spec(target, cand_id, tuple(steps), bit_offset)


# ------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True)
class _Value:
    """A relocation's answer in one BTF. ``size`` and ``field_type`` describe the field a
    whole-field offset points at (load and store sizes follow it); ``validate`` says whether
    the compiled instruction must hold exactly the local answer."""

    value: int
    size: int = 0
    field_type: int = 0
    validate: bool = True


def _field_value(spec: _Spec | None, kind: CoreReloKind) -> _Value | None:
    """A field relocation's answer; None when the field is missing and the question has no
    answer (everything but existence)."""
    if kind == CoreReloKind.FIELD_EXISTS:
        return _Value(int(spec is not None))
    if spec is None:
        return None
    btf, last = spec.btf, spec.steps[-1]
    if not last.name:  # an array element, or the root itself
        elem = btf[last.type_id].elem_type if btf[last.type_id].kind == BtfKind.ARRAY and \
            len(spec.steps) > 1 else spec.root_id
        size = btf.size_of(elem)
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            return _Value(spec.bit_offset // 8, size, elem)
        if kind == CoreReloKind.FIELD_BYTE_SIZE:
            return _Value(size)
        raise CoreError(f"{kind_name(kind)} cannot be asked of an array element or a whole "
                        "type.")
    member = btf[last.type_id].members[last.index]
    field_type = btf.resolve(member.type_id)
    bit_offset, bits = spec.bit_offset, member.bitfield_size
    if bits:
        byte_size = field_type.size
        if byte_size <= 0:
            raise CoreError(f"bitfield '{member.name}' has a type without a size.")
        byte_offset = bit_offset // 8 // byte_size * byte_size
        while bit_offset + bits - byte_offset * 8 > byte_size * 8:
            if byte_size >= 8:
                raise CoreError(f"bitfield '{member.name}' cannot be read with 8 bytes.")
            byte_size *= 2
            byte_offset = bit_offset // 8 // byte_size * byte_size
    else:
        byte_size = btf.size_of(member.type_id)
        byte_offset = bit_offset // 8
        bits = byte_size * 8
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        if member.bitfield_size:
            return _Value(byte_offset, validate=False)
        return _Value(byte_offset, byte_size, member.type_id)
    if kind == CoreReloKind.FIELD_BYTE_SIZE:
        return _Value(byte_size, validate=not member.bitfield_size)
    if kind == CoreReloKind.FIELD_SIGNED:
        signed = (field_type.kind in _ENUMS and field_type.kind_flag) or \
            (field_type.kind == BtfKind.INT and bool(field_type.int_encoding & IntEncoding.SIGNED))
        return _Value(int(signed))
    if kind == CoreReloKind.FIELD_LSHIFT_U64:
        return _Value(64 - (bit_offset + bits - byte_offset * 8),
                      validate=not member.bitfield_size)
    return _Value(64 - bits)  # FIELD_RSHIFT_U64


def _type_value(spec: _Spec | None, kind: CoreReloKind) -> _Value:
    """Type relocations answer 0 for a type the BTF does not have."""
    if spec is None:
        return _Value(0)
    if kind == CoreReloKind.TYPE_ID_TARGET:
        return _Value(spec.root_id, validate=False)  # ids change as objects are linked
    if kind == CoreReloKind.TYPE_SIZE:
        return _Value(spec.btf.size_of(spec.root_id))
    return _Value(1)  # TYPE_EXISTS, TYPE_MATCHES


def _enum_value(spec: _Spec | None, kind: CoreReloKind) -> _Value | None:
    if kind == CoreReloKind.ENUMVAL_EXISTS:
        return _Value(int(spec is not None))
    if spec is None:
        return None
    step = spec.steps[0]
    enum = spec.btf[step.type_id]
    value = enum.enumerators[step.index].value
    return _Value(value & _U64)


def _value(spec: _Spec | None, kind: CoreReloKind) -> _Value | None:
    if kind in FIELD_KINDS:
        return _field_value(spec, kind)
    if kind in TYPE_KINDS:
        return _type_value(spec, kind)
    return _enum_value(spec, kind)


# ------------------------------------------------------------------ resolution
@dataclass(frozen=True, slots=True)
class Resolution:
    """One relocation answered: what clang compiled (``local``) and the device's answer
    (``target``, None when there is none: the program cannot be loaded); ``why`` says what
    the device's BTF lacks."""

    kind: CoreReloKind
    what: str
    local: _Value
    target: _Value | None
    why: str = ""
    local_field: tuple[Btf, int] | None = None
    target_field: tuple[Btf, int] | None = None


def _candidates(target: Btf, local_type: BtfType) -> list[int]:
    index = _name_index(target)
    wanted = essential_name(local_type.name)
    return [type_id for type_id in index.get(wanted, ())
            if _core_compatible_kinds(local_type, target[type_id])]


_INDEXES: dict[int, tuple[Btf, dict[str, list[int]]]] = {}


def _name_index(btf: Btf) -> dict[str, list[int]]:
    """Type ids by essential name, built once per BTF (device BTFs are few and long-lived)."""
    found = _INDEXES.get(id(btf))
    if found is not None and found[0] is btf:
        return found[1]
    index: dict[str, list[int]] = {}
    for t in btf.types[1:]:
        if t.name:
            index.setdefault(essential_name(t.name), []).append(t.id)
    if len(_INDEXES) > 16:
        _INDEXES.clear()
    _INDEXES[id(btf)] = (btf, index)
    return index


def resolve(local: Btf, type_id: int, access: str, kind: CoreReloKind | int,
            target: DeviceBtf) -> Resolution:
    """Answer one CO-RE relocation of a program with BTF ``local`` on the device ``target``."""
    if not isinstance(kind, CoreReloKind):
        raise CoreError(f"CO-RE relocation kind {kind} is unknown (newer than "
                        "TYPE_MATCHES).")
    what = f"{kind_name(kind)} of {access_path(local, type_id, access, kind)}"
    try:
        return _resolve(local, type_id, access, kind, target, what)
    except CoreError as err:
        if err.detail.startswith(what):
            raise
        raise CoreError(f"{what}: {err.detail}") from None
    except LoaderError as err:  # a type without a size, a modifier loop: BTF it cannot use
        raise CoreError(f"{what}: {err.detail}") from None


def _resolve(local: Btf, type_id: int, access: str, kind: CoreReloKind, target: DeviceBtf,
             what: str) -> Resolution:
    spec = _local_spec(local, type_id, access, kind)
    local_value = _value(spec, kind)
    if local_value is None:  # pragma: no cover - a local spec always answers
        raise CoreError("the object's own BTF does not answer it.")
    local_field = _field_of(spec, kind)
    if kind == CoreReloKind.TYPE_ID_LOCAL:
        value = _Value(type_id, validate=False)
        return Resolution(kind, what, value, value)
    local_type = local[type_id]
    if not local_type.name:
        raise CoreError("the type is anonymous, so nothing on the device can be found by its "
                        "name.")
    btf = target.btf
    matched: _Spec | None = None
    answer: _Value | None = None
    reasons = []
    for cand_id in _candidates(btf, local_type):
        try:
            cand_spec = _match(spec, kind, btf, cand_id)
        except _Mismatch as mismatch:
            reasons.append(str(mismatch))
            continue
        cand_value = _value(cand_spec, kind)
        if matched is None:
            matched, answer = cand_spec, cand_value
        elif (kind in FIELD_KINDS and cand_spec.bit_offset != matched.bit_offset) or \
                cand_value != answer:
            raise CoreError(f"the device's BTF {target} has several "
                            f"{_type_label(local_type)} that answer differently.")
    if matched is None:
        answer = _value(None, kind)
        why = "; ".join(dict.fromkeys(reasons)) if reasons else \
            f"the device's BTF has no {_type_label(local_type)}"
        return Resolution(kind, what, local_value, answer, why, local_field)
    return Resolution(kind, what, local_value, answer, "", local_field,
                      _field_of(matched, kind))


def _field_of(spec: _Spec, kind: CoreReloKind) -> tuple[Btf, int] | None:
    if kind != CoreReloKind.FIELD_BYTE_OFFSET or not spec.steps:
        return None
    value = _field_value(spec, kind)
    return (spec.btf, value.field_type) if value is not None and value.size else None


# ------------------------------------------------------------------ patching
def _resize_allowed(resolution: Resolution) -> bool:
    """A load or store may change size for pointers and unsigned integers only (zero
    extension keeps their meaning); anything else would read a different value."""
    if resolution.local_field is None or resolution.target_field is None:
        return False
    (lb, lid), (tb, tid) = resolution.local_field, resolution.target_field
    lt, tt = lb.resolve(lid), tb.resolve(tid)
    if lt.kind == BtfKind.PTR and tt.kind == BtfKind.PTR:
        return True
    return lt.kind == BtfKind.INT and tt.kind == BtfKind.INT and \
        not lt.int_encoding & IntEncoding.SIGNED and not tt.int_encoding & IntEncoding.SIGNED


def patch(insn: Instruction, resolution: Resolution, expected: int, expected_size: int,
          validate: bool) -> Instruction:
    """``insn`` holding the device's answer instead of ``expected`` (and, for a whole-field
    load or store, an access of the device's field size instead of ``expected_size``)."""
    new = resolution.target
    if new is None:
        raise CoreError(f"{resolution.what} cannot be resolved: {resolution.why}")
    cls = insn.cls
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        if insn.source != Source.K:
            raise CoreError(f"{resolution.what} is on an ALU instruction with a register "
                            "operand; only immediates are relocated.")
        if validate and insn.imm & 0xFFFFFFFF != expected & 0xFFFFFFFF:
            raise _unexpected(resolution, insn.imm, expected)
        value = new.value & _U64
        if (1 << 32) <= value < _U64 + 1 - (1 << 31):
            raise CoreError(f"{resolution.what}: the device's answer {new.value} does not fit "
                            "the instruction's 32-bit immediate.")
        value &= 0xFFFFFFFF
        return insn.with_fields(imm=value - (1 << 32) if value >= 1 << 31 else value)
    if cls in _MEMORY:
        if validate and insn.off != expected:
            raise _unexpected(resolution, insn.off, expected)
        if not 0 <= new.value <= 0x7FFF:
            raise CoreError(f"{resolution.what}: offset {new.value} does not fit a load or "
                            "store's 16-bit offset.")
        insn = insn.with_fields(off=new.value)
        if new.size and expected_size and new.size != expected_size:
            if insn.size.nbytes != expected_size:
                raise CoreError(f"{resolution.what}: the access is {insn.size.nbytes} bytes "
                                f"wide, not the field's {expected_size}.")
            if not _resize_allowed(resolution) or new.size not in _SIZE_OF_BYTES:
                raise CoreError(f"{resolution.what}: the field is {new.size} bytes on the "
                                f"device, {expected_size} in the program, and only pointers "
                                "and unsigned integers may be read at another size.")
            insn = insn.with_fields(opcode=insn.opcode & ~0x18 | _SIZE_OF_BYTES[new.size])
        return insn
    if insn.opcode == LDDW and insn.src == 0 and insn.off == 0:
        if validate and insn.imm64 != expected & _U64:
            raise _unexpected(resolution, insn.imm64, expected)
        value = new.value & _U64
        low = value & 0xFFFFFFFF
        return insn.with_fields(imm=low - (1 << 32) if low >= 1 << 31 else low,
                                next_imm=value >> 32)
    raise CoreError(f"{resolution.what} is on an instruction (opcode {insn.opcode:#04x}) that "
                    "CO-RE does not relocate: an ALU immediate, a load or store offset or an "
                    "lddw.")


def _unexpected(resolution: Resolution, found: int, expected: int) -> CoreError:
    return CoreError(f"{resolution.what}: the instruction holds {found}, not {expected} as "
                     "the relocation says; the object and its BTF disagree.")


# ------------------------------------------------------------------ what a program keeps
def local_btf(binding: CoreBinding) -> Btf:
    """The local types a binding's relocations name, parsed (once per distinct bytes)."""
    return _parsed(binding.btf)


def describe_relocation(binding: CoreBinding, relocation: CoreRelocation) -> str:
    """What ``relocation`` asks, in words (its access path when the local BTF reads back)."""
    try:
        btf = local_btf(binding)
    except LoaderError:
        return f"{kind_name(relocation.kind)} (access {relocation.access})"
    return f"{kind_name(relocation.kind)} of " \
           f"{access_path(btf, relocation.type_id, relocation.access, relocation.kind)}"


@lru_cache(maxsize=64)
def _parsed(data: bytes) -> Btf:
    return parse_btf(data)


@dataclass(frozen=True, slots=True)
class CoreChange:
    """A relocation whose answer differs on the new device."""

    slot: int
    what: str
    before: int
    after: int

    def __str__(self) -> str:
        return f"{self.what} {self.before} -> {self.after} (insn {self.slot})"


def _index_of(instructions: Sequence[Instruction]) -> dict[int, int]:
    return {slot: i for i, slot in enumerate(slot_positions(instructions))}


def relocate(instructions: Sequence[Instruction], records: Iterable[tuple[int, CoreRecord]],
             local: Btf, target: DeviceBtf,
             where: Callable[[int], str] = lambda slot: f"insn {slot}",
             ) -> tuple[tuple[Instruction, ...], CoreBinding]:
    """The program's instructions with every record (at its slot) resolved on ``target``,
    and the binding to keep with it. :class:`CoreError` counts those that cannot be and
    names the first."""
    insns = list(instructions)
    index_of = _index_of(insns)
    kept: list[CoreRelocation] = []
    done: set[int] = set()
    failed: list[tuple[int, CoreError]] = []
    for slot, record in sorted(records, key=lambda item: item[0]):
        index = index_of.get(slot)
        try:
            if index is None:
                raise CoreError("the relocation is not on the first slot of an instruction.")
            if slot in done:
                raise CoreError("a second CO-RE relocation patches the same instruction.")
            resolution = resolve(local, record.type_id, record.access, record.kind, target)
            insns[index] = patch(insns[index], resolution, resolution.local.value,
                                 resolution.local.size, resolution.local.validate)
        except CoreError as err:
            failed.append((slot, err))
            continue
        done.add(slot)
        new = resolution.target
        if new is None:  # pragma: no cover - patch() refused it
            continue
        size = new.size if insns[index].cls in _MEMORY else 0
        kept.append(CoreRelocation(slot, resolution.kind, record.type_id, record.access,
                                   new.value, size))
    if failed:
        slot, first = failed[0]
        count = len(failed)
        raise CoreError(f"needs {count} CO-RE relocation{'s' if count > 1 else ''} the device "
                        f"cannot resolve (device BTF {target}); first, at {where(slot)}: "
                        f"{first.detail.rstrip('.')}.", slot=slot)
    data, ids = btf_subset(local, [r.type_id for r in kept])
    binding = CoreBinding(data, tuple(replace(r, type_id=ids[r.type_id]) for r in kept),
                          target.name, target.digest)
    return tuple(insns), binding


def rebind(instructions: Sequence[Instruction], binding: CoreBinding,
           target: DeviceBtf) -> tuple[tuple[Instruction, ...], CoreBinding, list[CoreChange]]:
    """The relocations resolved again on ``target``, the instructions re-patched from the
    answers they hold, the new binding, and what changed. :class:`CoreError` when a
    relocation has no answer there or the instructions no longer hold what the binding
    says they do."""
    try:
        local = local_btf(binding)
    except LoaderError as err:
        raise CoreError(f"the program's CO-RE types cannot be read: {err.detail}") from None
    insns = list(instructions)
    index_of = _index_of(insns)
    kept, changes = [], []
    for relocation in binding.relocations:
        index = index_of.get(relocation.slot)
        what = describe_relocation(binding, relocation)
        if index is None:
            raise CoreError(f"{what}: slot {relocation.slot} is not an instruction of the "
                            "program.", slot=relocation.slot)
        if relocation.kind == CoreReloKind.TYPE_ID_LOCAL:
            kept.append(relocation)  # the program's own type ids do not depend on the device
            continue
        try:
            resolution = resolve(local, relocation.type_id, relocation.access,
                                 relocation.kind, target)
            insns[index] = patch(insns[index], resolution, relocation.value, relocation.size,
                                 True)
        except CoreError as err:
            raise CoreError(f"CO-RE relocation at insn {relocation.slot} (device BTF "
                            f"{target}): {err.detail.rstrip('.')}.",
                            slot=relocation.slot) from None
        new = resolution.target
        if new is None:  # pragma: no cover - patch() refused it
            continue
        size = new.size if relocation.size else 0
        if new.value != relocation.value or size != relocation.size:
            changes.append(CoreChange(relocation.slot, what, relocation.value, new.value))
        kept.append(replace(relocation, value=new.value, size=size))
    return tuple(insns), replace(binding, relocations=tuple(kept), target=target.name,
                                 digest=target.digest), changes


__all__ = ["CoreBinding", "CoreChange", "CoreError", "CoreRelocation", "Resolution",
           "describe_relocation", "local_btf",
           "essential_name", "fields_compatible", "rebind", "relocate", "resolve",
           "types_compatible", "types_match"]
