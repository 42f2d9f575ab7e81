"""The offload device: a virtio-net device whose control queue takes BPF commands and whose
receive path runs the attached XDP program.

The device side of the whole flow (docs/virtio-offload.md): it offers feature bits from its
Capabilities, pops chains from the control and transmit queues when the driver kicks
(:meth:`Device.service`), executes commands against its object table and backend, and runs
every frame that arrives from the wire (:meth:`Device.receive`) through the attached program:
PASS goes to the guest's receive queue, TX back out to the wire, REDIRECT to the devmap's
target (an interface: one of the device's ports, offload/device/interfaces.py, or the switch
beyond a device without ports), a CPU's worker queue (cpumap: the frame reaches the guest when the
workers run, :meth:`Device.run_workers`) or a guest receive queue's AF_XDP ring (xskmap),
DROP nowhere, ABORTED is counted. Records programs write to perf event arrays and ring
buffers wait in the maps' bounded streams until the device's reader takes them
(:meth:`Device.take_events`). A malformed chain marks the device
DEVICE_NEEDS_RESET (the transport logs why); nothing a guest sends raises out of here.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..backends.base import Backend, XdpOutcome
from ..caps.capabilities import Capabilities
from ..errors import ErrnoError
from ..maps.events import Event
from ..maps.fd_array import FdArrayMap
from ..maps.resolver import ProgramHandle
from ..runtime.xdp_env import REDIRECT_CPU, REDIRECT_INTERFACE, REDIRECT_XSK, Redirect
from ..uapi import MapType, XdpAction
from ..virtio.ctrl import CtrlClass, encode_status, parse_header
from ..virtio.device_queue import Chain
from ..virtio.features import device_offer
from ..virtio.memory import GuestMemory
from ..virtio.messages import decode_request
from ..virtio.netdev import CONTROLQ, NET_HDR_SIZE, RECEIVEQ, TRANSMITQ, NetConfig, NetHdr
from ..virtio.transport import Transport
from ..virtio.wire import CtrlDecodeError
from . import control
from .capture import FrameCapture
from .interfaces import Interface
from .objects import COUNTER_MASK, ActionCounters, ObjectTable, ProgramObject
from .sampler import FrameSampler

DEFAULT_MEMORY = 16 << 20
DEFAULT_QUEUE_SIZE = 256
MAX_REQUEST = 8 << 20
WIRE_BACKLOG = 4096


XSK_RING_SIZE = 2048  # frames an AF_XDP receive ring holds (libxsk's default ring size)
EVENT_BACKLOG = 1 << 16  # event records the device keeps for its reader beyond the maps
EVENT_BACKLOG_BYTES = 64 << 20  # ... and the bytes of data they may hold together


_VERDICTS = {action: action.name.lower() for action in XdpAction}


@dataclass(slots=True)
class PortCounters:
    """Frames seen at the device's edges."""

    rx_frames: int = 0  # from the wire
    rx_to_guest: int = 0
    rx_no_buffer: int = 0  # PASS, but the guest had posted no receive buffer
    rx_paused: int = 0  # dropped: a live migration had paused the receive path
    tx_from_guest: int = 0
    tx_to_wire: int = 0
    runtime_errors: int = 0  # faults during XDP runs (counted as aborted too)
    cpu_queued: int = 0  # redirected through a cpumap into a CPU's worker queue
    cpu_queue_full: int = 0  # ... and dropped: the queue held qsize frames already
    cpu_dropped: int = 0  # dropped by the cpumap entry's program (or its verdict)
    xsk_delivered: int = 0  # redirected through an xskmap to a guest receive queue
    xsk_ring_full: int = 0  # ... and dropped: the AF_XDP receive ring was full
    events_lost: int = 0  # event records the device's backlog had no room for
    redirect_errors: int = 0  # REDIRECT to an ifindex no port has, or to a port that is down
    devmap_dropped: int = 0  # dropped by the devmap entry's program on the way out

    def as_dict(self) -> dict[str, int]:
        """By name, as u64 values (``objects.COUNTER_MASK``)."""
        return {name: getattr(self, name) & COUNTER_MASK for name in self.__slots__}


@dataclass(slots=True)
class CpuQueue:
    """One CPU's worker queue: frames a cpumap sent it, and the entry's program."""

    frames: deque[tuple[bytes, ProgramHandle | None]]
    qsize: int


class Device:
    """One virtio-net offload device over ``memory`` (the guest's memory)."""

    def __init__(self, name: str, caps: Capabilities, backend: Backend, *,
                 memory: GuestMemory | None = None, queue_size: int = DEFAULT_QUEUE_SIZE,
                 mac: bytes = b"\x52\x54\x00\x12\x34\x56", ifindex: int = 1,
                 on_wire: Callable[[bytes], None] | None = None,
                 on_redirect: Callable[[int, bytes], None] | None = None) -> None:
        self.name = name
        self.caps = caps
        self.backend = backend
        self.memory = memory if memory is not None else GuestMemory(DEFAULT_MEMORY)
        self.transport = Transport(self.memory, device_offer(caps), [queue_size] * 3,
                                   config=NetConfig(mac).encode())
        self.ifindex = ifindex
        self.objects = ObjectTable()
        self.attached: int | None = None
        self.ports = PortCounters()
        self.max_request = MAX_REQUEST
        self.wire: deque[bytes] = deque(maxlen=WIRE_BACKLOG)
        self.redirected: deque[tuple[int, bytes]] = deque(maxlen=WIRE_BACKLOG)
        self._on_wire = on_wire or self.wire.append
        self._on_redirect = on_redirect or (lambda ifindex, frame:
                                            self.redirected.append((ifindex, frame)))
        self.paused = False  # live migration stops the receive path
        #: cpumap redirects wait here, per CPU, until the workers run (run_workers)
        self.cpu_queues: dict[int, CpuQueue] = {}
        #: AF_XDP receive rings of the guest, per receive queue (xskmap redirects)
        self.xsk_rings: dict[int, deque[bytes]] = {}
        #: event records taken out of the maps and not read yet (take_events)
        self.events: deque[Event] = deque()
        self._event_bytes = 0
        #: recent frames from the wire, kept for a restore's proof; off until sample() is called
        self.sampler: FrameSampler | None = None
        #: packet captures tapping the receive path and the wire (capture.py); none by default
        self.captures: list[FrameCapture] = []
        #: guests outside this process (vhost-user front-ends) by ifindex (.interfaces): the
        #: one at the device's own ifindex takes what PASS gives instead of the simulated
        #: driver's receive queue; the others are reached by REDIRECT or their own wires
        self.interfaces: dict[int, Interface] = {}

    # -- the driver kicked ---------------------------------------------------------------------
    def service(self) -> None:
        """Process everything the driver queued on the control and transmit queues."""
        self.transport.take_kicks()
        while (chain := self.transport.pop(CONTROLQ)) is not None:
            self._control(chain)
        while (chain := self.transport.pop(TRANSMITQ)) is not None:
            self._transmit(chain)

    def _control(self, chain: Chain) -> None:
        queue = self.transport.device_queue(CONTROLQ)
        assert queue is not None
        limit = chain.writable_len
        try:
            data = chain.read(self.memory, self.max_request + 64)
            klass, _ = parse_header(data)
            if klass != CtrlClass.BPF:
                reply = encode_status(errno.EOPNOTSUPP, f"control class {klass} is not "
                                                        "handled by this device", limit)
            else:
                request = decode_request(data)
                reply = control.execute(self, request).encode(limit)
        except CtrlDecodeError as err:
            reply = encode_status(errno.EINVAL, str(err), limit)
        written = chain.write(self.memory, reply)
        queue.push_used(chain.head, written)

    def _transmit(self, chain: Chain) -> None:
        queue = self.transport.device_queue(TRANSMITQ)
        assert queue is not None
        data = chain.read(self.memory, 1 << 16)
        queue.push_used(chain.head, 0)
        if len(data) < NET_HDR_SIZE:
            return
        self.ports.tx_from_guest += 1
        self._send(data[NET_HDR_SIZE:], sender="guest")

    def set_wire(self, on_wire: Callable[[bytes], None]) -> None:
        """Where frames leaving on the wire go from now on (a tunnel to another device)."""
        self._on_wire = on_wire

    # -- ports ---------------------------------------------------------------------------------
    def add_interface(self, interface: Interface) -> None:
        """A guest-facing port (offload/device/interfaces.py); its ifindex must be free."""
        if interface.ifindex in self.interfaces:
            raise ValueError(f"ifindex {interface.ifindex} is port "
                             f"{self.interfaces[interface.ifindex].name} already")
        self.interfaces[interface.ifindex] = interface

    def remove_interface(self, interface: Interface) -> None:
        if self.interfaces.get(interface.ifindex) is interface:
            del self.interfaces[interface.ifindex]

    def from_guest(self, frame: bytes, ifindex: int | None = None) -> None:
        """A frame the guest on port ``ifindex`` (the device's own by default) sent - a
        vhost-user front-end's transmit queue: out on that port's wire, or the device's."""
        self.ports.tx_from_guest += 1
        port = self.interfaces.get(self.ifindex if ifindex is None else ifindex)
        if port is not None:
            port.counters.tx_from_guest += 1
        self._send(frame, port, "guest")

    def _send(self, frame: bytes, port: Interface | None = None, sender: str = "tx") -> None:
        """Out on the wire; ``sender`` is ``tx`` (XDP_TX) or ``guest`` (what captures see)."""
        self.ports.tx_to_wire += 1
        for capture in self.captures:
            capture.left(frame, sender)
        if port is not None:
            port.counters.tx_to_wire += 1
            if port.wire is not None:
                port.wire(frame)
                return
        self._on_wire(frame)

    def _egress(self, program: ProgramHandle, frame: bytes, ingress: int,
                egress: int) -> bytes | None:
        """The devmap entry's program on the way out (the kernel's ``dev_map_bpf_prog_run``):
        it sees the frame's ingress interface and the egress one; XDP_PASS sends the frame
        on as the program left it, any other verdict drops it (TX and REDIRECT are invalid
        there and count as aborted)."""
        try:
            outcome = self.backend.run_xdp(program.id, frame, ingress_ifindex=ingress,
                                           egress_ifindex=egress)
        except ErrnoError:
            self.ports.devmap_dropped += 1
            return None
        action = outcome.action
        if action not in (XdpAction.PASS, XdpAction.DROP):
            action = XdpAction.ABORTED
        owner = self.objects.programs.get(program.id)
        if owner is not None:
            owner.counters.count(action, len(frame))
        if action != XdpAction.PASS:
            self.ports.devmap_dropped += 1
            return None
        return outcome.data

    def _redirect(self, ifindex: int, frame: bytes, program: ProgramHandle | None = None,
                  ingress: int | None = None) -> None:
        """REDIRECT to an interface: out of that port - into its guest's receive ring. A
        device without ports hands the frame to the switch beyond it (``on_redirect``).
        The devmap entry's program, if any, runs first."""
        if program is not None:
            egress = self._egress(program, frame, self.ifindex if ingress is None else ingress,
                                  ifindex)
            if egress is None:
                return
            frame = egress
        if not self.interfaces:
            self._on_redirect(ifindex, frame)
            return
        port = self.interfaces.get(ifindex)
        if port is None or not port.guest.connected:
            self.ports.redirect_errors += 1  # the kernel drops it: xdp_redirect_err
            return
        port.counters.redirected_in += 1
        self._to_guest(frame, port)

    # -- programs ------------------------------------------------------------------------------
    def sample(self, capacity: int) -> None:
        """Keep the last ``capacity`` frames received (0 turns sampling off and forgets them)."""
        self.sampler = FrameSampler(capacity) if capacity else None

    def attach(self, handle: int | None) -> None:
        previous = self.attached
        self.attached = handle
        if previous is not None and previous != handle:
            program = self.objects.programs.get(previous)
            if program is not None and program.unloaded:
                self.release_program(program)

    def release_program(self, program: ProgramObject) -> None:
        """The guest unloaded ``program`` and nothing attaches it: it goes, unless an entry
        of a map still holds it (then it goes with the last such entry)."""
        if not program.dropped:
            self.backend.unload_program(program.handle)
            program.dropped = True
        self.collect_released()

    def collect_released(self) -> None:
        """Free what the guest let go of once nothing holds it any more, as the kernel's
        references do. A program it unloaded lives while an entry of a prog array, devmap
        or cpumap holds it; a map it freed while a program uses it or an entry of a map of
        maps holds it - listed and charged until then. A prog array it freed drops its
        programs at once, in use or not, as the kernel clears one when its last user
        reference goes (``prog_array_map_clear``): that breaks the cycle of a program the
        array holds that tail-calls through it. Unread event records stay with the device
        for its reader."""
        while self._collect_programs() | self._collect_maps():
            pass  # what went may have held what is left

    def _collect_programs(self) -> bool:
        gone = [handle for handle, program in self.objects.programs.items()
                if program.dropped and not self.backend.holds_program(handle)]
        for handle in gone:
            del self.objects.programs[handle]
        return bool(gone)

    def _collect_maps(self) -> bool:
        changed = False
        for handle, entry in list(self.objects.maps.items()):
            if not entry.released:
                continue
            if not entry.dropped and entry.spec.type == MapType.PROG_ARRAY:
                live = self.backend.map(handle)  # (a kernel backend's: the kernel clears it)
                if isinstance(live, FdArrayMap) and len(live):
                    live.release()
                    changed = True
            if self.objects.map_in_use(handle):
                continue
            if not entry.dropped:
                self._collect_events_of(handle)
                self.backend.free_map(handle)
                entry.dropped = True
            if not self._backend_holds(handle):
                del self.objects.maps[handle]
                changed = True
        return changed

    def _backend_holds(self, handle: int) -> bool:
        try:
            self.backend.map(handle)
        except ErrnoError:
            return False
        return True

    @property
    def memory_used(self) -> int:
        """Bytes of map memory charged to the maps the device holds (offload.maps.memory)."""
        return sum(entry.memory for entry in self.objects.maps.values())

    def counters(self, handle: int) -> ActionCounters:
        return self.objects.programs[handle].counters

    def carry_counters(self, programs: Iterable[tuple[int, Mapping[str, int]]],
                       ports: Iterable[tuple[str, int]]) -> None:
        """Add another device's counts to this one's, as they arrive with its state (a live
        migration's FINAL, a restored snapshot): per program handle, counts by
        ``ActionCounters`` field; then the device-wide port totals by name (a name this
        device does not count is skipped: an older or newer source may count others). Each
        guest port's own counters stay with the port: they are that port's view, as a host's
        counters of a tap device stay on the host a VM leaves."""
        for handle, counts in programs:
            counters = self.objects.programs[handle].counters
            for name, value in counts.items():
                if name in ActionCounters.__slots__:
                    setattr(counters, name, (getattr(counters, name) + value) & COUNTER_MASK)
        for name, value in ports:
            if name in self.ports.__slots__:
                setattr(self.ports, name, (getattr(self.ports, name) + value) & COUNTER_MASK)

    # -- the receive path ----------------------------------------------------------------------
    def receive(self, frame: bytes, *, rx_queue_index: int = 0,
                ingress: int | None = None) -> XdpAction:
        """A frame arrives from the wire - the device's, or port ``ingress``'s own: run the
        attached program and act on its verdict (PASS and TX stay on the ingress port)."""
        self.ports.rx_frames += 1
        if self.sampler is not None:
            self.sampler.add(frame)
        ifindex = self.ifindex if ingress is None else ingress
        port = self.interfaces.get(ifindex)
        if port is not None and ingress is not None:
            port.counters.rx_from_wire += 1
        attached = self.attached
        if self.paused and attached is not None:
            # Mid-cut the program's state is moving: dropped rather than passed unfiltered
            # (a port filter's blocked datagrams would reach the guest otherwise).
            self.ports.rx_paused += 1
            for capture in self.captures:
                capture.arrived(frame, "paused")
            return XdpAction.DROP
        if attached is None:
            for capture in self.captures:
                capture.arrived(frame, "pass")
            self._to_guest(frame, port)
            return XdpAction.PASS
        program = self.objects.programs[attached]
        try:
            outcome = self.backend.run_xdp(program.handle, frame, ingress_ifindex=ifindex,
                                           rx_queue_index=rx_queue_index)
        except ErrnoError as err:
            outcome = XdpOutcome(0, frame, error=str(err))
        if outcome.error is not None:
            self.ports.runtime_errors += 1
            action = XdpAction.ABORTED
        elif outcome.retval == XdpAction.PASS:  # the common verdict, without an enum lookup
            action = XdpAction.PASS
        else:
            action = outcome.action
        program.counters.count(action, len(frame))
        for capture in self.captures:
            capture.arrived(frame, _VERDICTS[action])
        if action == XdpAction.PASS:
            self._to_guest(outcome.data, port)
        elif action == XdpAction.TX:
            self._send(outcome.data, port)
        elif action == XdpAction.REDIRECT:
            target = outcome.redirect_target
            kind = getattr(target, "kind", REDIRECT_INTERFACE)
            if kind == REDIRECT_CPU:
                self._to_cpu(target, outcome.data)
            elif kind == REDIRECT_XSK:
                self._to_xsk(target.ifindex, outcome.data)
            elif outcome.redirect_ifindex is not None:
                self._redirect(outcome.redirect_ifindex, outcome.data,
                               outcome.redirect_program, ifindex)
        return action

    # -- cpumap worker queues and AF_XDP rings -------------------------------------------------
    def _to_cpu(self, target: Redirect, frame: bytes) -> None:
        """Into the CPU's worker queue, or dropped when it holds qsize frames (the kernel's
        ptr_ring of the cpumap entry)."""
        queue = self.cpu_queues.get(target.ifindex)
        if queue is None:
            queue = self.cpu_queues[target.ifindex] = CpuQueue(deque(), target.qsize)
        queue.qsize = target.qsize
        if len(queue.frames) >= queue.qsize:
            self.ports.cpu_queue_full += 1
            return
        queue.frames.append((frame, target.program))
        self.ports.cpu_queued += 1

    def run_workers(self) -> int:
        """The CPUs' workers take their queues: each frame goes through the cpumap entry's
        program if it has one (XDP_PASS goes on, any other verdict drops it) and on to the
        guest, as the kernel's cpumap thread passes frames up the stack. Returns the number
        of frames taken."""
        taken = 0
        for queue in self.cpu_queues.values():
            while queue.frames:
                frame, program = queue.frames.popleft()
                taken += 1
                if program is not None:
                    handle = program.id
                    try:
                        outcome = self.backend.run_xdp(handle, frame,
                                                       ingress_ifindex=self.ifindex)
                    except ErrnoError:
                        self.ports.cpu_dropped += 1
                        continue
                    owner = self.objects.programs.get(handle)
                    if owner is not None:
                        owner.counters.count(outcome.action, len(frame))
                    if outcome.action != XdpAction.PASS:
                        self.ports.cpu_dropped += 1
                        continue
                    frame = outcome.data
                self._to_guest(frame, self.interfaces.get(self.ifindex))
        return taken

    def _to_xsk(self, queue: int, frame: bytes) -> None:
        """To the AF_XDP receive ring of the guest's receive queue ``queue``."""
        ring = self.xsk_rings.get(queue)
        if ring is None:
            ring = self.xsk_rings[queue] = deque()
        if len(ring) >= XSK_RING_SIZE:
            self.ports.xsk_ring_full += 1
            return
        ring.append(frame)
        self.ports.xsk_delivered += 1

    # -- event streams ---------------------------------------------------------------------------
    def _event_maps(self) -> list[tuple[int, object]]:
        found = []
        for handle in self.objects.maps:
            try:
                live = self.backend.map(handle)
            except ErrnoError:
                continue
            if callable(getattr(live, "take_events", None)):
                found.append((handle, live))
        return found

    def _collect_events_of(self, handle: int) -> None:
        try:
            live = self.backend.map(handle)
        except ErrnoError:
            return
        take = getattr(live, "take_events", None)
        if callable(take):
            self._keep(take())

    def _keep(self, records: list[Event]) -> None:
        """Into the backlog while it has room (records and bytes); the rest is lost."""
        for event in records:
            size = len(event.data)
            if len(self.events) >= EVENT_BACKLOG or \
                    self._event_bytes + size > EVENT_BACKLOG_BYTES:
                self.ports.events_lost += 1
                continue
            self.events.append(event)
            self._event_bytes += size

    def collect_events(self) -> int:
        """Move every event record out of the maps into the device's backlog (oldest first
        across maps); the maps' buffers are then empty. Live migration does this before
        the switchover, so no record stays behind in a map that is about to be freed."""
        records: list[Event] = []
        for _, live in self._event_maps():
            records.extend(live.take_events())  # type: ignore[attr-defined]
        records.sort(key=lambda e: e.time_ns)
        self._keep(records)
        return len(records)

    def take_events(self, most: int | None = None) -> list[Event]:
        """Event records for the device's reader, oldest first; taking them frees room in
        the streams (a ring buffer's consumer position moves on)."""
        self.collect_events()
        out: list[Event] = []
        while self.events and (most is None or len(out) < most):
            event = self.events.popleft()
            self._event_bytes -= len(event.data)
            out.append(event)
        return out

    def event_streams(self) -> dict[int, dict[str, int]]:
        """Per event map (by handle): records waiting, records lost, bytes held, size."""
        return {handle: live.stream_stats()  # type: ignore[attr-defined]
                for handle, live in self._event_maps()
                if callable(getattr(live, "stream_stats", None))}

    def _to_guest(self, frame: bytes, port: Interface | None) -> None:
        """Into ``port``'s guest, or the simulated driver's receive queue without one."""
        if port is not None:
            if port.guest.deliver(frame):
                self.ports.rx_to_guest += 1
                port.counters.rx_to_guest += 1
            else:
                self.ports.rx_no_buffer += 1
                port.counters.rx_no_buffer += 1
            return
        transport = self.transport
        chain = transport.pop(RECEIVEQ)
        if chain is None:
            self.ports.rx_no_buffer += 1
            return
        queue = transport.device_queue(RECEIVEQ)
        assert queue is not None
        data = NetHdr.plain(1) + frame  # 5.1.6.4: num_buffers is 1 without MRG_RXBUF
        written = chain.write(self.memory, data[:chain.writable_len])
        queue.push_used(chain.head, written)
        self.ports.rx_to_guest += 1
