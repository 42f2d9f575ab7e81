"""The guest driver: a bpf(2)-like facade that forwards offloaded objects over the control
virtqueue.

What the guest kernel's virtio-net driver does for an offload-capable device: negotiate
features (refusing offload when VIRTIO_NET_F_BPF_OFFLOAD is absent), set up the receive,
transmit and control queues in guest memory, and turn each uAPI call for an offloaded object
into a control command whose reply comes back in a device-writable buffer. Failures raise
:class:`~offload.errors.ErrnoError` with the errno name and the device's message (for a
rejected program: the verifier log), as ``bpf()`` reports them.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..caps.capabilities import Capabilities
from ..errors import ErrnoError
from ..isa.codec import encode
from ..isa.instruction import Instruction
from ..loader.func_btf import function_btf
from ..maps.spec import MapSpec
from ..program import ProgramSpec, bpf_object_name
from ..uapi import ProgType, UpdateFlags, XdpFlags
from ..virtio import bpf_maps as m
from ..virtio import bpf_progs as p
from ..virtio.allocator import GuestAllocator
from ..virtio.ctrl import RESULT_HEADER_SIZE, Request, Response
from ..virtio.driver_queue import DriverQueue
from ..virtio.features import Feature, feature_set, require_offload
from ..virtio.memory import GuestMemory
from ..virtio.messages import decode_response
from ..virtio.netdev import CONTROLQ, NET_HDR_SIZE, RECEIVEQ, TRANSMITQ, NetHdr
from ..virtio.transport import DeviceStatus, Transport, driver_negotiate, setup_queue
from .errors import DriverError
from .objects import LoadedObject, Source, load_into, unload

WANTED = feature_set((Feature.VIRTIO_F_VERSION_1, Feature.VIRTIO_F_INDIRECT_DESC,
                      Feature.VIRTIO_F_EVENT_IDX, Feature.VIRTIO_NET_F_CTRL_VQ,
                      Feature.VIRTIO_NET_F_MAC, Feature.VIRTIO_NET_F_BPF_OFFLOAD))
RX_BUFFER = NET_HDR_SIZE + 9216  # room for a jumbo frame
RX_POSTED = 64
LOG_ROOM = 64 << 10


class Driver:
    """The guest side of one offload device; ``kick`` lets the device run (in-process)."""

    def __init__(self, transport: Transport, memory: GuestMemory, kick: Callable[[], None], *,
                 wanted: int = WANTED, rx_buffers: int = RX_POSTED) -> None:
        self.transport = transport
        self.memory = memory
        self._kick = kick
        self.allocator = GuestAllocator(memory)
        self.features = driver_negotiate(transport, wanted)
        self.rxq = setup_queue(transport, self.allocator, RECEIVEQ)
        self.txq = setup_queue(transport, self.allocator, TRANSMITQ)
        self.ctrlq = setup_queue(transport, self.allocator, CONTROLQ)
        transport.write_status(transport.status | DeviceStatus.DRIVER_OK)
        self._rx_posted: dict[int, int] = {}  # head -> buffer address
        for _ in range(min(rx_buffers, self.rxq.size)):
            self._post_rx()
        self._notify(RECEIVEQ, self.rxq)

    # -- plumbing ------------------------------------------------------------------------------
    def _notify(self, index: int, queue: DriverQueue) -> None:
        if queue.kick_prepare():
            self.transport.notify(index)
        self._kick()

    def _post_rx(self, address: int | None = None) -> None:
        """Give the device a receive buffer (a new one, or one whose frame was consumed)."""
        if address is None:
            address = self.allocator.alloc(RX_BUFFER)
        self._rx_posted[self.rxq.add_inbuf(address, RX_BUFFER)] = address

    def _check_alive(self) -> None:
        if self.transport.status & DeviceStatus.DEVICE_NEEDS_RESET:
            raise DriverError(errno.EIO, "the device needs a reset: "
                              f"{self.transport.reset_reason or 'no reason given'}")

    def command(self, request: Request, reply_size: int = LOG_ROOM) -> Response:
        """Send one control command and return the device's response (raises on status)."""
        require_offload(self.features)
        self._check_alive()
        body = request.encode()
        out_addr = self.allocator.alloc(len(body))
        in_size = RESULT_HEADER_SIZE + reply_size
        in_addr = self.allocator.alloc(in_size)
        try:
            self.memory.write(out_addr, body)
            head = self.ctrlq.add_buffer([(out_addr, len(body))], [(in_addr, in_size)])
            self._notify(CONTROLQ, self.ctrlq)
            used = self.ctrlq.get_used()
            self._check_alive()
            if used is None or used.head != head:
                raise DriverError(errno.EIO, "the device did not answer the control command")
            response = decode_response(request.COMMAND, self.memory.read(in_addr, used.length))
        finally:
            self.allocator.free(out_addr)
            self.allocator.free(in_addr)
        if response.status:
            raise DriverError(response.status, response.log or "the device gave no reason",
                              response=response)
        return response

    # -- capabilities --------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        response = self.command(p.CapsRequest())
        assert isinstance(response, p.CapsResponse)
        return response.to_capabilities(self.features)

    # -- maps ------------------------------------------------------------------------------------
    def map_create(self, spec: MapSpec, *, inner_map: int = 0) -> int:
        """BPF_MAP_CREATE, then the spec's initial contents and freeze (global data), as
        libbpf creates maps from an object file."""
        response = self.command(m.MapCreateRequest(
            int(spec.type), spec.key_size, spec.value_size, spec.max_entries, spec.flags,
            inner_map, bpf_object_name(spec.name), spec.spin_lock_off))
        assert isinstance(response, m.MapCreateResponse)
        handle = response.handle
        for key, value in spec.contents:
            self.map_update_elem(handle, key, value)
        if spec.frozen:
            self.map_freeze(handle)
        return handle

    def map_freeze(self, handle: int) -> None:
        self.command(m.MapFreezeRequest(handle))

    def map_free(self, handle: int) -> None:
        self.command(m.MapFreeRequest(handle))

    def map_lookup_elem(self, handle: int, key: bytes, value_size: int = LOG_ROOM) -> bytes:
        response = self.command(m.MapLookupRequest(handle, bytes(key)),
                                reply_size=value_size + 64)
        assert isinstance(response, m.MapLookupResponse)
        return response.value

    def map_update_elem(self, handle: int, key: bytes, value: bytes,
                        flags: int = UpdateFlags.ANY) -> None:
        self.command(m.MapUpdateRequest(handle, bytes(key), bytes(value), flags))

    def map_delete_elem(self, handle: int, key: bytes) -> None:
        self.command(m.MapDeleteRequest(handle, bytes(key)))

    def map_get_next_key(self, handle: int, key: bytes | None = None) -> bytes:
        response = self.command(m.MapGetNextKeyRequest(handle, None if key is None
                                                       else bytes(key)))
        assert isinstance(response, m.MapGetNextKeyResponse)
        return response.key

    def map_lookup_batch(self, handle: int, count: int, cursor: bytes | None = None,
                         entry_size: int = 256) -> m.MapLookupBatchResponse:
        response = self.command(m.MapLookupBatchRequest(handle, count, cursor or b""),
                                reply_size=count * (entry_size + 8) + 1024)
        assert isinstance(response, m.MapLookupBatchResponse)
        return response

    def map_update_batch(self, handle: int, entries: Iterable[tuple[bytes, bytes]],
                         flags: int = 0) -> int:
        pairs = list(entries)
        return self.map_update_columns(handle, len(pairs), b"".join(k for k, _ in pairs),
                                       b"".join(v for _, v in pairs), flags)

    def map_update_columns(self, handle: int, count: int, keys: bytes, values: bytes,
                           flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH of ``count`` keys and ``count`` uAPI values, each packed."""
        response = self.command(m.MapUpdateBatchRequest.of(handle, keys, values, count, flags))
        assert isinstance(response, m.MapUpdateBatchResponse)
        return response.count

    def map_items(self, handle: int, batch: int = 256) -> Iterable[tuple[bytes, bytes]]:
        """Every entry, by batched lookups (get_next_key walks where batches are refused)."""
        cursor = None
        while True:
            try:
                response = self.map_lookup_batch(handle, batch, cursor)
            except ErrnoError as err:
                if err.name == "ENOTSUPP":
                    yield from self._walk(handle)
                    return
                raise
            ks, vs, keys, values = (response.key_size, response.value_size, response.keys,
                                    response.values)
            for i in range(response.count):
                yield keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs]
            if response.done or not response.count:
                return
            cursor = response.cursor

    def _walk(self, handle: int) -> Iterable[tuple[bytes, bytes]]:
        key = None
        while True:
            try:
                key = self.map_get_next_key(handle, key)
            except ErrnoError as err:
                if err.errno == errno.ENOENT:
                    return
                raise
            try:
                yield key, self.map_lookup_elem(handle, key)
            except ErrnoError as err:
                if err.errno != errno.ENOENT:
                    raise

    # -- programs --------------------------------------------------------------------------------
    def prog_load(self, program: ProgramSpec | Sequence[Instruction], *,
                  maps: Mapping[str, int] | None = None, prog_type: ProgType = ProgType.XDP,
                  name: str = "", license: str = "GPL", log_level: int = 1) -> int:
        """Load a program on the device: a ProgramSpec with its maps by name -> handle, or
        bare instructions. Returns the program's handle."""
        if isinstance(program, ProgramSpec):
            handles = dict(maps or {})
            refs = []
            for ref in program.map_refs:
                if ref.map_name not in handles:
                    raise DriverError(errno.EBADF, f"program {program.name!r} uses map "
                                      f"{ref.map_name!r}, which was not created on the device")
                refs.append(p.MapRef(ref.slot, handles[ref.map_name], ref.kind, ref.offset))
            funcs = function_btf(program.functions)
            request = p.ProgLoadRequest(
                int(program.type), encode(program.instructions), program.license or license,
                tuple(refs), bpf_object_name(program.name), program.expected_attach_type,
                program.flags, log_level, LOG_ROOM, None if funcs is None else funcs.btf,
                () if funcs is None else tuple(p.FuncInfoRec(*r) for r in funcs.records))
        else:
            request = p.ProgLoadRequest(int(prog_type), encode(program), license, (),
                                        bpf_object_name(name), 0, 0, log_level, LOG_ROOM)
        response = self.command(request)
        assert isinstance(response, p.ProgLoadResponse)
        return response.handle

    def prog_unload(self, handle: int) -> None:
        self.command(p.ProgUnloadRequest(handle))

    def prog_test_run(self, handle: int, data: bytes, *, repeat: int = 1,
                      data_size_out: int = 0) -> p.ProgTestRunResponse:
        """BPF_PROG_TEST_RUN: the program's verdict on ``data`` (``retval``), the frame as it
        left (``data_out``) and the mean ``duration`` in ns of ``repeat`` runs. A frame too
        large for ``data_size_out`` raises ENOSPC, as bpf(2) fails, with the cut response."""
        room = data_size_out or len(data) + 4096
        response = self.command(p.ProgTestRunRequest(handle, bytes(data), repeat, 0,
                                                     data_size_out),
                                reply_size=room + 64)
        if not isinstance(response, p.ProgTestRunResponse):
            raise DriverError(errno.EIO, "the device answered PROG_TEST_RUN with another reply")
        return response

    def load_object(self, source: Source, *, name: str | None = None,
                    programs: Iterable[str] | None = None,
                    prog_type: ProgType | str | None = None,
                    prog_types: Mapping[str, ProgType | str] | None = None,
                    map_sizes: Mapping[str, int] | None = None,
                    all_or_none: bool = True) -> LoadedObject:
        """An ELF object (path, bytes or ObjectSpec) onto the device, as libbpf loads one.

        ``prog_type`` sets every program's type and ``prog_types`` single programs' (as
        bpf_program__set_type; ``xdp``, ``xdp.frags``, a ProgType), ``map_sizes`` the
        max_entries of maps by name (as bpf_map__set_max_entries; ``OUTER.inner`` for a
        map-in-map's template). ``programs`` chooses programs by name (default: all). The
        maps the chosen programs use, and those no program uses, are created.

        All or none by default: a chosen program the loader refuses raises
        :class:`~offload.driver.errors.ObjectLoadError` (EINVAL, every refusal listed) before
        anything is created; one the device refuses undoes everything and raises its error.
        With ``all_or_none=False`` the others load and the result lists the refused.
        """
        return load_into(self, source, name=name, programs=programs, prog_type=prog_type,
                         prog_types=prog_types, map_sizes=map_sizes, all_or_none=all_or_none)

    def unload_object(self, loaded: LoadedObject) -> None:
        """Unload what :meth:`load_object` loaded (programs, then maps)."""
        unload(self, loaded)

    def xdp_attach(self, handle: int, *, mode: str = "hw", replace: int | None = None) -> None:
        if mode != "hw":
            raise DriverError(errno.EOPNOTSUPP, f"XDP mode {mode!r} is not an offload; only "
                                                "mode='hw' reaches the device")
        flags = XdpFlags.HW_MODE | (XdpFlags.REPLACE if replace is not None else 0)
        self.command(p.XdpAttachRequest(handle, flags, replace or 0))

    def xdp_detach(self) -> None:
        self.command(p.XdpDetachRequest(XdpFlags.HW_MODE))

    # -- frames ----------------------------------------------------------------------------------
    def transmit(self, frame: bytes) -> None:
        """Send a frame out through the device."""
        data = NetHdr.plain() + frame
        address = self.allocator.alloc(len(data), zero=False)  # every byte is written next
        self.memory.write(address, data)
        head = self.txq.add_outbuf(address, len(data))
        self._notify(TRANSMITQ, self.txq)
        while (used := self.txq.get_used()) is not None:
            if used.head == head:
                break
        self.allocator.free(address)

    def received(self) -> list[bytes]:
        """Frames the device delivered to the guest since the last call (buffers re-posted)."""
        frames = []
        rxq, posted, memory = self.rxq, self._rx_posted, self.memory
        while (used := rxq.get_used()) is not None:
            address = posted.pop(used.head)
            length = used.length - NET_HDR_SIZE  # the frame after its virtio_net_hdr
            frames.append(memory.read(address + NET_HDR_SIZE, length) if length > 0 else b"")
            self._post_rx(address)
        if frames:
            self._notify(RECEIVEQ, self.rxq)
        return frames
