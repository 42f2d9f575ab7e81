"""The built-in backend: this project's maps, verifier and engines.

Every load runs the verifier with the device's Capabilities, then prepares the program for the
chosen engine (``fast`` by default, ``reference`` on request). One :class:`Memory` serves the
whole device, so a tail call from one program to another and global data shared by both see
the same addresses. Objects referenced from maps (programs in a prog array, maps in a
map-in-map, programs on devmap entries) are kept alive by reference counts until the last
user lets go, as the kernel keeps them.
"""

from __future__ import annotations

import errno
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..caps.capabilities import Capabilities
from ..engine.errors import ExecutionError
from ..engine.fast import FastInterpreter
from ..engine.interpreter import Execution, Interpreter
from ..engine.memory import Memory, MemoryFault, Region, RegionKind
from ..errors import ErrnoError
from ..isa.instruction import Instruction
from ..isa.opcodes import PseudoSrc
from ..maps.base import Map
from ..maps.create import create_map
from ..maps.spec import MapSpec
from ..program import FuncInfo
from ..runtime.xdp import XDP_HELPERS, XDP_PROVENANCE
from ..runtime.xdp_env import REDIRECT_INTERFACE, XdpEnv, map_pointer
from ..uapi import ProgType
from ..verifier import verify
from ..verifier.verifier import Observer
from ..xdp import XDP_MD_SIZE
from ..xdp_buffer import XdpBuffer
from .base import LoadReport, XdpOutcome

StepHook = Callable[[int, list[int], Execution], None]
ENGINES: dict[str, type[Interpreter]] = {"fast": FastInterpreter, "reference": Interpreter}
#: The ports of the virtual switch a device sits on: devmap entries and redirects name them.
DEFAULT_INTERFACES = frozenset(range(1, 65))
#: The guest's receive queues an AF_XDP socket (an xskmap entry) may be bound to.
DEFAULT_RX_QUEUES = 64


@dataclass(eq=False)
class LoadedProgram:
    """A verified program on this backend (also the handle maps keep references on)."""

    id: int
    prog_type: int
    name: str
    engine: Interpreter
    expected_attach_type: int = 0
    refs: int = 1
    report: LoadReport = field(default_factory=LoadReport)
    freed: bool = False  # the guest's handle is closed; alive while a map's entry holds it


@dataclass(eq=False)
class LoadedMap:
    id: int
    map: Map
    refs: int = 1
    value_region: Region | None = None  # global data: the one value, mapped for lddw
    freed: bool = False  # the guest's handle is closed; alive while a map of maps holds it


class BuiltinBackend:
    """Maps, verifier and engine of this project behind the :class:`Backend` operations."""

    def __init__(self, caps: Capabilities, *, engine: str = "fast", ncpus: int = 1,
                 clock: Callable[[], int] = time.monotonic_ns, seed: int | None = None,
                 interfaces: frozenset[int] = DEFAULT_INTERFACES,
                 rx_queues: int = DEFAULT_RX_QUEUES) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: choose one of {sorted(ENGINES)}")
        self.name = f"builtin/{engine}"
        self.caps = caps
        self.engine = engine
        self.ncpus = ncpus
        self.clock = clock
        self.rng = random.Random(seed)
        self.memory = Memory()
        self.maps: dict[int, LoadedMap] = {}
        self.programs: dict[int, LoadedProgram] = {}
        self.trace: list[str] = []
        self.routes: Callable[[bytes], bytes | None] | None = None
        self.interfaces = interfaces
        self.rx_queues = rx_queues
        self._env: tuple[XdpEnv, Region, Region] | None = None
        self._maps_view: dict[int, Map] | None = None
        #: Map values mapped into memory, kept across runs (bounded, see XdpEnv.release).
        self._value_regions: dict[int, tuple[Region, Map]] = {}

    # -- resolver for maps holding objects (offload.maps.resolver.Resolver) ------------------
    def acquire_program(self, fd: int) -> LoadedProgram:
        program = self.programs.get(fd)
        if program is None or program.freed:  # a closed handle, as a closed fd
            if fd in self.maps:
                raise ErrnoError(errno.EINVAL, f"handle {fd} is a map, not a program")
            raise ErrnoError(errno.EBADF, f"handle {fd} names no program on this device")
        program.refs += 1
        return program

    def acquire_map(self, fd: int) -> LoadedMap:
        entry = self.maps.get(fd)
        if entry is None or entry.freed:  # a closed handle, as a closed fd
            if fd in self.programs:
                raise ErrnoError(errno.EINVAL, f"handle {fd} is a program, not a map")
            raise ErrnoError(errno.EBADF, f"handle {fd} names no map on this device")
        entry.refs += 1
        return entry

    def has_interface(self, ifindex: int) -> bool:
        return ifindex in self.interfaces

    def has_rx_queue(self, queue: int) -> bool:
        return 0 <= queue < self.rx_queues

    def release(self, handle: Any) -> None:
        handle.refs -= 1
        if handle.refs <= 0:
            self._destroy(handle)

    def _destroy(self, handle: Any) -> None:
        if isinstance(handle, LoadedMap):
            if self.maps.get(handle.id) is handle:
                del self.maps[handle.id]
                self._maps_view = None
            for key, (region, live) in list(self._value_regions.items()):
                if live is handle.map:
                    self.memory.remove_region(region)
                    del self._value_regions[key]
            if handle.value_region is not None:
                self.memory.remove_region(handle.value_region)
            handle.map.release()
        elif isinstance(handle, LoadedProgram) and self.programs.get(handle.id) is handle:
            del self.programs[handle.id]

    # -- maps ----------------------------------------------------------------------------------
    def create_map(self, handle: int, spec: MapSpec) -> Map:
        if spec.type not in self.caps.map_types:
            raise ErrnoError(errno.EOPNOTSUPP, f"map type {spec.type.name} is not supported by "
                                               f"device profile {self.caps.name}")
        if handle in self.maps or handle in self.programs:
            raise ErrnoError(errno.EEXIST, f"handle {handle} is already in use")
        live = create_map(spec, ncpus=self.ncpus, resolver=self, limits=self.caps.limits)
        self.maps[handle] = LoadedMap(handle, live)
        self._maps_view = None
        return live

    def free_map(self, handle: int) -> None:
        entry = self.maps.get(handle)
        if entry is None or entry.freed:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no map on this device")
        entry.freed = True
        self.release(entry)

    def map(self, handle: int) -> Map:
        entry = self.maps.get(handle)
        if entry is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no map on this device")
        return entry.map

    def _value_address(self, handle: int, offset: int) -> int:
        """Address of byte ``offset`` of a single-entry array's value (global data)."""
        entry = self.maps[handle]
        if entry.value_region is None:
            buffer = entry.map.value_ref(bytes(entry.map.key_size))
            if buffer is None:
                raise ErrnoError(errno.EINVAL, f"map '{entry.map.name}' has no value to point at")
            entry.value_region = self.memory.add_region(
                RegionKind.MAP_VALUE, buffer, writable=entry.map.program_writable,
                name=f"map '{entry.map.name}' value", owner=entry.map)
        return entry.value_region.address + offset

    def _map_owner(self, handle: int) -> Map:
        """The owner of a map's value regions, for the fast engine's checks."""
        entry = self.maps.get(handle)
        if entry is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no map on this device")
        return entry.map

    def _inner_owners(self, handle: int) -> _InnerMaps:
        template = self._map_owner(handle).spec.inner
        if template is None:
            raise ErrnoError(errno.EINVAL, f"map {handle} is not a map of maps")
        return _InnerMaps(template)

    def map_of_region(self, region: Region) -> int | None:
        """The handle of the map whose value ``region`` maps (global data or a value a
        lookup mapped), if any."""
        for handle, entry in self.maps.items():
            if entry.value_region is region:
                return handle
        for mapped, live in self._value_regions.values():
            if mapped is region:
                for handle, entry in self.maps.items():
                    if entry.map is live:
                        return handle
        return None

    # -- programs ------------------------------------------------------------------------------
    def load_program(self, handle: int, insns: Sequence[Instruction], *, prog_type: ProgType,
                     name: str, license: str, flags: int = 0,
                     observer: Observer | None = None,
                     expected_attach_type: int = 0,
                     functions: Sequence[FuncInfo] = ()) -> LoadReport:
        """Verify and prepare a program; ``observer`` sees every state the verifier
        processes (the soundness oracle records them); ``functions``: its BTF function
        records, whose global functions are verified once (``verify``)."""
        if handle in self.maps or handle in self.programs:
            raise ErrnoError(errno.EEXIST, f"handle {handle} is already in use")
        specs = {h: entry.map.spec for h, entry in self.maps.items()}
        stats = verify(insns, prog_type=prog_type, caps=self.caps, maps=specs,
                       observer=observer, license=license,
                       expected_attach_type=expected_attach_type, functions=functions)

        def resolve(insn: Instruction) -> int:
            if insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
                return map_pointer(insn.imm)
            if insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
                return self._value_address(insn.imm, insn.next_imm)
            raise ErrnoError(errno.EINVAL, f"lddw source {insn.src} is not supported")

        limits = self.caps.limits
        engine: Interpreter
        if self.engine == "fast":  # named arguments, so mypy checks the facts it is handed
            engine = FastInterpreter(insns, XDP_HELPERS, resolve_lddw=resolve,
                                     max_call_frames=limits.max_call_frames,
                                     max_insns=limits.max_insns, facts=stats.engine_facts(),
                                     map_owner=self._map_owner,
                                     inner_owners=self._inner_owners)
        else:
            engine = ENGINES[self.engine](insns, XDP_HELPERS, resolve_lddw=resolve,
                                          max_call_frames=limits.max_call_frames,
                                          max_insns=limits.max_insns,
                                          provenance=XDP_PROVENANCE)
        report = LoadReport(stats.insns_processed, stats.total_states, stats.peak_states)
        self.programs[handle] = LoadedProgram(handle, int(prog_type), name, engine,
                                              expected_attach_type, report=report)
        return report

    def unload_program(self, handle: int) -> None:
        program = self.programs.get(handle)
        if program is None or program.freed:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no program on this device")
        program.freed = True
        self.release(program)

    def holds_program(self, handle: int) -> bool:
        return handle in self.programs

    # -- the packet path -----------------------------------------------------------------------
    def run_xdp(self, handle: int, frame: bytes, *, meta: bytes = b"",
                ingress_ifindex: int = 1, rx_queue_index: int = 0, egress_ifindex: int = 0,
                on_step: StepHook | None = None) -> XdpOutcome:
        """Run a program on one frame; ``on_step`` traces the reference engine (see
        ``Interpreter.execute_traced``)."""
        program = self.programs.get(handle)
        if program is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no program on this device")
        buffer = XdpBuffer(frame, meta=meta)
        env, packet, context = self._frame_env()
        packet.buffer = buffer.buffer
        packet.start, packet.end = buffer.data_meta, buffer.data_end
        env.buffer = buffer
        env.maps = self._map_view()
        env.ingress_ifindex = ingress_ifindex
        env.rx_queue_index = rx_queue_index
        env.egress_ifindex = egress_ifindex
        env.cpu = rx_queue_index % self.ncpus
        env.routes = self.routes
        env.program_name = program.name
        env.redirect = None
        env.lock = None  # a run that faulted holding a lock held it only while it ran
        if env.trace:
            env.trace = []
        error = None
        retval = 0
        try:
            if on_step is None:
                retval = program.engine.run(self.memory, context.address, env=env)
            else:
                if type(program.engine) is not Interpreter:
                    raise ValueError("only the reference engine can be traced")
                retval = program.engine.execute_traced(self.memory, context.address, env=env,
                                                       on_step=on_step).r0
        except (ExecutionError, MemoryFault) as err:
            error = str(err)
        finally:
            packet.start = packet.end = 0  # no frame between runs
            env.release()
        if env.trace:
            self.trace.extend(env.trace)
        redirect = env.redirect
        if redirect is None:
            return XdpOutcome(retval, buffer.frame, buffer.metadata, None, None,
                              tuple(env.trace), error)
        interface = redirect.kind == REDIRECT_INTERFACE
        return XdpOutcome(retval, buffer.frame, buffer.metadata,
                          redirect.ifindex if interface else None,
                          redirect.program if interface else None, tuple(env.trace), error,
                          redirect)

    def _frame_env(self) -> tuple[XdpEnv, Region, Region]:
        """The helpers' environment with the packet and ``xdp_md`` regions, made once and
        refilled for every frame (runs on one device are sequential)."""
        if self._env is None:
            packet = self.memory.add_region(RegionKind.PACKET, bytearray(), name="packet")
            context = self.memory.add_region(RegionKind.CONTEXT, bytearray(XDP_MD_SIZE),
                                             writable=False, name="xdp_md")
            env = XdpEnv(self.memory, XdpBuffer(b""), packet, {}, clock=self.clock,
                         rng=self.rng, tail_target=_engine_of,
                         value_regions=self._value_regions)
            context.reader = env.read_context
            self._env = (env, packet, context)
        return self._env

    def _map_view(self) -> dict[int, Map]:
        """Handle -> live map, rebuilt only when maps come and go."""
        if self._maps_view is None:
            self._maps_view = {h: entry.map for h, entry in self.maps.items()}
        return self._maps_view


def _engine_of(target: Any) -> Interpreter:
    return target.engine


class _InnerMaps:
    """The maps whose values a program may reach through a map of maps: which inner maps it
    holds changes at run time, so the fast engine's check is by the shape every inner map
    must have (the outer map's template: type, key and value size); the reference engine's
    provenance tags know the very map."""

    __slots__ = ("shape",)

    def __init__(self, template: MapSpec) -> None:
        self.shape = (template.type, template.key_size, template.value_size)

    def __contains__(self, owner: object) -> bool:
        spec = owner.spec if isinstance(owner, Map) else None
        return spec is not None and (spec.type, spec.key_size, spec.value_size) == self.shape
