"""What the host kernel accepts for XDP, probed once into a ``Capabilities`` profile.

Like libbpf's ``libbpf_probe_bpf_*`` and cilium/ebpf's ``features``, each question is a tiny
object the kernel either takes or refuses:

- helpers: an XDP program that calls the helper with whatever registers hold. Its arguments
  are usually wrong, so the verifier mostly rejects it; what matters is *why*. "invalid func"
  (id beyond ``__BPF_FUNC_MAX_ID``), "program of this type cannot use helper", "might sleep
  in a non-sleepable prog" (XDP never sleeps) and, on older kernels, "unknown func" mean
  unavailable; any other outcome means the kernel knows the helper and lets XDP call it.
  The log also names the helper (``call bpf_xdp_adjust_head#44``).
- map types: create a one-element map with sizes that type requires, then load an XDP program
  that references it. Local-storage types need BTF, so a minimal BTF (one ``int``) is loaded.
- ISA version: XDP programs using each version's instructions (RFC 9669 conformance groups).
- program types: ``r0 = 0; exit`` of each type (with the attach type some types require).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import platform
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ...caps.capabilities import Capabilities
from ...caps.profiles import HOST_KERNEL
from ...errors import ErrnoError
from ...isa.asm import assemble
from ...isa.instruction import Instruction
from ...isa.opcodes import LDDW, InsnClass, JmpOp, PseudoSrc
from ...maps.spec import MapSpec
from ...uapi import AttachType, MapFlags, MapType, ProgFlags, ProgType
from .attr import BtfLoadAttr
from .availability import kernel_available
from .handle import KernelHandle
from .maps import KernelMap
from .programs import KernelVerifierError, load_program
from .syscall import BpfCmd, bpf

#: Helper ids probed: far above today's ~212; the scan stops at the first "invalid func".
MAX_HELPER_ID = 1024
_UNAVAILABLE = ("invalid func", "unknown func", "program of this type cannot use helper",
                "might sleep in a non-sleepable prog", "cannot call GPL-restricted function")
_CALL_NAME = re.compile(r"call (\w+)#(\d+)")

#: Instructions of each ISA version, as XDP programs (each returns XDP_PASS).
ISA_FEATURES: dict[str, tuple[int, str]] = {
    "base": (1, "mov %r0, 2\nexit"),
    "jlt/jle/jslt/jsle": (2, "mov %r0, 2\njlt %r0, 3, +0\njsle %r0, 3, +0\nexit"),
    "jmp32": (3, "mov %r0, 2\njlt32 %r0, 3, +0\njeq32 %r0, %r0, +0\nexit"),
    "atomics": (3, "stdw [%r10-8], 0\nmov %r1, 1\nlock fetch add [%r10-8], %r1\n"
                   "lock or32 [%r10-8], %r1\nlock xchg [%r10-8], %r1\nmov %r0, 0\n"
                   "lock cmpxchg [%r10-8], %r1\nmov %r0, 2\nexit"),
    "sdiv/smod": (4, "mov %r0, 4\nsdiv %r0, -2\nsmod %r0, 3\nmov %r0, 2\nexit"),
    "movsx": (4, "mov %r1, 200\nmovsx864 %r0, %r1\nmov %r0, 2\nexit"),
    "ldxsx": (4, "stdw [%r10-8], 0\nldxsb %r0, [%r10-8]\nmov %r0, 2\nexit"),
    "bswap": (4, "mov %r0, 2\nbswap16 %r0\nmov %r0, 2\nexit"),
    "gotol": (4, "mov %r0, 2\nja32 +0\nexit"),
}

#: Program types whose load needs an attach target in kernel BTF; not probed.
_BTF_ATTACHED = (ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS)
_PROG_EXTRAS: dict[ProgType, tuple[int, int]] = {  # (expected_attach_type, prog_flags) at load
    ProgType.CGROUP_SOCK_ADDR: (AttachType.CGROUP_INET4_CONNECT, 0),
    ProgType.CGROUP_SOCKOPT: (AttachType.CGROUP_GETSOCKOPT, 0),
    ProgType.SK_LOOKUP: (AttachType.SK_LOOKUP, 0),
    ProgType.NETFILTER: (AttachType.NETFILTER, 0),
    ProgType.SYSCALL: (0, ProgFlags.SLEEPABLE),
}


@dataclass(frozen=True, slots=True)
class MapProbe:
    """How to create a one-element map of a type: sizes, flags and what else it needs."""

    key_size: int = 4
    value_size: int = 4
    max_entries: int = 1
    flags: int = 0
    inner: bool = False
    btf: bool = False
    map_extra: int = 0


_PAGE = 4096
MAP_PROBES: dict[MapType, MapProbe] = {
    MapType.STACK_TRACE: MapProbe(value_size=8),
    MapType.LPM_TRIE: MapProbe(key_size=8, flags=MapFlags.NO_PREALLOC),
    MapType.ARRAY_OF_MAPS: MapProbe(inner=True),
    MapType.HASH_OF_MAPS: MapProbe(inner=True),
    MapType.CGROUP_STORAGE: MapProbe(key_size=16, max_entries=0),
    MapType.PERCPU_CGROUP_STORAGE: MapProbe(key_size=16, max_entries=0),
    MapType.QUEUE: MapProbe(key_size=0),
    MapType.STACK: MapProbe(key_size=0),
    MapType.BLOOM_FILTER: MapProbe(key_size=0),
    MapType.RINGBUF: MapProbe(key_size=0, value_size=0, max_entries=_PAGE),
    MapType.USER_RINGBUF: MapProbe(key_size=0, value_size=0, max_entries=_PAGE),
    MapType.SK_STORAGE: MapProbe(max_entries=0, flags=MapFlags.NO_PREALLOC, btf=True),
    MapType.INODE_STORAGE: MapProbe(max_entries=0, flags=MapFlags.NO_PREALLOC, btf=True),
    MapType.TASK_STORAGE: MapProbe(max_entries=0, flags=MapFlags.NO_PREALLOC, btf=True),
    MapType.CGRP_STORAGE: MapProbe(max_entries=0, flags=MapFlags.NO_PREALLOC, btf=True),
    # An arena needs its user address (map_extra) before a program may use it.
    MapType.ARENA: MapProbe(key_size=0, value_size=0, flags=MapFlags.MMAPABLE,
                            map_extra=1 << 32),
}
#: Map types that cannot be created without kernel BTF of a struct_ops type; not probed.
_NOT_PROBED_MAPS = (MapType.UNSPEC, MapType.STRUCT_OPS)


@dataclass(frozen=True, slots=True)
class KernelProbe:
    """Everything the probe found; ``capabilities`` is the profile built from it.

    ``refusals`` tells, for each map and program type the kernel refused, the error it gave.
    """

    kernel_release: str
    machine: str
    isa_version: int
    isa_features: dict[str, bool]
    helpers: dict[int, str]
    helper_id_limit: int
    map_types: frozenset[MapType]
    prog_types: frozenset[ProgType]
    refusals: dict[str, str] = field(default_factory=dict)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            name=HOST_KERNEL, isa_version=self.isa_version, helpers=frozenset(self.helpers),
            map_types=self.map_types, prog_types=self.prog_types,
            description=(f"the host kernel, Linux {self.kernel_release} ({self.machine}), "
                         f"as probed through bpf()"))


class _Btf(KernelHandle):
    kind = "BTF object"


def minimal_btf() -> bytes:
    """A BTF blob with one type, ``int`` (id 1): enough for local-storage keys and values.

    Layout per Documentation/bpf/btf.rst: a 24-byte header (magic 0xeB9F, version 1), the type
    section (``struct btf_type`` with kind INT and its encoding word), the string section.
    """
    strings = b"\0int\0"
    kind_int = 1
    types = struct.pack("<III", 1, kind_int << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def _load_btf() -> _Btf:
    blob = minimal_btf()
    buf = ctypes.create_string_buffer(blob, len(blob))
    attr = BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(blob))
    return _Btf(bpf(BpfCmd.BTF_LOAD, attr, what="the probe's BTF"), "int")


def _xdp_referencing(fd: int) -> tuple[Instruction, ...]:
    """``r1 = map_fd(fd); r0 = XDP_PASS; exit``."""
    return (Instruction(LDDW, dst=1, src=PseudoSrc.MAP_FD, imm=fd),
            *assemble("mov %r0, 2\nexit"))


def probe_map_type(map_type: MapType) -> str | None:
    """None if the kernel creates this map type and lets XDP use it, else the refusal."""
    shape = MAP_PROBES.get(map_type, MapProbe())
    spec = MapSpec(f"probe_{map_type.value}", map_type, shape.key_size, shape.value_size,
                   shape.max_entries, shape.flags,
                   inner=MapSpec("probe_inner", MapType.ARRAY, 4, 4, 1) if shape.inner else None)
    btf = None
    try:
        extra: dict[str, int] = {"map_extra": shape.map_extra}
        if shape.btf:
            btf = _load_btf()
            extra |= {"btf_fd": btf.fd, "btf_key_type_id": 1, "btf_value_type_id": 1}
        with KernelMap.create(spec, **extra) as live:
            with load_program(_xdp_referencing(live.fd), name="probe_map"):
                return None
    except KernelVerifierError as exc:
        return f"XDP programs cannot use it: {exc.reason or exc}"
    except ErrnoError as exc:
        return str(exc)
    finally:
        if btf is not None:
            btf.close()


def probe_helper(helper_id: int) -> tuple[bool | None, str]:
    """(available to XDP, kernel's name); None for an id beyond the kernel's helper table."""
    call = Instruction(InsnClass.JMP | JmpOp.CALL, imm=helper_id)
    try:
        # Level 2 prints each instruction, so the helper's name shows even on success.
        with load_program((call, *assemble("exit")), name="probe_helper", log_level=2) as prog:
            log = prog.log
    except KernelVerifierError as exc:
        log = exc.log
        if not log:
            raise  # the refusal came before the verifier: the probe itself is broken here
    match = _CALL_NAME.search(log)
    name = match.group(1) if match else f"helper#{helper_id}"
    if "invalid func" in log:
        return None, name
    return not any(marker in log for marker in _UNAVAILABLE), name


def probe_isa() -> tuple[int, dict[str, bool]]:
    """The highest ISA version all of whose feature programs load, and each feature's result."""
    results: dict[str, bool] = {}
    for feature, (_, text) in ISA_FEATURES.items():
        try:
            with load_program(assemble(text), name="probe_isa"):
                results[feature] = True
        except KernelVerifierError:
            results[feature] = False
    version = 0
    for level in (1, 2, 3, 4):
        if all(ok for feature, ok in results.items() if ISA_FEATURES[feature][0] == level):
            version = level
        else:
            break
    return version, results


def probe_prog_type(prog_type: ProgType) -> str | None:
    """None if the kernel loads ``r0 = 0; exit`` of this type, else the refusal."""
    attach, flags = _PROG_EXTRAS.get(prog_type, (0, 0))
    try:
        with load_program(assemble("mov %r0, 0\nexit"), prog_type=prog_type, name="probe_prog",
                          expected_attach_type=attach, prog_flags=flags):
            return None
    except ErrnoError as exc:
        return str(exc)


def probe_kernel(progress: Callable[[str], None] | None = None) -> KernelProbe:
    """Probe now (uncached; about a few hundred loads). ``progress`` gets a word per phase."""
    usable, reason = kernel_available()
    if not usable:
        raise ErrnoError(errno.EPERM, f"cannot probe the host kernel: {reason}")
    note = progress or (lambda phase: None)
    refusals: dict[str, str] = {}
    note("isa")
    isa_version, isa_features = probe_isa()
    note("helpers")
    helpers: dict[int, str] = {}
    limit = MAX_HELPER_ID
    for helper_id in range(1, MAX_HELPER_ID):
        available, name = probe_helper(helper_id)
        if available is None:
            limit = helper_id
            break
        if available:
            helpers[helper_id] = name
    note("maps")
    map_types = set()
    for map_type in MapType:
        if map_type in _NOT_PROBED_MAPS:
            continue
        refusal = probe_map_type(map_type)
        if refusal is None:
            map_types.add(map_type)
        else:
            refusals[f"map {map_type.name}"] = refusal
    note("programs")
    prog_types = set()
    for prog_type in ProgType:
        if prog_type == ProgType.UNSPEC or prog_type in _BTF_ATTACHED:
            continue
        refusal = probe_prog_type(prog_type)
        if refusal is None:
            prog_types.add(prog_type)
        else:
            refusals[f"program {prog_type.name}"] = refusal
    return KernelProbe(kernel_release=platform.release(), machine=platform.machine(),
                       isa_version=isa_version, isa_features=isa_features, helpers=helpers,
                       helper_id_limit=limit, map_types=frozenset(map_types),
                       prog_types=frozenset(prog_types), refusals=refusals)


@functools.cache
def host_probe() -> KernelProbe:
    """The probe, run once per process."""
    return probe_kernel()


def host_capabilities() -> Capabilities:
    """The ``host-kernel`` Capabilities profile of this machine (probed once per process)."""
    return host_probe().capabilities
