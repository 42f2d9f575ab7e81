"""Special fields of a map value found in its BTF: where the ``struct bpf_spin_lock`` is.

At BPF_MAP_CREATE the kernel reads the value type named by ``btf_value_type_id`` and records
the fields the verifier and the map code treat specially (``btf_parse_fields``). Of those, an
XDP device knows the spin lock: a member whose type, behind typedefs and qualifiers, is the
struct named ``bpf_spin_lock``, found in the value struct (or union, or a global data
section) and in the structs nested in it, 4-byte aligned. A value may hold one lock at most;
a second one makes the kernel refuse the map (E2BIG). A value that *is* a ``struct
bpf_spin_lock`` holds none: only members count.
"""

from __future__ import annotations

from .btf import Btf
from .btf_layout import MAX_RESOLVE_DEPTH, BtfKind
from .errors import LoaderError

LOCK_STRUCT = "bpf_spin_lock"
_CONTAINERS = frozenset({BtfKind.STRUCT, BtfKind.UNION})


def spin_lock_offset(btf: Btf, value_type_id: int, *, map_name: str = "") -> int | None:
    """Byte offset of the value's ``struct bpf_spin_lock``, or None when it has none.

    Raises LoaderError for a value holding more than one lock."""
    value = btf.resolve(value_type_id)
    found: list[int] = []
    if value.kind == BtfKind.DATASEC:
        for info in value.secinfos:
            var = btf[info.type_id]
            if var.kind == BtfKind.VAR:
                _member(btf, var.type_id, info.offset, found, 0)
    elif value.kind in _CONTAINERS:
        _walk(btf, value_type_id, 0, found, 0)
    if len(found) > 1:
        raise LoaderError(f"the map value holds {len(found)} struct bpf_spin_lock; the kernel "
                          "allows one (E2BIG).", symbol=map_name or None)
    return found[0] if found else None


def _walk(btf: Btf, type_id: int, base: int, found: list[int], depth: int) -> None:
    container = btf.resolve(type_id)
    for member in container.members:
        if member.bitfield_size:
            continue
        _member(btf, member.type_id, base + member.bit_offset // 8, found, depth + 1)


def _member(btf: Btf, type_id: int, offset: int, found: list[int], depth: int) -> None:
    if depth > MAX_RESOLVE_DEPTH:
        raise LoaderError("the map value nests structs too deeply to look for a "
                          "bpf_spin_lock.")
    member = btf.resolve(type_id)
    count = 1
    while member.kind == BtfKind.ARRAY:  # arrays of structs count each element
        count *= member.nelems
        member = btf.resolve(member.elem_type)
    if count == 0 or member.kind not in _CONTAINERS:
        return
    if member.kind == BtfKind.STRUCT and member.name == LOCK_STRUCT:
        if offset % 4 == 0:  # a misaligned lock is no lock to the kernel
            found.extend(offset + i * member.size for i in range(count))
        return
    for i in range(count):
        _walk(btf, member.id, offset + i * member.size, found, depth)
