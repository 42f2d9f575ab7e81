"""One front-end's vhost-user session with a virtio-net back-end: the protocol's state machine.

The front-end (QEMU) negotiates features, shares guest memory and hands over the two queues
of one queue pair (receive 0, transmit 1): their size, their addresses as user addresses, the
index to start from, and eventfds - kick (the guest added buffers) and call (the back-end used
some). A ring starts when its kick descriptor arrives with everything else set, and stops on
GET_VRING_BASE, which answers with the next available index so a later session (or another
back-end, after a migration) resumes exactly there. Every message is checked against the
state it needs (memory before addresses, addresses inside a region, ring sizes the split
virtqueue allows, features the back-end offered); a violation raises
:class:`~.protocol.VhostUserError` and the connection that sent it is dropped, leaving the
device and every other session as they were.

The queues themselves are the project's split-virtqueue device code
(:class:`~offload.virtio.device_queue.DeviceQueue`) running over the mapped guest memory, with
the same validation of every descriptor the guest writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..virtio.device_queue import DeviceQueue
from ..virtio.errors import VirtioError
from ..virtio.netdev import NET_HDR_SIZE
from ..virtio.ring import MAX_QUEUE_SIZE, VirtqueueError, VringLayout, is_valid_queue_size
from .memory import GuestRam
from .protocol import (
    MAX_FDS,
    U64,
    VHOST_F_LOG_ALL,
    VHOST_USER_F_PROTOCOL_FEATURES,
    VHOST_VRING_F_LOG,
    VRING_INDEX_MASK,
    VRING_NOFD_MASK,
    Header,
    LogArea,
    ProtocolFeature,
    Request,
    VhostUserError,
    VringAddr,
    VringState,
    decode_memory_table,
    request_name,
    u64,
)

RX, TX = 0, 1
QUEUES = 2  # one queue pair
VIRTIO_F_VERSION_1 = 32
VIRTIO_NET_F_MAC = 5

#: What the back-end offers: virtio 1.x and the vhost-user extras it implements.
DEVICE_FEATURES = (1 << VIRTIO_F_VERSION_1) | (1 << VHOST_USER_F_PROTOCOL_FEATURES) | (
    1 << VHOST_F_LOG_ALL)
PROTOCOL_FEATURES = (1 << ProtocolFeature.MQ) | (1 << ProtocolFeature.LOG_SHMFD) | (
    1 << ProtocolFeature.REPLY_ACK) | (1 << ProtocolFeature.RARP)

#: Requests that carry descriptors, and how many.
FD_COUNTS = {Request.SET_MEM_TABLE: (1, MAX_FDS), Request.SET_LOG_BASE: (0, 1), Request.SET_LOG_FD: (1, 1),
             Request.SET_VRING_KICK: (0, 1), Request.SET_VRING_CALL: (0, 1),
             Request.SET_VRING_ERR: (0, 1)}


@dataclass
class Vring:
    """What the front-end told the back-end about one queue."""

    index: int
    num: int = 0
    addr: VringAddr | None = None
    base: int = 0
    kick: int | None = None
    call: int | None = None
    err: int | None = None
    enabled: bool = False
    queue: DeviceQueue | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"used": 0, "calls": 0})

    @property
    def started(self) -> bool:
        return self.queue is not None


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def rarp_frame(mac: bytes) -> bytes:
    """A broadcast RARP "request reverse" (opcode 3) for ``mac``, padded to 60 bytes."""
    arp = (b"\x00\x01\x08\x00\x06\x04\x00\x03" + mac + bytes(4) + mac + bytes(4))
    return (b"\xff" * 6 + mac + b"\x80\x35" + arp).ljust(60, b"\x00")


class Session:
    """The back-end's half of one vhost-user connection.

    :meth:`handle` takes one message (header, payload, received descriptors - which it owns
    from then on) and returns the reply to send, or None. :meth:`deliver` puts a frame from
    the wire into the guest's receive queue; :meth:`transmitted` takes the frames the guest
    queued for sending.
    """

    def __init__(self, *, on_start: Callable[[int], None] | None = None) -> None:
        self.owner = False
        self.features = 0
        self.protocol_features = 0
        self.memory: GuestRam | None = None
        self.vrings = [Vring(i) for i in range(QUEUES)]
        self.log_fd: int | None = None
        self._on_start = on_start or (lambda index: None)
        #: frames the back-end sends on the guest's behalf (the RARP announcement), for the
        #: caller to put on the wire once it holds no session lock
        self.announcements: list[bytes] = []
        self.rx_dropped = 0  # frames for the guest while it had no receive buffer

    # -- messages -------------------------------------------------------------------------
    def handle(self, header: Header, payload: bytes, fds: Sequence[int]) -> bytes | None:
        """Act on one message; return the reply payload (REPLY set by the caller) or None."""
        fds = list(fds)
        try:
            request = Request(header.request)
        except ValueError:
            for fd in fds:
                _close(fd)
            raise VhostUserError(f"{request_name(header.request)} is not a request this "
                                 f"back-end implements") from None
        low, high = FD_COUNTS.get(request, (0, 0))
        if not low <= len(fds) <= high:
            for fd in fds:
                _close(fd)
            raise VhostUserError(f"{request_name(request)} came with {len(fds)} file "
                                 f"descriptors; it takes {low} to {high}")
        handler = getattr(self, f"_{request.name.lower()}", None)
        if handler is None:
            for fd in fds:
                _close(fd)
            raise VhostUserError(f"{request_name(request)} is not supported by this back-end")
        reply = handler(request_name(request), payload, fds)
        if reply is None and header.need_reply and self._acks:
            return U64.pack(0)
        return reply

    @property
    def _acks(self) -> bool:
        return bool(self.protocol_features >> ProtocolFeature.REPLY_ACK & 1)

    def _vring(self, name: str, index: int) -> Vring:
        if index >= QUEUES:
            raise VhostUserError(f"{name}: vring {index} does not exist; a single queue pair "
                                 f"has {QUEUES}")
        return self.vrings[index]

    def _get_features(self, name: str, payload: bytes, fds: list[int]) -> bytes:
        return U64.pack(DEVICE_FEATURES)

    def _set_features(self, name: str, payload: bytes, fds: list[int]) -> None:
        features = u64(name, payload)
        if features & ~DEVICE_FEATURES:
            raise VhostUserError(f"{name}: features {features & ~DEVICE_FEATURES:#x} were "
                                 f"never offered")
        self.features = features

    def _get_protocol_features(self, name: str, payload: bytes, fds: list[int]) -> bytes:
        return U64.pack(PROTOCOL_FEATURES)

    def _set_protocol_features(self, name: str, payload: bytes, fds: list[int]) -> None:
        features = u64(name, payload)
        if features & ~PROTOCOL_FEATURES:
            raise VhostUserError(f"{name}: protocol features "
                                 f"{features & ~PROTOCOL_FEATURES:#x} were never offered")
        self.protocol_features = features

    def _get_queue_num(self, name: str, payload: bytes, fds: list[int]) -> bytes:
        return U64.pack(1)

    def _set_owner(self, name: str, payload: bytes, fds: list[int]) -> None:
        if self.owner:
            raise VhostUserError(f"{name}: the session already has an owner")
        self.owner = True

    def _reset_owner(self, name: str, payload: bytes, fds: list[int]) -> None:
        for vring in self.vrings:
            self._stop(vring)

    def _set_mem_table(self, name: str, payload: bytes, fds: list[int]) -> None:
        try:
            regions = decode_memory_table(payload)
            memory = GuestRam(regions, fds)
        finally:
            for fd in fds:  # the mapping keeps the memory; the descriptors are not needed
                _close(fd)
        old, self.memory = self.memory, memory
        for vring in self.vrings:  # running rings move to the new mapping at their indexes
            if vring.queue is not None:
                base, used = vring.queue.last_avail_idx, vring.queue.used_idx
                vring.queue = None
                vring.base = base
                self._start(name, vring, used_idx=used)
        if old is not None:
            old.close()

    def _set_log_base(self, name: str, payload: bytes, fds: list[int]) -> bytes:
        if not fds:
            raise VhostUserError(f"{name}: the log must come as a shared memory descriptor "
                                 f"(VHOST_USER_PROTOCOL_F_LOG_SHMFD)")
        try:
            memory = self._memory(name)
            memory.set_log(LogArea.decode(payload), fds[0])
        finally:
            _close(fds[0])
        return U64.pack(0)

    def _set_log_fd(self, name: str, payload: bytes, fds: list[int]) -> None:
        _close(self.log_fd)
        self.log_fd = fds[0]

    def _set_vring_num(self, name: str, payload: bytes, fds: list[int]) -> None:
        state = VringState.decode(name, payload)
        vring = self._vring(name, state.index)
        if not is_valid_queue_size(state.num):
            raise VhostUserError(f"{name}: queue size {state.num} is not a power of two "
                                 f"between 1 and {MAX_QUEUE_SIZE}")
        if vring.started:
            raise VhostUserError(f"{name}: vring {state.index} is running")
        vring.num = state.num

    def _set_vring_addr(self, name: str, payload: bytes, fds: list[int]) -> None:
        addr = VringAddr.decode(name, payload)
        vring = self._vring(name, addr.index)
        if vring.started:  # only the log flag may change on a running ring
            if vring.addr is None or (vring.addr.desc, vring.addr.used, vring.addr.avail) != (
                    addr.desc, addr.used, addr.avail):
                raise VhostUserError(f"{name}: vring {addr.index} is running; only its log "
                                     f"flag may change")
        vring.addr = addr

    def _set_vring_base(self, name: str, payload: bytes, fds: list[int]) -> None:
        state = VringState.decode(name, payload)
        vring = self._vring(name, state.index)
        if vring.started:
            raise VhostUserError(f"{name}: vring {state.index} is running")
        if state.num > 0xFFFF:
            raise VhostUserError(f"{name}: base {state.num} is not a 16-bit ring index")
        vring.base = state.num

    def _get_vring_base(self, name: str, payload: bytes, fds: list[int]) -> bytes:
        state = VringState.decode(name, payload)
        vring = self._vring(name, state.index)
        self._stop(vring)
        return VringState(state.index, vring.base).encode()

    def _set_vring_kick(self, name: str, payload: bytes, fds: list[int]) -> None:
        index, fd = self._fd_payload(name, payload, fds)
        vring = self.vrings[index]
        _close(vring.kick)
        vring.kick = fd
        if not vring.started:
            self._start(name, vring)

    def _set_vring_call(self, name: str, payload: bytes, fds: list[int]) -> None:
        index, fd = self._fd_payload(name, payload, fds)
        vring = self.vrings[index]
        _close(vring.call)
        vring.call = fd

    def _set_vring_err(self, name: str, payload: bytes, fds: list[int]) -> None:
        index, fd = self._fd_payload(name, payload, fds)
        vring = self.vrings[index]
        _close(vring.err)
        vring.err = fd

    def _set_vring_enable(self, name: str, payload: bytes, fds: list[int]) -> None:
        state = VringState.decode(name, payload)
        if state.num not in (0, 1):
            raise VhostUserError(f"{name}: enable must be 0 or 1, not {state.num}")
        self._vring(name, state.index).enabled = bool(state.num)

    def _send_rarp(self, name: str, payload: bytes, fds: list[int]) -> None:
        """After a migration the guest's MAC is somewhere else: broadcast a RARP request from
        it (RFC 903), as QEMU's own announcement does, so switches learn the new port."""
        mac = U64.pack(u64(name, payload))[:6]
        self.announcements.append(rarp_frame(mac))

    def _fd_payload(self, name: str, payload: bytes, fds: list[int]) -> tuple[int, int | None]:
        try:
            value = u64(name, payload)
            index = value & VRING_INDEX_MASK
            nofd = bool(value & VRING_NOFD_MASK)
            if value & ~(VRING_INDEX_MASK | VRING_NOFD_MASK):
                raise VhostUserError(f"{name}: unknown bits {value:#x}")
            if nofd == bool(fds):
                raise VhostUserError(f"{name}: the no-descriptor flag is {int(nofd)} but "
                                     f"{len(fds)} descriptors came")
            if index >= QUEUES:
                raise VhostUserError(f"{name}: vring {index} does not exist; a single queue "
                                     f"pair has {QUEUES}")
        except VhostUserError:
            for fd in fds:
                _close(fd)
            raise
        return index, (fds[0] if fds else None)

    # -- rings ----------------------------------------------------------------------------
    def _memory(self, name: str) -> GuestRam:
        if self.memory is None:
            raise VhostUserError(f"{name}: no memory table was set")
        return self.memory

    def _start(self, name: str, vring: Vring, *, used_idx: int | None = None) -> None:
        """Build the ring's queue over guest memory once its size and addresses are known."""
        if vring.num == 0 or vring.addr is None:
            raise VhostUserError(f"{name}: vring {vring.index} has no "
                                 f"{'size' if vring.num == 0 else 'addresses'} yet")
        memory = self._memory(name)
        num, addr = vring.num, vring.addr
        layout = VringLayout(
            num,
            memory.user_to_guest(addr.desc, VringLayout.desc_bytes(num), f"{name} desc"),
            memory.user_to_guest(addr.avail, VringLayout.avail_bytes(num), f"{name} avail"),
            memory.user_to_guest(addr.used, VringLayout.used_bytes(num), f"{name} used"))
        try:
            queue = DeviceQueue(memory, layout)
        except VirtqueueError as err:
            raise VhostUserError(f"{name}: vring {vring.index}: {err}") from None
        queue.last_avail_idx = vring.base
        queue.used_idx = used_idx if used_idx is not None else memory.read_u16(
            layout.used_idx)
        vring.queue = queue
        if not self.features >> VHOST_USER_F_PROTOCOL_FEATURES & 1:
            vring.enabled = True  # without protocol features a ring starts enabled
        self._on_start(vring.index)

    def _stop(self, vring: Vring) -> None:
        if vring.queue is not None:
            vring.base = vring.queue.last_avail_idx
            vring.queue = None
        _close(vring.kick)
        vring.kick = None

    def _log_used(self, vring: Vring) -> None:
        """With dirty logging on, mark the used ring's pages (at the ring's log address)."""
        memory = self.memory
        addr = vring.addr
        if memory is None or addr is None or not memory.logging or \
                not self.features >> VHOST_F_LOG_ALL & 1 or not addr.flags & VHOST_VRING_F_LOG:
            return
        memory.log_write(addr.log, VringLayout.used_bytes(vring.num))

    def _notify(self, vring: Vring) -> None:
        queue = vring.queue
        if queue is None or vring.call is None:
            return
        if queue.needs_interrupt():
            vring.stats["calls"] += 1
            try:
                os.write(vring.call, (1).to_bytes(8, "little"))
            except OSError:
                pass  # a full or closed eventfd: the guest polls the ring anyway

    # -- the data path --------------------------------------------------------------------
    def deliver(self, frame: bytes) -> bool:
        """Put a frame from the wire into the guest's receive queue (header first)."""
        vring = self.vrings[RX]
        queue, memory = vring.queue, self.memory
        if queue is None or memory is None or not vring.enabled:
            self.rx_dropped += 1
            return False
        try:
            chain = queue.pop()
            if chain is None:
                self.rx_dropped += 1
                return False
            data = bytes(NET_HDR_SIZE - 2) + (1).to_bytes(2, "little") + frame
            if chain.writable_len < len(data):
                queue.push_used(chain.head, 0)
                self.rx_dropped += 1
                self._notify(vring)
                return False
            written = chain.write(memory, data)
            queue.push_used(chain.head, written)
        except VirtioError as err:
            raise VhostUserError(f"receive queue: {err}") from None
        vring.stats["used"] += 1
        self._log_used(vring)
        self._notify(vring)
        return True

    def transmitted(self, most: int = 256) -> Iterator[bytes]:
        """The frames the guest queued on its transmit queue (headers stripped)."""
        vring = self.vrings[TX]
        queue, memory = vring.queue, self.memory
        if queue is None or memory is None:
            return
        taken = 0
        try:
            while taken < most:
                chain = queue.pop()
                if chain is None:
                    break
                data = chain.read(memory, NET_HDR_SIZE + 65535)
                queue.push_used(chain.head, 0)
                vring.stats["used"] += 1
                taken += 1
                if vring.enabled and len(data) > NET_HDR_SIZE:
                    yield data[NET_HDR_SIZE:]
        except VirtioError as err:
            raise VhostUserError(f"transmit queue: {err}") from None
        finally:
            if taken:
                self._log_used(vring)
                self._notify(vring)

    def kick_fds(self) -> dict[int, int]:
        """Kick descriptor -> ring index, for the event loop to wait on."""
        return {v.kick: v.index for v in self.vrings if v.kick is not None}

    def close(self) -> None:
        for vring in self.vrings:
            self._stop(vring)
            _close(vring.call)
            _close(vring.err)
            vring.call = vring.err = None
        _close(self.log_fd)
        self.log_fd = None
        if self.memory is not None:
            self.memory.close()
            self.memory = None

