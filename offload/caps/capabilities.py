"""``Capabilities``: what a device accepts (ISA version, helpers, map and program types, limits,
virtio feature bits, the BTF its programs' CO-RE relocations are resolved against, the memory
its maps may take).

The verifier checks programs against them, a device offers feature bits from them, and the
migration planner compares a snapshot's needs with a target's. They are plain data so profiles
can live in data files and be compared field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..uapi import MapType, ProgType

#: Map memory of a device whose profile does not say (2 GiB, the full profile's).
DEFAULT_MEMORY = 2 << 30
#: Descriptions of a device's BTF a profile's ``btf`` may name (offload.loader.device_btf
#: holds their declarations), and the one a profile that does not say gets.
BTF_DESCRIPTIONS = ("uapi", "uapi-4.19")
DEFAULT_BTF = "uapi"


@dataclass(frozen=True, slots=True)
class Limits:
    """Numeric limits; the defaults are the Linux kernel's for a privileged loader."""

    max_insns: int = 1_000_000  # BPF_COMPLEXITY_LIMIT_INSNS: program size in slots
    max_processed_insns: int = 1_000_000  # verifier work limit
    max_states_per_insn: int = 64
    stack_size: int = 512  # MAX_BPF_STACK, per frame
    max_call_frames: int = 8  # MAX_CALL_FRAMES
    max_tail_calls: int = 33  # MAX_TAIL_CALL_CNT
    max_maps: int = 64  # maps one program may use (MAX_USED_MAPS)
    max_map_entries: int = 1 << 24
    max_key_size: int = 512
    max_value_size: int = 1 << 20


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One device's abilities. ``helpers`` holds helper ids, ``features`` virtio bits."""

    name: str
    isa_version: int = 4
    helpers: frozenset[int] = field(default=frozenset())
    map_types: frozenset[MapType] = field(default=frozenset())
    prog_types: frozenset[ProgType] = field(default=frozenset({ProgType.XDP}))
    limits: Limits = field(default_factory=Limits)
    features: int = 0
    check_xdp_action: bool = False  # refuse XDP programs whose R0 may be outside the actions
    description: str = ""
    #: the description of the types its programs see (one of BTF_DESCRIPTIONS), which CO-RE
    #: relocations are resolved against
    btf: str = DEFAULT_BTF
    #: bytes of map memory the device has (a NIC's on-board memory): every MAP_CREATE is
    #: charged what the map may hold (offload.maps.memory) and refused with ENOMEM past it
    memory: int = DEFAULT_MEMORY
