"""The network-device parts the offload path touches (virtio 1.2 section 5.1).

Queue numbering without VIRTIO_NET_F_MQ (5.1.2), the configuration space layout (5.1.4) and
``struct virtio_net_hdr`` that precedes every frame on the receive and transmit queues (5.1.6;
12 bytes once VIRTIO_F_VERSION_1 is negotiated, ``num_buffers`` included).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from functools import cache

from .errors import VirtioError

RECEIVEQ, TRANSMITQ, CONTROLQ = 0, 1, 2  # 5.1.2, single queue pair

_CONFIG = struct.Struct("<6sH")
_HDR = struct.Struct("<BBHHHHH")
NET_HDR_SIZE = _HDR.size  # 12


class NetHdrError(VirtioError):
    """Bytes that are not a ``virtio_net_hdr`` or config space."""


class NetStatus(IntFlag):
    """``virtio_net_config.status`` (with VIRTIO_NET_F_STATUS)."""

    LINK_UP = 1
    ANNOUNCE = 2


class NetHdrFlags(IntFlag):
    NEEDS_CSUM = 1
    DATA_VALID = 2
    RSC_INFO = 4


class GsoType(IntEnum):
    NONE = 0
    TCPV4 = 1
    UDP = 3
    TCPV6 = 4
    UDP_L4 = 5


@dataclass(frozen=True, slots=True)
class NetConfig:
    """The first fields of ``struct virtio_net_config``: the MAC and the link status."""

    mac: bytes = b"\x52\x54\x00\x12\x34\x56"
    status: int = NetStatus.LINK_UP

    def encode(self) -> bytes:
        if len(self.mac) != 6:
            raise NetHdrError(f"a MAC address has 6 bytes, not {len(self.mac)}")
        return _CONFIG.pack(self.mac, self.status)

    @classmethod
    def decode(cls, data: bytes) -> NetConfig:
        if len(data) < _CONFIG.size:
            raise NetHdrError(f"the config space has {len(data)} bytes, {_CONFIG.size} needed")
        mac, status = _CONFIG.unpack_from(data)
        return cls(mac, status)


@dataclass(frozen=True, slots=True)
class NetHdr:
    """``struct virtio_net_hdr`` (the VERSION_1 layout, 5.1.6)."""

    flags: int = 0
    gso_type: int = GsoType.NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0
    num_buffers: int = 0

    def encode(self) -> bytes:
        try:
            return _HDR.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size,
                             self.csum_start, self.csum_offset, self.num_buffers)
        except struct.error:
            raise NetHdrError(f"{self} has a field that does not fit its width") from None

    @staticmethod
    @cache
    def plain(num_buffers: int = 0) -> bytes:
        """The encoded header of a frame with no offloads (no checksum, GSO_NONE), as the
        device puts before every received frame (5.1.6.4) and the driver before every frame
        it sends: the same bytes each time, so encoded once."""
        return NetHdr(num_buffers=num_buffers).encode()

    @classmethod
    def decode(cls, data: bytes) -> NetHdr:
        if len(data) < NET_HDR_SIZE:
            raise NetHdrError(f"a virtio_net_hdr has {NET_HDR_SIZE} bytes, got {len(data)}")
        return cls(*_HDR.unpack_from(data))
