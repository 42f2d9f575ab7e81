"""The vhost-user wire format (QEMU docs/interop/vhost-user.rst): requests, flags, payloads.

A message is a 12-byte header - ``request`` (u32), ``flags`` (u32: version 1 in the low two
bits, bit 2 REPLY, bit 3 NEED_REPLY), ``size`` (u32, the payload's length) - then the payload,
all in the host's byte order. File descriptors travel beside a message as SCM_RIGHTS ancillary
data (memory regions, the dirty log, kick/call/err eventfds). This module only encodes and
decodes; every value a front-end sends is checked here for shape (payload size, field ranges)
and by :mod:`.session` for meaning (order, state), so nothing malformed reaches the queues.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from ..errors import OffloadError

HEADER = struct.Struct("=III")
VERSION = 1
#: The largest payload this back-end reads: a memory table of 8 regions is 8 + 8 * 32 bytes,
#: a config space access 12 + 256. Anything larger is refused before it is read.
MAX_PAYLOAD = 4096
MAX_FDS = 8  # VHOST_MEMORY_BASELINE_NREGIONS: at most 8 descriptors per message
MAX_REGIONS = 8
VRING_INDEX_MASK = 0xFF  # bits 0-7 of a kick/call/err payload: the vring index
VRING_NOFD_MASK = 1 << 8  # bit 8: no descriptor, poll instead
LOG_PAGE = 0x1000  # VHOST_LOG_PAGE: the dirty log's granule


class VhostUserError(OffloadError):
    """A message the back-end refuses; the connection that sent it is closed."""


class Request(IntEnum):
    """Front-end requests (``enum VhostUserRequest``)."""

    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    SEND_RARP = 19
    NET_SET_MTU = 20
    SET_SLAVE_REQ_FD = 21
    IOTLB_MSG = 22
    SET_VRING_ENDIAN = 23
    GET_CONFIG = 24
    SET_CONFIG = 25
    RESET_DEVICE = 34
    VRING_KICK = 35
    GET_MAX_MEM_SLOTS = 36
    ADD_MEM_REG = 37
    REM_MEM_REG = 38
    SET_STATUS = 39
    GET_STATUS = 40


class MessageFlags(IntFlag):
    VERSION_1 = 1
    REPLY = 1 << 2
    NEED_REPLY = 1 << 3


class ProtocolFeature(IntEnum):
    """Protocol feature bit numbers (``VHOST_USER_PROTOCOL_F_*``)."""

    MQ = 0
    LOG_SHMFD = 1
    RARP = 2
    REPLY_ACK = 3
    MTU = 4
    SLAVE_REQ = 5
    CROSS_ENDIAN = 6
    CRYPTO_SESSION = 7
    PAGEFAULT = 8
    CONFIG = 9
    SLAVE_SEND_FD = 10
    HOST_NOTIFIER = 11
    INFLIGHT_SHMFD = 12
    RESET_DEVICE = 13
    INBAND_NOTIFICATIONS = 14
    CONFIGURE_MEM_SLOTS = 15
    STATUS = 16


#: Feature bit 30 of GET_FEATURES: the back-end speaks the protocol-feature messages.
VHOST_USER_F_PROTOCOL_FEATURES = 30
#: Feature bit 26 (VHOST_F_LOG_ALL): the back-end logs its writes to guest memory.
VHOST_F_LOG_ALL = 26
VHOST_VRING_F_LOG = 1  # SET_VRING_ADDR flags bit 0: log writes to the used ring


@dataclass(frozen=True, slots=True)
class Header:
    request: int
    flags: int
    size: int

    @classmethod
    def decode(cls, data: bytes) -> Header:
        request, flags, size = HEADER.unpack(data)
        if flags & 0x3 != VERSION:
            raise VhostUserError(f"message version {flags & 0x3} (flags {flags:#x}); this "
                                 f"back-end speaks version {VERSION}")
        if size > MAX_PAYLOAD:
            raise VhostUserError(f"request {request} declares a {size}-byte payload, more than "
                                 f"the {MAX_PAYLOAD} bytes any request needs")
        return cls(request, flags, size)

    @property
    def need_reply(self) -> bool:
        return bool(self.flags & MessageFlags.NEED_REPLY)


def request_name(request: int) -> str:
    try:
        return f"VHOST_USER_{Request(request).name}"
    except ValueError:
        return f"request {request}"


def encode(request: int, payload: bytes = b"", *, reply: bool = False,
           need_reply: bool = False) -> bytes:
    flags = VERSION | (MessageFlags.REPLY if reply else 0) | (
        MessageFlags.NEED_REPLY if need_reply else 0)
    return HEADER.pack(request, int(flags), len(payload)) + payload


# ------------------------------------------------------------------------------ payloads
U64 = struct.Struct("=Q")
STATE = struct.Struct("=II")
ADDR = struct.Struct("=IIQQQQ")
REGION = struct.Struct("=QQQQ")
MEMORY_HEAD = struct.Struct("=II")
LOG = struct.Struct("=QQ")


def _exact(name: str, payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise VhostUserError(f"{name}: payload of {len(payload)} bytes, expected {size}")


def u64(name: str, payload: bytes) -> int:
    _exact(name, payload, U64.size)
    return U64.unpack(payload)[0]


@dataclass(frozen=True, slots=True)
class VringState:
    """``struct vhost_vring_state``: a ring index and a number (size, base, enable)."""

    index: int
    num: int

    @classmethod
    def decode(cls, name: str, payload: bytes) -> VringState:
        _exact(name, payload, STATE.size)
        return cls(*STATE.unpack(payload))

    def encode(self) -> bytes:
        return STATE.pack(self.index, self.num)


@dataclass(frozen=True, slots=True)
class VringAddr:
    """``struct vhost_vring_addr``: the three ring areas as front-end (user) addresses, and
    the guest address of the used ring for the dirty log."""

    index: int
    flags: int
    desc: int
    used: int
    avail: int
    log: int

    @classmethod
    def decode(cls, name: str, payload: bytes) -> VringAddr:
        _exact(name, payload, ADDR.size)
        index, flags, desc, used, avail, log = ADDR.unpack(payload)
        if flags & ~VHOST_VRING_F_LOG:
            raise VhostUserError(f"{name}: unknown vring flags {flags:#x}")
        return cls(index, flags, desc, used, avail, log)

    def encode(self) -> bytes:
        return ADDR.pack(self.index, self.flags, self.desc, self.used, self.avail, self.log)


@dataclass(frozen=True, slots=True)
class Region:
    """One ``VhostUserMemoryRegion``: guest-physical and user base, size, offset in its fd."""

    guest_addr: int
    size: int
    user_addr: int
    mmap_offset: int

    def encode(self) -> bytes:
        return REGION.pack(self.guest_addr, self.size, self.user_addr, self.mmap_offset)


def decode_memory_table(payload: bytes) -> tuple[Region, ...]:
    """SET_MEM_TABLE's payload: a count, padding and that many regions (at most 8)."""
    name = "VHOST_USER_SET_MEM_TABLE"
    if len(payload) < MEMORY_HEAD.size:
        raise VhostUserError(f"{name}: payload of {len(payload)} bytes has no region count")
    count, _ = MEMORY_HEAD.unpack_from(payload)
    if not 0 < count <= MAX_REGIONS:
        raise VhostUserError(f"{name}: {count} regions; a table holds 1 to {MAX_REGIONS}")
    need = MEMORY_HEAD.size + count * REGION.size
    if len(payload) < need:
        raise VhostUserError(f"{name}: {count} regions need {need} bytes, the payload has "
                             f"{len(payload)}")
    return tuple(Region(*REGION.unpack_from(payload, MEMORY_HEAD.size + i * REGION.size))
                 for i in range(count))


def encode_memory_table(regions: tuple[Region, ...] | list[Region]) -> bytes:
    return MEMORY_HEAD.pack(len(regions), 0) + b"".join(r.encode() for r in regions)


@dataclass(frozen=True, slots=True)
class LogArea:
    """SET_LOG_BASE's payload with LOG_SHMFD: the log's size and its offset in the fd."""

    size: int
    offset: int

    @classmethod
    def decode(cls, payload: bytes) -> LogArea:
        _exact("VHOST_USER_SET_LOG_BASE", payload, LOG.size)
        return cls(*LOG.unpack(payload))

    def encode(self) -> bytes:
        return LOG.pack(self.size, self.offset)
