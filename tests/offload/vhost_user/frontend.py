"""A vhost-user front-end in Python, as QEMU acts: shared memfd guest RAM with a PC-like hole,
the guest driver's two queues in it, and the protocol messages with their descriptors."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from offload.vhost_user import channel
from offload.vhost_user.memory import GuestRam
from offload.vhost_user.protocol import (
    HEADER,
    VHOST_F_LOG_ALL,
    VHOST_USER_F_PROTOCOL_FEATURES,
    VHOST_VRING_F_LOG,
    Header,
    LogArea,
    ProtocolFeature,
    Region,
    Request,
    VringAddr,
    VringState,
    encode_memory_table,
)
from offload.virtio.allocator import GuestAllocator
from offload.virtio.driver_queue import DriverQueue
from offload.virtio.netdev import NET_HDR_SIZE

RAM = 8 << 20
HOLE = (0xA0000, 0xC0000)  # the PC's VGA window: inside the file, not guest RAM
USER_BASE = 0x7F00_0000_0000
QUEUE_SIZE = 64
BUFFER = 2048
REGIONS = (Region(0, HOLE[0], USER_BASE, 0),
           Region(HOLE[1], RAM - HOLE[1], USER_BASE + HOLE[1], HOLE[1]))


def memfd(size: int, name: str = "guest-ram") -> int:
    fd = os.memfd_create(name)
    os.ftruncate(fd, size)
    return fd


@dataclass
class Frontend:
    """The guest's side: RAM, queues and buffers, and a connection to the back-end."""

    sock: socket.socket
    ram_fd: int = field(default_factory=lambda: memfd(RAM))
    protocol: int = (1 << ProtocolFeature.MQ) | (1 << ProtocolFeature.LOG_SHMFD) | (
        1 << ProtocolFeature.REPLY_ACK)

    def __post_init__(self) -> None:
        self.memory = GuestRam(REGIONS, [self.ram_fd, self.ram_fd])
        self.allocator = GuestAllocator(self.memory, start=0x100000)
        self.rx = DriverQueue.allocate(self.allocator, QUEUE_SIZE)
        self.tx = DriverQueue.allocate(self.allocator, QUEUE_SIZE)
        self.kick = [os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)]
        self.call = [os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)]
        self.rx_buffers: dict[int, int] = {}
        self.log_fd: int | None = None
        self.extra: list[int] = []

    def owned(self, fd: int) -> int:
        """A descriptor the test made for this front-end, closed with it."""
        self.extra.append(fd)
        return fd

    # -- messages -------------------------------------------------------------------------
    def send(self, request: int, payload: bytes = b"", fds: list[int] | None = None, *,
             need_reply: bool = False) -> None:
        channel.send(self.sock, request, payload, fds, need_reply=need_reply)

    def ask(self, request: int, payload: bytes = b"", fds: list[int] | None = None, *,
            need_reply: bool = False) -> bytes:
        self.send(request, payload, fds, need_reply=need_reply)
        self.sock.settimeout(5)
        head = self.sock.recv(HEADER.size, socket.MSG_WAITALL)
        if len(head) < HEADER.size:
            raise ConnectionError("the back-end closed the connection")
        header = Header.decode(head)
        body = self.sock.recv(header.size, socket.MSG_WAITALL) if header.size else b""
        if header.request != request or not header.flags & 4:
            raise AssertionError(f"reply {header} to request {request}")
        return body

    def user(self, gpa: int) -> int:
        return USER_BASE + gpa

    def vring_addr(self, index: int, flags: int = 0) -> VringAddr:
        layout = (self.rx if index == 0 else self.tx).layout
        return VringAddr(index, flags, self.user(layout.desc), self.user(layout.device),
                         self.user(layout.driver), layout.device)

    def handshake(self, *, log: bool = False) -> None:
        """What QEMU sends when the guest's driver starts the NIC."""
        self.send(Request.SET_OWNER)
        features = int.from_bytes(self.ask(Request.GET_FEATURES), "little")
        assert features >> VHOST_USER_F_PROTOCOL_FEATURES & 1
        offered = int.from_bytes(self.ask(Request.GET_PROTOCOL_FEATURES), "little")
        self.send(Request.SET_PROTOCOL_FEATURES, (offered & self.protocol).to_bytes(8, "little"))
        wanted = (1 << 32) | (1 << VHOST_USER_F_PROTOCOL_FEATURES)
        if log:
            wanted |= 1 << VHOST_F_LOG_ALL
        self.send(Request.SET_FEATURES, wanted.to_bytes(8, "little"))
        self.send(Request.SET_MEM_TABLE, encode_memory_table(REGIONS),
                  [self.ram_fd, self.ram_fd])
        for index in (0, 1):
            self.start_ring(index, log=log)
        self.ask(Request.GET_FEATURES)  # a round trip: everything before it was handled

    def start_ring(self, index: int, *, base: int = 0, log: bool = False) -> None:
        self.send(Request.SET_VRING_NUM, VringState(index, QUEUE_SIZE).encode())
        self.send(Request.SET_VRING_ADDR,
                  self.vring_addr(index, VHOST_VRING_F_LOG if log else 0).encode())
        self.send(Request.SET_VRING_BASE, VringState(index, base).encode())
        self.send(Request.SET_VRING_CALL, index.to_bytes(8, "little"), [self.call[index]])
        self.send(Request.SET_VRING_KICK, index.to_bytes(8, "little"), [self.kick[index]])
        self.send(Request.SET_VRING_ENABLE, VringState(index, 1).encode())

    def set_log(self, pages: int) -> int:
        """Share a dirty log covering ``pages`` pages; return its descriptor."""
        size = (pages + 7) // 8
        self.log_fd = memfd(max(size, 4096), "dirty-log")
        self.ask(Request.SET_LOG_BASE, LogArea(size, 0).encode(), [self.log_fd])
        return self.log_fd

    # -- the guest driver -----------------------------------------------------------------
    def post_rx(self, count: int) -> None:
        for _ in range(count):
            addr = self.allocator.alloc(BUFFER)
            head = self.rx.add_buffer([], [(addr, BUFFER)])
            self.rx_buffers[head] = addr
        self.rx.kick_prepare()

    def received(self) -> list[bytes]:
        frames = []
        while (used := self.rx.get_used()) is not None:
            data = self.memory.read(self.rx_buffers.pop(used.head), used.length)
            assert int.from_bytes(data[10:12], "little") == 1  # num_buffers
            frames.append(data[NET_HDR_SIZE:])
        return frames

    def transmit(self, frame: bytes) -> None:
        addr = self.allocator.alloc(NET_HDR_SIZE + len(frame))
        self.memory.write(addr, bytes(NET_HDR_SIZE) + frame)
        self.tx.add_buffer([(addr, NET_HDR_SIZE + len(frame))])
        self.tx.kick_prepare()
        os.eventfd_write(self.kick[1], 1)

    def reconnect(self, path: str) -> None:
        """A new connection for the same guest (QEMU restarted its chardev): RAM and rings
        stay as the guest left them."""
        self.sock.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)

    def calls(self, index: int) -> int:
        try:
            return os.eventfd_read(self.call[index])
        except BlockingIOError:
            return 0

    def close(self) -> None:
        self.sock.close()
        self.memory.close()
        for fd in [self.ram_fd, *self.kick, *self.call, *self.extra] + (
                [self.log_fd] if self.log_fd else []):
            os.close(fd)
