"""The XDP program interface: actions and the ``struct xdp_md`` context (include/uapi/linux/bpf.h).

Programs see ``xdp_md`` as six 32-bit fields; ``data``, ``data_end`` and ``data_meta`` read as
packet pointers although the fields are 32 bits wide (the kernel rewrites those loads). The
verifier allows exactly these offsets, the engine serves them.
"""

from __future__ import annotations

from enum import IntEnum


class XdpMd(IntEnum):
    """Field offsets of ``struct xdp_md``; every field is 4 bytes."""

    DATA = 0
    DATA_END = 4
    DATA_META = 8
    INGRESS_IFINDEX = 12
    RX_QUEUE_INDEX = 16
    EGRESS_IFINDEX = 20


XDP_MD_SIZE = 24
#: Fields that read as packet pointers rather than plain numbers.
XDP_MD_POINTER_FIELDS = (XdpMd.DATA, XdpMd.DATA_END, XdpMd.DATA_META)
#: Headroom the device reserves in front of every frame (XDP_PACKET_HEADROOM).
XDP_PACKET_HEADROOM = 256
