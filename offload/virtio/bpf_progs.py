"""Program, XDP and capability commands of the VIRTIO_NET_CTRL_BPF class.

PROG_LOAD carries the original bytecode plus relocation records (:class:`MapRef`) that bind
each ``lddw`` map reference to a device handle, so the device patches immediates itself and
never trusts a guest file descriptor. CAPS reports the device's :class:`~offload.caps.
Capabilities` so the guest can refuse early and a migration planner can compare devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Self

from ..caps.capabilities import Capabilities, Limits
from ..isa.opcodes import PseudoSrc
from ..uapi import MapType, ProgType
from .ctrl import BpfCommand, HandleRequest, Request, Response
from .wire import (
    MAX_DEVICE_NAME,
    MAX_HELPERS,
    MAX_INSNS,
    MAX_LICENSE_SIZE,
    CtrlEncodeError,
    Reader,
    Writer,
)

INSN_SIZE = 8
MAP_REF_SIZE = 16
CAPS_ABI_VERSION = 2
CAPS_CHECK_XDP_ACTION = 1  # CAPS flags


@dataclass(frozen=True, slots=True)
class MapRef:
    """The ``lddw`` at ``slot`` refers to map ``handle`` (MAP_FD) or into its value (MAP_VALUE)."""

    slot: int
    handle: int
    kind: int = PseudoSrc.MAP_FD
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ProgLoadRequest(Request):
    """BPF_PROG_LOAD: bytecode, map bindings, license and the verifier-log request."""

    COMMAND = BpfCommand.PROG_LOAD

    prog_type: int
    insns: bytes
    license: str
    map_refs: tuple[MapRef, ...] = ()
    name: str = ""
    expected_attach_type: int = 0
    prog_flags: int = 0
    log_level: int = 0
    log_size: int = 0

    def _encode_body(self, w: Writer) -> None:
        what = "PROG_LOAD request"
        if len(self.insns) % INSN_SIZE or not 0 < len(self.insns) <= MAX_INSNS * INSN_SIZE:
            raise CtrlEncodeError(what, "insn_cnt", f"{len(self.insns)} bytes of bytecode is "
                                  f"not 1 to {MAX_INSNS} instructions of {INSN_SIZE} bytes")
        license = self.license.encode()
        if len(license) > MAX_LICENSE_SIZE or b"\0" in license or not self.license.isascii():
            raise CtrlEncodeError(what, "license", f"{self.license!r} is not ASCII text of at "
                                  f"most {MAX_LICENSE_SIZE} bytes")
        w.u32("prog_type", self.prog_type)
        w.u32("expected_attach_type", self.expected_attach_type)
        w.u32("prog_flags", self.prog_flags)
        w.u32("log_level", self.log_level)
        w.u32("log_size", self.log_size)
        w.u32("insn_cnt", len(self.insns) // INSN_SIZE)
        w.u32("map_ref_cnt", len(self.map_refs))
        w.u16("license_len", len(license))
        w.u16("reserved", 0)
        w.name("name", self.name)
        w.raw("insns", self.insns)
        if len({ref.slot for ref in self.map_refs}) != len(self.map_refs):
            raise CtrlEncodeError(what, "map_refs", "two records bind the same instruction slot")
        for i, ref in enumerate(self.map_refs):
            if ref.kind not in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
                raise CtrlEncodeError(what, f"map_refs[{i}].kind", f"{ref.kind} is neither "
                                      "MAP_FD (1) nor MAP_VALUE (2)")
            if ref.slot >= len(self.insns) // INSN_SIZE:
                raise CtrlEncodeError(what, f"map_refs[{i}].slot", f"{ref.slot} is past the "
                                      "last instruction")
            w.u32(f"map_refs[{i}].slot", ref.slot)
            w.u32(f"map_refs[{i}].handle", ref.handle)
            w.u8(f"map_refs[{i}].kind", ref.kind)
            w.raw(f"map_refs[{i}].reserved", b"\0\0\0")
            w.u32(f"map_refs[{i}].offset", ref.offset)
        w.raw("license", license)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        prog_type, attach_type = r.u32("prog_type"), r.u32("expected_attach_type")
        prog_flags, log_level, log_size = r.u32("prog_flags"), r.u32("log_level"), r.u32("log_size")
        insn_cnt = r.length("insn_cnt", MAX_INSNS)
        if insn_cnt == 0:
            raise r.error("insn_cnt", "a program has at least one instruction")
        ref_cnt = r.length("map_ref_cnt", insn_cnt)
        license_len = r.u16("license_len")
        if license_len > MAX_LICENSE_SIZE:
            raise r.error("license_len", f"{license_len} exceeds the limit of {MAX_LICENSE_SIZE}")
        r.zero("reserved", 2)
        name = r.name("name")
        insns = r.raw("insns", insn_cnt * INSN_SIZE)
        if ref_cnt * MAP_REF_SIZE > r.remaining:
            raise r.error("map_ref_cnt", f"{ref_cnt} records announced, {r.remaining} bytes left")
        refs: list[MapRef] = []
        seen: set[int] = set()
        for i in range(ref_cnt):
            slot, handle, kind = r.u32(f"map_refs[{i}].slot"), r.u32(f"map_refs[{i}].handle"), \
                r.u8(f"map_refs[{i}].kind")
            r.zero(f"map_refs[{i}].reserved", 3)
            offset = r.u32(f"map_refs[{i}].offset")
            if kind not in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
                raise r.error(f"map_refs[{i}].kind", f"{kind} is neither MAP_FD (1) nor "
                              "MAP_VALUE (2)")
            if slot >= insn_cnt:
                raise r.error(f"map_refs[{i}].slot", f"{slot} is past the last instruction "
                              f"({insn_cnt - 1})")
            if slot in seen:
                raise r.error(f"map_refs[{i}].slot", f"slot {slot} is bound twice")
            seen.add(slot)
            refs.append(MapRef(slot, handle, PseudoSrc(kind), offset))
        license = r.text("license", license_len)
        if "\0" in license or not license.isascii():
            raise r.error("license", "a license is ASCII text without NUL bytes")
        return cls(prog_type, insns, license, tuple(refs), name, attach_type, prog_flags,
                   log_level, log_size)


@dataclass(frozen=True, slots=True)
class ProgLoadResponse(Response):
    """The program's handle and how many instructions the verifier processed; the log rides
    in the result header (tail kept when it does not fit)."""

    COMMAND = BpfCommand.PROG_LOAD

    handle: int = 0
    verified_insns: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        w.u32("verified_insns", self.verified_insns)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        return cls(status, log, log_true_size, r.u32("handle"), r.u32("verified_insns"))


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

    prog_handle: int
    flags: int = 0
    expected_handle: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("prog_handle", self.prog_handle)
        w.u32("flags", self.flags)
        w.u32("expected_handle", self.expected_handle)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        return cls(r.u32("prog_handle"), r.u32("flags"), r.u32("expected_handle"))


@dataclass(frozen=True, slots=True)
class XdpAttachResponse(Response):
    COMMAND = BpfCommand.XDP_ATTACH


@dataclass(frozen=True, slots=True)
class XdpDetachRequest(Request):
    """Detach the rx-path program (only if it is ``expected_handle`` when that is non-zero)."""

    COMMAND = BpfCommand.XDP_DETACH

    flags: int = 0
    expected_handle: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("flags", self.flags)
        w.u32("expected_handle", self.expected_handle)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        return cls(r.u32("flags"), r.u32("expected_handle"))


@dataclass(frozen=True, slots=True)
class XdpDetachResponse(Response):
    COMMAND = BpfCommand.XDP_DETACH


@dataclass(frozen=True, slots=True)
class CapsRequest(Request):
    """Ask what the device accepts; the driver sends it right after DRIVER_OK."""

    COMMAND = BpfCommand.CAPS

    def _encode_body(self, w: Writer) -> None:
        pass

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        return cls()


_LIMIT_FIELDS = tuple(f.name for f in fields(Limits))


def _bitmap(w: Writer, name: str, values: frozenset[int]) -> None:
    bits = 0
    for v in values:
        if not 0 <= v < 64:
            raise CtrlEncodeError("CAPS response", name, f"type {v} does not fit the 64-bit map")
        bits |= 1 << v
    w.u64(name, bits)


def _unbitmap(bits: int) -> frozenset[int]:
    return frozenset(i for i in range(64) if bits >> i & 1)


@dataclass(frozen=True, slots=True)
class CapsResponse(Response):
    """The device's Capabilities and the largest request it accepts on the control queue."""

    COMMAND = BpfCommand.CAPS

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

    def _encode_body(self, w: Writer) -> None:
        w.u16("abi_version", CAPS_ABI_VERSION)
        w.u16("flags", CAPS_CHECK_XDP_ACTION if self.check_xdp_action else 0)
        w.u32("isa_version", self.isa_version)
        w.u32("max_request", self.max_request)
        _bitmap(w, "map_types", self.map_types)
        _bitmap(w, "prog_types", self.prog_types)
        for name in _LIMIT_FIELDS:
            w.u32(f"limits.{name}", getattr(self.limits, name))
        w.u64("memory", self.memory)
        if len(self.helpers) > MAX_HELPERS:
            raise CtrlEncodeError("CAPS response", "helper_cnt", f"{len(self.helpers)} helpers "
                                  f"exceed the limit of {MAX_HELPERS}")
        w.u32("helper_cnt", len(self.helpers))
        for helper in sorted(self.helpers):
            w.u32("helpers", helper)
        name = self.name.encode()
        w.u16("name_len", len(name))
        w.raw("name", name, MAX_DEVICE_NAME)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        abi = r.u16("abi_version")
        if abi != CAPS_ABI_VERSION:
            raise r.error("abi_version", f"version {abi} is not the supported "
                          f"{CAPS_ABI_VERSION}")
        flags = r.u16("flags")
        if flags & ~CAPS_CHECK_XDP_ACTION:
            raise r.error("flags", f"unknown flags {flags:#x}")
        isa_version, max_request = r.u32("isa_version"), r.u32("max_request")
        map_types, prog_types = _unbitmap(r.u64("map_types")), _unbitmap(r.u64("prog_types"))
        limits = Limits(**{name: r.u32(f"limits.{name}") for name in _LIMIT_FIELDS})
        memory = r.u64("memory")
        count = r.length("helper_cnt", MAX_HELPERS)
        helpers = [r.u32("helpers") for _ in range(count)]
        if helpers != sorted(set(helpers)):
            raise r.error("helpers", "helper ids are listed once each, in ascending order")
        name_len = r.u16("name_len")
        if name_len > MAX_DEVICE_NAME:
            raise r.error("name_len", f"{name_len} exceeds the limit of {MAX_DEVICE_NAME}")
        return cls(status, log, log_true_size, r.text("name", name_len), isa_version,
                   map_types, prog_types, frozenset(helpers), limits,
                   bool(flags & CAPS_CHECK_XDP_ACTION), max_request, memory)
