"""Program, XDP and capability commands of the VIRTIO_NET_CTRL_BPF class.

PROG_LOAD carries the original bytecode plus relocation records (:class:`MapRef`) that bind
each ``lddw`` map reference to a device handle, so the device patches immediates itself and
never trusts a guest file descriptor. A program whose object has BTF ``func_info`` also
carries, as BPF_PROG_LOAD's ``prog_btf_fd`` and ``func_info`` do, a BTF blob with its
functions' FUNC and FUNC_PROTO types and one :class:`FuncInfoRec` per function, so that the
device verifies global functions once, as Linux does; the records are checked here as far as
the bytes allow (order, first at 0, in the program), the rest where the device reads the BTF.
CAPS reports the device's :class:`~offload.caps.Capabilities` so the guest can refuse early
and a migration planner can compare devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..caps.capabilities import Capabilities, Limits
from ..isa.opcodes import PseudoSrc
from ..uapi import MapType, ProgType
from .ctrl import BpfCommand, HandleRequest, Request, Response
from .layout import (
    Bit,
    Bitmap,
    Bounded,
    Bytes,
    Flags,
    Group,
    Int,
    Length,
    Name,
    Records,
    Reserved,
    Text,
    Trailer,
    U32Set,
    Version,
    blob,
    u8,
    u32,
    u64,
)
from .wire import (
    MAX_DEVICE_NAME,
    MAX_HELPERS,
    MAX_INSNS,
    MAX_LICENSE_SIZE,
    MAX_PROG_BTF_SIZE,
    MAX_TEST_RUN_DATA,
)

INSN_SIZE = 8
MAP_REF_SIZE = 16
CAPS_ABI_VERSION = 2
CAPS_CHECK_XDP_ACTION = 1  # CAPS flags
#: sizeof(struct bpf_func_info), the only ``func_info_rec_size`` the device takes
FUNC_INFO_REC_SIZE = 8
PROG_LOAD_BTF = 1  # PROG_LOAD ext_flags: the BTF and func_info trailer follows the license


@dataclass(frozen=True, slots=True)
class MapRef:
    """The ``lddw`` at ``slot`` refers to map ``handle`` (MAP_FD) or into its value (MAP_VALUE)."""

    LAYOUT: ClassVar[tuple[Int | Reserved, ...]] = (
        u32("slot"), u32("handle"), u8("kind"), Reserved("reserved", 3), u32("offset"))

    slot: int
    handle: int
    kind: int = PseudoSrc.MAP_FD
    offset: int = 0


def _bytecode(insns: bytes) -> str | None:
    if len(insns) % INSN_SIZE or not 0 < len(insns) <= MAX_INSNS * INSN_SIZE:
        return (f"{len(insns)} bytes of bytecode is not 1 to {MAX_INSNS} instructions of "
                f"{INSN_SIZE} bytes")
    return None


def _license(license: str) -> str | None:
    data = license.encode()
    if len(data) > MAX_LICENSE_SIZE or b"\0" in data or not license.isascii():
        return f"{license!r} is not ASCII text of at most {MAX_LICENSE_SIZE} bytes"
    return None


def _license_read(license: str) -> str | None:
    if "\0" in license or not license.isascii():
        return "a license is ASCII text without NUL bytes"
    return None


def _distinct_slots(refs: tuple[MapRef, ...]) -> tuple[str, str] | None:
    if len({ref.slot for ref in refs}) != len(refs):
        return "map_refs", "two records bind the same instruction slot"
    return None


def _map_ref(index: int, ref: MapRef, counts: dict[str, int], seen: set[int],
             decoding: bool) -> tuple[MapRef, tuple[str, str] | None]:
    """A binding must name an instruction of the program, as MAP_FD or MAP_VALUE, once."""
    where = f"map_refs[{index}]"
    if ref.kind not in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
        return ref, (f"{where}.kind", f"{ref.kind} is neither MAP_FD (1) nor MAP_VALUE (2)")
    insn_cnt = counts["insns"]
    if ref.slot >= insn_cnt:
        last = f" ({insn_cnt - 1})" if decoding else ""
        return ref, (f"{where}.slot", f"{ref.slot} is past the last instruction{last}")
    if not decoding:
        return ref, None
    if ref.slot in seen:
        return ref, (f"{where}.slot", f"slot {ref.slot} is bound twice")
    seen.add(ref.slot)
    return replace(ref, kind=PseudoSrc(ref.kind)), None


@dataclass(frozen=True, slots=True)
class FuncInfoRec:
    """``struct bpf_func_info``: the function starting at instruction slot ``insn_off`` is
    the BTF FUNC ``type_id`` (its name, linkage and prototype)."""

    LAYOUT: ClassVar[tuple[Int | Reserved, ...]] = (u32("insn_off"), u32("type_id"))

    insn_off: int
    type_id: int


def _func_info_order(records: tuple[FuncInfoRec, ...]) -> tuple[str, str] | None:
    """The kernel's order: the first record at 0, each after the one before it."""
    for index, rec in enumerate(records):
        problem = _func_info_place(index, rec.insn_off, records[index - 1].insn_off
                                   if index else None)
        if problem is not None:
            return problem
    return None


def _func_info_place(index: int, insn_off: int, previous: int | None) -> tuple[str, str] | None:
    where = f"func_info[{index}].insn_off"
    if previous is None and insn_off:
        return where, f"nonzero insn_off {insn_off} for the first func info record"
    if previous is not None and insn_off <= previous:
        return where, (f"same or smaller insn offset ({insn_off}) than previous func info "
                       f"record ({previous})")
    return None


def _func_info(index: int, rec: FuncInfoRec, counts: dict[str, int], seen: set[int],
               decoding: bool) -> tuple[FuncInfoRec, tuple[str, str] | None]:
    """A record must name an instruction of the program and a type; decoding, ``seen``
    holds the record before it (the order is checked as the records are read)."""
    where = f"func_info[{index}]"
    insn_cnt = counts["insns"]
    if rec.insn_off >= insn_cnt:
        last = f" ({insn_cnt - 1})" if decoding else ""
        return rec, (f"{where}.insn_off", f"{rec.insn_off} is past the last instruction{last}")
    if not rec.type_id:
        return rec, (f"{where}.type_id", "invalid type id 0 in func info")
    if decoding:
        problem = _func_info_place(index, rec.insn_off, seen.pop() if seen else None)
        if problem is not None:
            return rec, problem
        seen.add(rec.insn_off)
    return rec, None


_NO_BTF = "a BTF blob has at least its header"
_NO_FUNC_INFO = "a BTF comes with a func_info record for each function"


def _btf_given(btf: bytes) -> str | None:
    return None if btf else _NO_BTF


def _func_info_given(records: tuple[FuncInfoRec, ...]) -> str | None:
    return None if records else _NO_FUNC_INFO


@dataclass(frozen=True, slots=True)
class ProgLoadRequest(Request):
    """BPF_PROG_LOAD: bytecode, map bindings, license and the verifier-log request; with
    ``btf`` (not None), the function BTF and its ``func_info`` records as a trailer that
    ``ext_flags`` announces (a request without them has the bytes it always had)."""

    COMMAND = BpfCommand.PROG_LOAD
    LAYOUT = (u32("prog_type"), u32("expected_attach_type"), u32("prog_flags"),
              u32("log_level"), u32("log_size"),
              Length("insns", "insn_cnt", limit=MAX_INSNS, unit=INSN_SIZE, lo=1,
                     too_small="a program has at least one instruction", check=_bytecode),
              Length("map_refs", "map_ref_cnt", limit_of="insns"),
              Length("license", "license_len", size=2, limit=MAX_LICENSE_SIZE),
              Flags("ext_flags", 2, (Bit(PROG_LOAD_BTF, "btf", present="BTF"),)),
              Name("name"), Bytes("insns"),
              Records("map_refs", MapRef, MapRef.LAYOUT, MAP_REF_SIZE, _distinct_slots, _map_ref),
              Text("license", check=_license, valid=_license_read),
              Trailer("btf", (
                  Length("btf", "btf_len", limit=MAX_PROG_BTF_SIZE, lo=1,
                         too_small=_NO_BTF, check=_btf_given),
                  Bounded("func_info_rec_size", FUNC_INFO_REC_SIZE, FUNC_INFO_REC_SIZE,
                          f"invalid func info rec size (struct bpf_func_info is "
                          f"{FUNC_INFO_REC_SIZE} bytes)"),
                  Length("func_info", "func_info_cnt", limit_of="insns", lo=1,
                         too_small=_NO_FUNC_INFO, check=_func_info_given),
                  Bytes("btf", MAX_PROG_BTF_SIZE),
                  Records("func_info", FuncInfoRec, FuncInfoRec.LAYOUT, FUNC_INFO_REC_SIZE,
                          _func_info_order, _func_info))))

    prog_type: int
    insns: bytes
    license: str
    map_refs: tuple[MapRef, ...] = ()
    name: str = ""
    expected_attach_type: int = 0
    prog_flags: int = 0
    log_level: int = 0
    log_size: int = 0
    btf: bytes | None = None
    func_info: tuple[FuncInfoRec, ...] = ()
    func_info_rec_size: int = FUNC_INFO_REC_SIZE


@dataclass(frozen=True, slots=True)
class ProgLoadResponse(Response):
    """The program's handle and how many instructions the verifier processed; the log rides
    in the result header (tail kept when it does not fit)."""

    COMMAND = BpfCommand.PROG_LOAD
    LAYOUT = (u32("handle"), u32("verified_insns"))

    handle: int = 0
    verified_insns: int = 0


@dataclass(frozen=True, slots=True)
class ProgUnloadRequest(HandleRequest):
    """Drop the guest's reference to a program (close of the program fd)."""

    COMMAND = BpfCommand.PROG_UNLOAD


@dataclass(frozen=True, slots=True)
class ProgUnloadResponse(Response):
    COMMAND = BpfCommand.PROG_UNLOAD


@dataclass(frozen=True, slots=True)
class XdpAttachRequest(Request):
    """Attach a program to the device's rx path; ``flags`` are XDP_FLAGS_* of the uAPI
    (XDP_FLAGS_UPDATE_IF_NOEXIST, XDP_FLAGS_REPLACE with ``expected_handle``)."""

    COMMAND = BpfCommand.XDP_ATTACH
    LAYOUT = (u32("prog_handle"), u32("flags"), u32("expected_handle"))

    prog_handle: int
    flags: int = 0
    expected_handle: int = 0


@dataclass(frozen=True, slots=True)
class XdpAttachResponse(Response):
    COMMAND = BpfCommand.XDP_ATTACH


@dataclass(frozen=True, slots=True)
class XdpDetachRequest(Request):
    """Detach the rx-path program (only if it is ``expected_handle`` when that is non-zero)."""

    COMMAND = BpfCommand.XDP_DETACH
    LAYOUT = (u32("flags"), u32("expected_handle"))

    flags: int = 0
    expected_handle: int = 0


@dataclass(frozen=True, slots=True)
class XdpDetachResponse(Response):
    COMMAND = BpfCommand.XDP_DETACH


@dataclass(frozen=True, slots=True)
class ProgTestRunRequest(Request):
    """BPF_PROG_TEST_RUN: run a loaded program ``repeat`` times on ``data_in`` without acting
    on its verdict (maps may change, as in the kernel). ``data_size_out`` is the room the
    guest has for the frame as it leaves (0: as much as the reply buffer holds); ``flags`` as
    the uAPI's BPF_F_TEST_* (none is supported)."""

    COMMAND = BpfCommand.PROG_TEST_RUN
    LAYOUT = (u32("prog_handle"), u32("repeat"), u32("flags"), u32("data_size_out"),
              *blob("data_in", MAX_TEST_RUN_DATA))

    prog_handle: int
    data_in: bytes
    repeat: int = 1
    flags: int = 0
    data_size_out: int = 0


@dataclass(frozen=True, slots=True)
class ProgTestRunResponse(Response):
    """The last run's return value, the mean nanoseconds per run, the frame as it left (cut
    to ``data_size_out`` with ENOSPC when it did not fit) and its true size."""

    COMMAND = BpfCommand.PROG_TEST_RUN
    LAYOUT = (u32("retval"), u32("duration"), u32("data_size_out"),
              *blob("data_out", MAX_TEST_RUN_DATA))

    retval: int = 0
    duration: int = 0
    data_size_out: int = 0
    data_out: bytes = b""


@dataclass(frozen=True, slots=True)
class CapsRequest(Request):
    """Ask what the device accepts; the driver sends it right after DRIVER_OK."""

    COMMAND = BpfCommand.CAPS


@dataclass(frozen=True, slots=True)
class CapsResponse(Response):
    """The device's Capabilities and the largest request it accepts on the control queue."""

    COMMAND = BpfCommand.CAPS
    LAYOUT = (Version("abi_version", 2, CAPS_ABI_VERSION),
              Flags("flags", 2, (Bit(CAPS_CHECK_XDP_ACTION, "check_xdp_action"),)),
              u32("isa_version"), u32("max_request"), Bitmap("map_types"), Bitmap("prog_types"),
              Group("limits", Limits), u64("memory"),
              Length("helpers", "helper_cnt", limit=MAX_HELPERS, over="helpers"),
              U32Set("helpers", "helpers", "helper ids are listed once each, in ascending order"),
              Length("name", "name_len", size=2, limit=MAX_DEVICE_NAME),
              Text("name", MAX_DEVICE_NAME))

    name: str = ""
    isa_version: int = 0
    map_types: frozenset[int] = frozenset()
    prog_types: frozenset[int] = frozenset()
    helpers: frozenset[int] = frozenset()
    limits: Limits = field(default_factory=Limits)
    check_xdp_action: bool = False
    max_request: int = 0
    memory: int = 0

    @classmethod
    def from_capabilities(cls, caps: Capabilities, max_request: int) -> CapsResponse:
        return cls(name=caps.name, isa_version=caps.isa_version,
                   map_types=frozenset(int(t) for t in caps.map_types),
                   prog_types=frozenset(int(t) for t in caps.prog_types),
                   helpers=frozenset(caps.helpers), limits=caps.limits,
                   check_xdp_action=caps.check_xdp_action, max_request=max_request,
                   memory=caps.memory)

    def to_capabilities(self, features: int = 0) -> Capabilities:
        """Capabilities as the guest sees them; unknown map or program types are dropped."""
        return Capabilities(
            name=self.name, isa_version=self.isa_version, helpers=self.helpers,
            map_types=frozenset(MapType(t) for t in self.map_types
                                if t in MapType._value2member_map_),
            prog_types=frozenset(ProgType(t) for t in self.prog_types
                                 if t in ProgType._value2member_map_),
            limits=self.limits, features=features, check_xdp_action=self.check_xdp_action,
            memory=self.memory)


