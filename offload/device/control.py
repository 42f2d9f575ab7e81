"""Executing control commands: one request in, one response out, never an exception.

This is the device side of every ``VIRTIO_NET_CTRL_BPF`` command (docs/virtio-offload.md):
handles are checked against the object table, programs are patched with the device's own map
handles (the guest's immediates are never trusted) and verified by the backend with the
device's Capabilities, and every refusal becomes a status errno with a message or a verifier
log excerpt in the response. Verifier rejections answer EACCES and malformed programs
EINVAL, as BPF_PROG_LOAD does.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Protocol

from ..backends.base import Backend
from ..caps.capabilities import Capabilities
from ..errors import ErrnoError, OffloadError
from ..isa.codec import DecodeError, decode
from ..isa.disasm import slot_positions
from ..isa.instruction import Instruction
from ..isa.opcodes import PseudoSrc
from ..isa.structure import StructureError, build_layout
from ..isa.versions import program_version
from ..loader.func_btf import read_function_btf
from ..maps.base import BatchError
from ..maps.create import SUPPORTED_MAP_TYPES, check_spec
from ..maps.memory import format_bytes, map_memory
from ..maps.spec import MapSpec
from ..program import FuncInfo
from ..uapi import MapType, ProgType, UpdateFlags, XdpAction, XdpFlags
from ..verifier import VerifierError
from ..virtio import bpf_maps as m
from ..virtio import bpf_progs as p
from ..virtio.ctrl import Request, Response
from ..virtio.messages import response_type
from .objects import MapObject, ObjectTable, ProgramObject


class Device(Protocol):
    """What the control commands read and change on a device (``device.Device`` has it)."""

    name: str
    caps: Capabilities
    backend: Backend
    objects: ObjectTable
    attached: int | None
    max_request: int

    @property
    def memory_used(self) -> int: ...

    def attach(self, handle: int | None) -> None: ...

    def release_program(self, program: ProgramObject) -> None: ...

    def collect_released(self) -> None: ...



def execute(device: Device, request: Request) -> Response:
    """Run one command on the device and describe the outcome."""
    handler = HANDLERS.get(type(request))
    try:
        if handler is None:
            raise ErrnoError(errno.EOPNOTSUPP, f"command {request.COMMAND.name} is not "
                                               "implemented by this device")
        return handler(device, request)
    except BatchError as err:
        return _failure(request, err.errno, err.detail, count=err.count)
    except ErrnoError as err:
        return _failure(request, err.errno, err.detail)
    except VerifierError as err:
        return _failure(request, err.errno, _verifier_log(err))
    except (DecodeError, StructureError) as err:
        return _failure(request, errno.EINVAL, str(err))
    except OffloadError as err:
        return _failure(request, errno.EINVAL, str(err))
    except Exception as err:  # noqa: BLE001 - a guest request never takes the device down
        return _failure(request, errno.EFAULT,
                        f"device bug while executing {request.COMMAND.name}: "
                        f"{type(err).__name__}: {err}")


def _failure(request: Request, code: int, message: str, *, count: int | None = None) -> Response:
    cls = response_type(request)
    if count is not None and "count" in cls.__dataclass_fields__:
        return cls(status=code, log=message, count=count)  # type: ignore[call-arg]
    return cls(status=code, log=message)


def _verifier_log(err: VerifierError) -> str:
    log = getattr(err, "log", None)
    text = str(log) if log is not None else ""
    return f"{text}\n{err}".strip() if text else str(err)


# -- maps ------------------------------------------------------------------------------------
def map_create(device: Device, req: m.MapCreateRequest) -> Response:
    try:
        map_type = MapType(req.map_type)
    except ValueError:
        raise ErrnoError(errno.EINVAL, f"map type {req.map_type} does not exist") from None
    inner = None
    if req.inner_map_handle:
        inner = device.objects.map(req.inner_map_handle).spec
    spec = MapSpec(req.name, map_type, req.key_size, req.value_size, req.max_entries,
                   req.map_flags, inner=inner, spin_lock_off=req.spin_lock_off)
    charge = _charge(device, spec)
    handle = device.objects.new_handle()
    device.backend.create_map(handle, spec)
    device.objects.maps[handle] = MapObject(handle, spec, req.inner_map_handle, memory=charge)
    return m.MapCreateResponse(handle=handle)


def _charge(device: Device, spec: MapSpec) -> int:
    """What the map costs the device's memory, refused with ENOMEM past its capacity before
    anything is allocated (the attributes are checked first, as the kernel checks them
    before it charges the map)."""
    ncpus = getattr(device.backend, "ncpus", 1)
    if spec.type in SUPPORTED_MAP_TYPES and spec.type in device.caps.map_types:
        check_spec(spec, ncpus=ncpus, limits=device.caps.limits)
    charge = map_memory(spec, ncpus)
    used, capacity = device.memory_used, device.caps.memory
    if used + charge > capacity:
        raise ErrnoError(errno.ENOMEM, f"map {spec.name!r} needs {format_bytes(charge)} of "
                                       f"device memory; {device.name} has "
                                       f"{format_bytes(capacity - used)} free of "
                                       f"{format_bytes(capacity)}.")
    return charge


def map_free(device: Device, req: m.MapFreeRequest) -> Response:
    """The guest closes its map: the map lives on while a loaded program uses it."""
    device.objects.map(req.handle).released = True
    device.collect_released()
    return m.MapFreeResponse()


def _live(device: Device, handle: int):  # noqa: ANN202 - the backend's map
    device.objects.map(handle)
    return device.backend.map(handle)


def map_freeze(device: Device, req: m.MapFreezeRequest) -> Response:
    _live(device, req.handle).freeze()
    return m.MapFreezeResponse()


def map_lookup(device: Device, req: m.MapLookupRequest) -> Response:
    """BPF_MAP_LOOKUP_ELEM; BPF_F_LOCK only on a map whose value holds a bpf_spin_lock (the
    device runs one program at a time, so the copy is the same as a plain one)."""
    if req.flags & ~UpdateFlags.F_LOCK:
        raise ErrnoError(errno.EINVAL, f"lookup flags {req.flags:#x} are not supported")
    if req.flags and device.objects.map(req.handle).spec.spin_lock_off is None:
        raise ErrnoError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the map value, "
                                       "which this map does not have.")
    return m.MapLookupResponse(value=_live(device, req.handle).lookup(req.key))


#: Maps whose entries hold other objects: inner maps, or programs (prog arrays, and the
#: programs devmap and cpumap entries run).
HOLDERS = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY,
                     MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP})


def _entries_changed(device: Device, handle: int) -> None:
    """An entry replaced or gone may have held the last reference on an inner map the guest
    had freed, or on a program it had unloaded: that goes now."""
    if device.objects.map(handle).spec.type in HOLDERS:
        device.collect_released()


def map_update(device: Device, req: m.MapUpdateRequest) -> Response:
    _live(device, req.handle).update(req.key, req.value, req.flags)
    _entries_changed(device, req.handle)
    return m.MapUpdateResponse()


def map_delete(device: Device, req: m.MapDeleteRequest) -> Response:
    _live(device, req.handle).delete(req.key)
    _entries_changed(device, req.handle)
    return m.MapDeleteResponse()


def map_get_next_key(device: Device, req: m.MapGetNextKeyRequest) -> Response:
    return m.MapGetNextKeyResponse(key=_live(device, req.handle).get_next_key(req.key))


def map_lookup_batch(device: Device, req: m.MapLookupBatchRequest) -> Response:
    live = _live(device, req.handle)
    batch = live.lookup_batch_columns(req.cursor or None, req.count, req.elem_flags)
    sizes = (live.key_size, live.uapi_value_size) if batch.count else (0, 0)
    return m.MapLookupBatchResponse(count=batch.count, key_size=sizes[0], value_size=sizes[1],
                                    keys=batch.keys, values=batch.values,
                                    cursor=batch.cursor or b"", done=batch.done)


def map_update_batch(device: Device, req: m.MapUpdateBatchRequest) -> Response:
    live = _live(device, req.handle)
    if req.count and (req.key_size != live.key_size or req.value_size != live.uapi_value_size):
        raise ErrnoError(errno.EINVAL, f"batch entries of {req.key_size}+{req.value_size} bytes "
                                       f"do not fit this map's {live.key_size}-byte keys and "
                                       f"{live.uapi_value_size}-byte values.")
    try:
        count = live.update_batch_columns(req.count, req.keys, req.values, req.elem_flags)
    finally:  # a batch that stopped part way may have replaced entries too
        _entries_changed(device, req.handle)
    return m.MapUpdateBatchResponse(count=count)


# -- programs ------------------------------------------------------------------------------
def prog_load(device: Device, req: p.ProgLoadRequest) -> Response:
    try:
        prog_type = ProgType(req.prog_type)
    except ValueError:
        raise ErrnoError(errno.EINVAL, f"program type {req.prog_type} does not exist") from None
    original = tuple(decode(req.insns))
    patched = list(original)
    index_of = {slot: i for i, slot in enumerate(slot_positions(patched))}
    refs = []
    patched_indices = set()
    for ref in req.map_refs:
        index = index_of.get(ref.slot)
        if index is None or not patched[index].is_lddw:
            raise ErrnoError(errno.EINVAL, f"map reference at slot {ref.slot} does not point "
                                           "at an lddw instruction")
        device.objects.map(ref.handle)
        if ref.kind == PseudoSrc.MAP_FD:
            patched[index] = patched[index].with_fields(src=PseudoSrc.MAP_FD, imm=ref.handle,
                                                        next_imm=0)
        elif ref.kind == PseudoSrc.MAP_VALUE:
            patched[index] = patched[index].with_fields(src=PseudoSrc.MAP_VALUE, imm=ref.handle,
                                                        next_imm=ref.offset)
        else:
            raise ErrnoError(errno.EINVAL, f"map reference kind {ref.kind} is not supported")
        refs.append((ref.slot, ref.handle, int(ref.kind), ref.offset))
        patched_indices.add(index)
    for index, insn in enumerate(patched):  # a subprogram's address (bpf_loop) is no map
        if insn.is_lddw and insn.src not in (PseudoSrc.IMM64, PseudoSrc.FUNC) \
                and index not in patched_indices:
            raise ErrnoError(errno.EINVAL, f"lddw at slot {slot_positions(patched)[index]} "
                                           "refers to a map but no map reference names it")
    functions = _functions(req, original)
    handle = device.objects.new_handle()
    report = device.backend.load_program(handle, patched, prog_type=prog_type,
                                         name=req.name, license=req.license,
                                         flags=req.prog_flags,
                                         expected_attach_type=req.expected_attach_type,
                                         functions=functions)
    device.objects.programs[handle] = ProgramObject(
        handle, req.name, prog_type, req.license, original, tuple(refs), req.prog_flags, report,
        expected_attach_type=req.expected_attach_type, isa=program_version(original),
        functions=functions)
    log = "\n".join(report.log) if req.log_level else ""
    return p.ProgLoadResponse(handle=handle, verified_insns=report.insns_processed, log=log)


def _functions(req: p.ProgLoadRequest, insns: tuple[Instruction, ...]) -> tuple[FuncInfo, ...]:
    """The functions the request's BTF and ``func_info`` describe, checked against the
    program's subprograms (the kernel's ``check_btf_func``); none without BTF, and every
    subprogram is then static."""
    if req.btf is None:
        return ()
    subprograms = build_layout(insns, rule=None, loops=False).subprograms
    return read_function_btf(req.btf, [(r.insn_off, r.type_id) for r in req.func_info],
                             subprograms)


def prog_unload(device: Device, req: p.ProgUnloadRequest) -> Response:
    program = device.objects.program(req.handle)
    program.unloaded = True
    if device.attached != req.handle:
        device.release_program(program)
    return p.ProgUnloadResponse()


def xdp_attach(device: Device, req: p.XdpAttachRequest) -> Response:
    if req.flags & ~XdpFlags.MASK:
        raise ErrnoError(errno.EINVAL, f"unknown XDP flags {req.flags & ~XdpFlags.MASK:#x}")
    mode = req.flags & XdpFlags.MODES
    if mode and mode != XdpFlags.HW_MODE:
        raise ErrnoError(errno.EOPNOTSUPP, "an offload device attaches in hardware mode "
                                           "(XDP_FLAGS_HW_MODE) only")
    program = device.objects.program(req.prog_handle)
    if program.prog_type != ProgType.XDP:
        raise ErrnoError(errno.EINVAL, f"program {program.handle} is not an XDP program")
    current = device.attached
    if req.flags & XdpFlags.UPDATE_IF_NOEXIST and current is not None:
        raise ErrnoError(errno.EBUSY, f"program {current} is already attached")
    if req.flags & XdpFlags.REPLACE and current != (req.expected_handle or None):
        raise ErrnoError(errno.EEXIST, f"the attached program is {current}, not "
                                       f"{req.expected_handle}")
    device.attach(program.handle)
    return p.XdpAttachResponse()


def xdp_detach(device: Device, req: p.XdpDetachRequest) -> Response:
    if req.flags & XdpFlags.REPLACE and device.attached != (req.expected_handle or None):
        raise ErrnoError(errno.EEXIST, f"the attached program is {device.attached}, not "
                                       f"{req.expected_handle}")
    if device.attached is None:
        raise ErrnoError(errno.ENOENT, "no program is attached")
    device.attach(None)
    return p.XdpDetachResponse()


#: BPF_PROG_TEST_RUN of XDP: a frame of ETH_HLEN up to PAGE_SIZE less the headroom (256)
#: and the skb_shared_info tailroom (320), as the kernel's bpf_prog_test_run_xdp takes it
ENOTSUPP = 524  # the kernel's, for a program type without a test run
TEST_RUN_MIN_DATA = 14
TEST_RUN_MAX_DATA = 4096 - 256 - 320
#: seconds of repeats a test run may take: the kernel stops a run a signal interrupts with
#: EINTR; the device stops one that would hold its control queue longer
TEST_RUN_BUDGET = 2.0


def prog_test_run(device: Device, req: p.ProgTestRunRequest) -> Response:
    """BPF_PROG_TEST_RUN: the program on ``data_in`` ``repeat`` times (0 counts as 1); the
    verdict is returned, never acted on. Errnos as the kernel's: EINVAL for flags, a frame
    shorter than an Ethernet header or longer than a page allows; ENOTSUPP for a program type
    without a test run; ENOSPC (with the frame cut) when ``data_size_out`` is too small."""
    if req.flags:
        raise ErrnoError(errno.EINVAL, f"test-run flags {req.flags:#x} are not supported")
    program = device.objects.program(req.prog_handle)
    if program.prog_type != ProgType.XDP:
        raise ErrnoError(ENOTSUPP, f"program {program.handle} ({program.prog_type.name}) has no test run")
    size = len(req.data_in)
    if not TEST_RUN_MIN_DATA <= size <= TEST_RUN_MAX_DATA:
        raise ErrnoError(errno.EINVAL, f"{size} bytes of data_in: an XDP test run takes "
                                       f"{TEST_RUN_MIN_DATA} to {TEST_RUN_MAX_DATA} bytes")
    repeat = max(req.repeat, 1)
    run = device.backend.run_xdp
    start = time.perf_counter_ns()
    deadline = start + int(TEST_RUN_BUDGET * 1e9)
    outcome = None
    for done in range(1, repeat + 1):
        outcome = run(program.handle, req.data_in)
        if done % 64 == 0 and time.perf_counter_ns() > deadline and done < repeat:
            raise ErrnoError(errno.EINTR, f"the test run was stopped after {done} of {repeat} "
                                          f"repeats ({TEST_RUN_BUDGET:g} s)")
    elapsed = time.perf_counter_ns() - start
    if outcome is None:  # repeat is at least 1: only a device bug gets here
        raise ErrnoError(errno.EFAULT, "the test run ran no repeat")
    retval = XdpAction.ABORTED if outcome.error is not None else outcome.retval & 0xFFFFFFFF
    data = outcome.data
    room = req.data_size_out or TEST_RUN_MAX_DATA
    response = p.ProgTestRunResponse(retval=int(retval),
                                     duration=min(elapsed // repeat, 0xFFFFFFFF),
                                     data_size_out=len(data), data_out=data[:room])
    if len(data) > room:
        return p.ProgTestRunResponse(
            status=errno.ENOSPC, log=f"the frame left with {len(data)} bytes; data_size_out "
                                     f"is {room}", retval=response.retval,
            duration=response.duration, data_size_out=len(data), data_out=data[:room])
    return response


def caps(device: Device, req: p.CapsRequest) -> Response:
    return p.CapsResponse.from_capabilities(device.caps, device.max_request)


HANDLERS: dict[type[Request], Callable[..., Response]] = {
    m.MapCreateRequest: map_create, m.MapFreeRequest: map_free, m.MapFreezeRequest: map_freeze,
    m.MapLookupRequest: map_lookup, m.MapUpdateRequest: map_update,
    m.MapDeleteRequest: map_delete, m.MapGetNextKeyRequest: map_get_next_key,
    m.MapLookupBatchRequest: map_lookup_batch, m.MapUpdateBatchRequest: map_update_batch,
    p.ProgLoadRequest: prog_load, p.ProgUnloadRequest: prog_unload,
    p.XdpAttachRequest: xdp_attach, p.XdpDetachRequest: xdp_detach, p.CapsRequest: caps,
    p.ProgTestRunRequest: prog_test_run,
}
