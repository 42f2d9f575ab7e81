"""The frame buffer an XDP program works on: headroom, metadata, data, tailroom.

One bytearray per frame, laid out as the kernel lays out an ``xdp_buff``: ``data_hard_start``
at 0, a reserved ``struct xdp_frame`` area, headroom, optional metadata right before ``data``,
the packet up to ``data_end``, and a tailroom whose end keeps room for ``skb_shared_info``.
The ``adjust_*`` methods apply the kernel's rules (net/core/filter.c: bpf_xdp_adjust_head,
bpf_xdp_adjust_tail, bpf_xdp_adjust_meta) and return 0 or a negative errno as the helpers do.
"""

from __future__ import annotations

import errno

from .xdp import XDP_PACKET_HEADROOM

ETH_HLEN = 14
#: sizeof(struct xdp_frame) on 64-bit kernels: the bytes at data_hard_start adjust_head keeps.
XDP_FRAME_SIZE = 40
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86_64: tailroom no adjust_tail may use.
SHARED_INFO_SIZE = 320
#: The largest metadata area (xdp_metalen_invalid).
XDP_META_MAX = 32
PAGE_SIZE = 4096


class XdpBuffer:
    """A frame in its buffer; offsets are into ``buffer``."""

    __slots__ = ("buffer", "data", "data_end", "data_meta", "frame_size")

    def __init__(self, frame: bytes, *, headroom: int = XDP_PACKET_HEADROOM,
                 meta: bytes = b"") -> None:
        end = headroom + len(frame)
        size = PAGE_SIZE if end + SHARED_INFO_SIZE <= PAGE_SIZE else \
            -(-(end + SHARED_INFO_SIZE) // PAGE_SIZE) * PAGE_SIZE
        buffer = bytearray(size)
        buffer[headroom:end] = frame
        self.buffer = buffer
        self.frame_size = size
        self.data = headroom
        self.data_end = end
        self.data_meta = headroom
        if meta:
            if len(meta) > XDP_META_MAX or len(meta) % 4 or headroom - len(meta) < XDP_FRAME_SIZE:
                raise ValueError("metadata must be at most 32 bytes, a multiple of 4, and fit "
                                 "in the headroom")
            self.data_meta = headroom - len(meta)
            buffer[self.data_meta:headroom] = meta

    @property
    def frame(self) -> bytes:
        return bytes(self.buffer[self.data:self.data_end])

    @property
    def metadata(self) -> bytes:
        return bytes(self.buffer[self.data_meta:self.data])

    @property
    def hard_end(self) -> int:
        return self.frame_size - SHARED_INFO_SIZE

    def __len__(self) -> int:
        return self.data_end - self.data

    def adjust_head(self, delta: int) -> int:
        """Move ``data`` by delta (negative grows the frame at its front); metadata follows."""
        metalen = self.data - self.data_meta
        data = self.data + delta
        if data < XDP_FRAME_SIZE + metalen or data > self.data_end - ETH_HLEN:
            return -errno.EINVAL
        if metalen:
            self.buffer[self.data_meta + delta:data] = self.buffer[self.data_meta:self.data]
        self.data_meta += delta
        self.data = data
        return 0

    def adjust_tail(self, delta: int) -> int:
        """Move ``data_end`` by delta; grown bytes are zeroed (they may hold old data)."""
        data_end = self.data_end + delta
        if data_end > self.hard_end or data_end < self.data + ETH_HLEN:
            return -errno.EINVAL
        if delta > 0:
            self.buffer[self.data_end:data_end] = bytes(delta)
        self.data_end = data_end
        return 0

    def adjust_meta(self, delta: int) -> int:
        """Move ``data_meta`` by delta: the metadata area ends at ``data``."""
        meta = self.data_meta + delta
        if meta < XDP_FRAME_SIZE or meta > self.data:
            return -errno.EINVAL
        metalen = self.data - meta
        if metalen > XDP_META_MAX or metalen % 4:
            return -errno.EACCES
        self.data_meta = meta
        return 0
