"""The BTF a host-kernel map needs when its value holds a ``struct bpf_spin_lock``.

The kernel finds a value's lock only in the BTF given at BPF_MAP_CREATE (``btf_fd``,
``btf_key_type_id``, ``btf_value_type_id``). A ``MapSpec`` keeps just the lock's offset, so
the backend describes the value again: a struct of ``value_size`` bytes whose one member is the
lock at its offset (the rest is padding, which BTF allows), and a key of ``key_size`` bytes
(a u32 for an array, which the kernel requires).
"""

from __future__ import annotations

import ctypes

from ...loader.btf import BtfMember, BtfType
from ...loader.btf_encode import encode_btf
from ...loader.btf_layout import BtfKind
from ...maps.spec import SPIN_LOCK_SIZE, MapSpec
from .attr import BtfLoadAttr
from .handle import KernelHandle
from .syscall import BpfCmd, bpf

#: Type ids in the blob: u32, struct bpf_spin_lock, the key, the value.
U32_ID, LOCK_ID, KEY_ID, VALUE_ID = 1, 2, 4, 5
_BYTE_ID = 3


class LockBtf(KernelHandle):
    kind = "BTF object"


def lock_btf(spec: MapSpec) -> bytes:
    """BTF for ``spec``'s key and value, the value holding its lock at ``spin_lock_off``."""
    off = spec.spin_lock_off or 0
    key = BtfType(KEY_ID, BtfKind.INT, "u32", size=4, int_bits=32) if spec.key_size == 4 \
        else BtfType(KEY_ID, BtfKind.ARRAY, elem_type=_BYTE_ID, index_type=U32_ID,
                     nelems=spec.key_size)
    return encode_btf([
        BtfType(U32_ID, BtfKind.INT, "unsigned int", size=4, int_bits=32),
        BtfType(LOCK_ID, BtfKind.STRUCT, "bpf_spin_lock", size=SPIN_LOCK_SIZE,
                members=(BtfMember("val", U32_ID, 0),)),
        BtfType(_BYTE_ID, BtfKind.INT, "unsigned char", size=1, int_bits=8),
        key,
        BtfType(VALUE_ID, BtfKind.STRUCT, "value", size=spec.value_size,
                members=(BtfMember("lock", LOCK_ID, off * 8),)),
    ])


def load_lock_btf(spec: MapSpec) -> LockBtf:
    """BPF_BTF_LOAD of :func:`lock_btf` (close it once the map is created)."""
    blob = lock_btf(spec)
    buf = ctypes.create_string_buffer(blob, len(blob))
    attr = BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(blob))
    return LockBtf(bpf(BpfCmd.BTF_LOAD, attr, what=f"the BTF of map {spec.name!r}"),
                   spec.name)
