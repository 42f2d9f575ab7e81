"""A device's BTF: the types its programs can see, as a kernel's BTF describes the kernel's.

CO-RE relocations of a program are resolved against it, as libbpf resolves them against
``/sys/kernel/btf/vmlinux``. It is built from a profile: the declarations its ``btf`` names
(:data:`DESCRIPTIONS`, from :mod:`offload.loader.uapi_types`) plus the BPF UAPI enums that say
what this device offers - ``enum bpf_func_id`` lists the helpers it implements,
``enum bpf_map_type`` and ``enum bpf_prog_type`` the map and program types it takes - so
``bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_fib_lookup)`` asks the device what a
program on a kernel asks the kernel. The bytes are real BTF, read back by the loader's own
parser; their SHA-256 is the identity a program records of what it was resolved against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from ..caps.capabilities import BTF_DESCRIPTIONS, DEFAULT_BTF, Capabilities
from ..caps.profiles import ProfileError
from ..helpers.prototypes import PROTOTYPES
from ..uapi import MapType, ProgType
from .btf import Btf, parse_btf
from .btf_decl import Decl, Enum, emit_btf
from .btf_encode import encode_btf
from .uapi_types import BASE, CURRENT, LINUX_4_19

#: The declarations of each description a profile's ``btf`` may name (caps lists the names).
DESCRIPTIONS: dict[str, tuple[Decl, ...]] = dict(zip(BTF_DESCRIPTIONS, (CURRENT, LINUX_4_19),
                                                     strict=True))
DEFAULT_DESCRIPTION = DEFAULT_BTF


@dataclass(frozen=True, slots=True)
class DeviceBtf:
    """The BTF of one device: ``name`` of its description, the encoded bytes, parsed back."""

    name: str
    data: bytes = field(repr=False)
    btf: Btf = field(repr=False, compare=False)

    @property
    def digest(self) -> str:
        """SHA-256 of the bytes, in hex: two devices with equal digests resolve alike."""
        return hashlib.sha256(self.data).hexdigest()

    def __str__(self) -> str:
        return f"{self.name} {self.digest[:12]}"


def helper_enum(helpers: Iterable[int]) -> Enum:
    """``enum bpf_func_id`` with the helpers offered (those this build can name)."""
    values = [("BPF_FUNC_unspec", 0)]
    for helper in sorted(helpers):
        proto = PROTOTYPES.get(helper)
        if proto is not None:
            values.append((f"BPF_FUNC_{proto.kernel_name.removeprefix('bpf_')}", helper))
    return Enum("bpf_func_id", tuple(values))


def offered_enums(caps: Capabilities) -> tuple[Enum, ...]:
    maps = [("BPF_MAP_TYPE_UNSPEC", 0)] + [(f"BPF_MAP_TYPE_{t.name}", int(t))
                                           for t in sorted(caps.map_types)
                                           if t != MapType.UNSPEC]
    progs = [("BPF_PROG_TYPE_UNSPEC", 0)] + [(f"BPF_PROG_TYPE_{t.name}", int(t))
                                             for t in sorted(caps.prog_types)
                                             if t != ProgType.UNSPEC]
    return (helper_enum(caps.helpers), Enum("bpf_map_type", tuple(maps)),
            Enum("bpf_prog_type", tuple(progs)))


def device_btf(caps: Capabilities) -> DeviceBtf:
    """The BTF a device with ``caps`` describes itself with (built once per distinct input)."""
    return _build(caps.btf, frozenset(caps.helpers), frozenset(caps.map_types),
                  frozenset(caps.prog_types))


@lru_cache(maxsize=32)
def _build(name: str, helpers: frozenset[int], map_types: frozenset[MapType],
           prog_types: frozenset[ProgType]) -> DeviceBtf:
    decls = DESCRIPTIONS.get(name)
    if decls is None:
        raise ProfileError(f"there is no device BTF description {name!r}; known: "
                           f"{', '.join(DESCRIPTIONS)}.")
    caps = Capabilities(name="", helpers=helpers, map_types=map_types, prog_types=prog_types)
    data = encode_btf(emit_btf((*decls, *offered_enums(caps)), order=BASE))
    return DeviceBtf(name, data, parse_btf(data))


__all__ = ["DEFAULT_DESCRIPTION", "DESCRIPTIONS", "DeviceBtf", "device_btf", "helper_enum"]
