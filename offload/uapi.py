"""The kernel UAPI numbers every layer shares, defined once.

Values follow include/uapi/linux/bpf.h, include/uapi/linux/if_link.h and the virtio headers
(include/uapi/linux/virtio_config.h, virtio_net.h). Each enum is named after the kernel's and
its members drop the kernel's common prefix: ``MapType.HASH`` is ``BPF_MAP_TYPE_HASH``,
``XdpFlags.HW_MODE`` is ``XDP_FLAGS_HW_MODE``, ``UpdateFlags.NOEXIST`` is ``BPF_NOEXIST``.

This module is the bottom of the ``offload`` layers: it imports nothing from the project, so
any package may use it (docs/architecture.md).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class MapType(IntEnum):
    """``enum bpf_map_type``."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33

    @property
    def is_percpu(self) -> bool:
        return self in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                        MapType.PERCPU_CGROUP_STORAGE)

    @property
    def is_map_in_map(self) -> bool:
        return self in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


class MapFlags(IntFlag):
    """``map_flags`` of BPF_MAP_CREATE (``BPF_F_NO_PREALLOC`` ... ``BPF_F_INNER_MAP``)."""

    NONE = 0
    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    STACK_BUILD_ID = 1 << 5
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    CLONE = 1 << 9
    MMAPABLE = 1 << 10
    PRESERVE_ELEMS = 1 << 11
    INNER_MAP = 1 << 12


class UpdateFlags(IntEnum):
    """``flags`` of BPF_MAP_UPDATE_ELEM: BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    F_LOCK = 4


#: ``flags`` of bpf_perf_event_output: the index of the array slot (BPF_F_INDEX_MASK), all ones
#: for the running CPU's (BPF_F_CURRENT_CPU), and how much of the context to append
#: (BPF_F_CTXLEN_MASK).
BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_CTXLEN_MASK = 0xFFFFF << 32


class ProgType(IntEnum):
    """``enum bpf_prog_type`` (the ones an object file commonly names)."""

    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    CGROUP_SOCK = 9
    LWT_IN = 10
    LWT_OUT = 11
    LWT_XMIT = 12
    SOCK_OPS = 13
    SK_SKB = 14
    CGROUP_DEVICE = 15
    SK_MSG = 16
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    LWT_SEG6LOCAL = 19
    LIRC_MODE2 = 20
    SK_REUSEPORT = 21
    FLOW_DISSECTOR = 22
    CGROUP_SYSCTL = 23
    RAW_TRACEPOINT_WRITABLE = 24
    CGROUP_SOCKOPT = 25
    TRACING = 26
    STRUCT_OPS = 27
    EXT = 28
    LSM = 29
    SK_LOOKUP = 30
    SYSCALL = 31
    NETFILTER = 32


class ProgFlags(IntEnum):
    """``prog_flags`` of BPF_PROG_LOAD that matter here (BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS)."""

    NONE = 0
    SLEEPABLE = 1 << 4
    XDP_HAS_FRAGS = 1 << 5


class AttachType(IntEnum):
    """``enum bpf_attach_type``, the values used here: XDP's (``expected_attach_type`` of
    programs run from DEVMAP and CPUMAP entries) and those the kernel probe loads need."""

    NONE = 0
    CGROUP_INET4_CONNECT = 10
    CGROUP_GETSOCKOPT = 21
    XDP_DEVMAP = 33
    XDP_CPUMAP = 35
    SK_LOOKUP = 36
    XDP = 37
    NETFILTER = 45


class XdpAction(IntEnum):
    """``enum xdp_action``: what the program asks the device to do with the frame."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


class XdpFlags(IntFlag):
    """``XDP_FLAGS_*`` of include/uapi/linux/if_link.h (IFLA_XDP_FLAGS)."""

    NONE = 0
    UPDATE_IF_NOEXIST = 1 << 0
    SKB_MODE = 1 << 1
    DRV_MODE = 1 << 2
    HW_MODE = 1 << 3
    REPLACE = 1 << 4
    #: XDP_FLAGS_MODES and XDP_FLAGS_MASK
    MODES = SKB_MODE | DRV_MODE | HW_MODE
    MASK = UPDATE_IF_NOEXIST | MODES | REPLACE


class XdpMode(IntEnum):
    """Where an XDP program runs: one of the ``XDP_FLAGS_*_MODE`` bits."""

    SKB = int(XdpFlags.SKB_MODE)
    DRV = int(XdpFlags.DRV_MODE)
    HW = int(XdpFlags.HW_MODE)


class CoreReloKind(IntEnum):
    """``enum bpf_core_relo_kind``: what a CO-RE record asks."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


class VirtioFeature(IntEnum):
    """Virtio feature bit numbers this transport knows (virtio 1.2 sections 2.2, 5.1.3, 6).

    VIRTIO_NET_F_BPF_OFFLOAD (58) is this project's own bit; docs/virtio-offload.md gives the
    reasoning behind the number.
    """

    VIRTIO_NET_F_MAC = 5  # 5.1.3: the device config space has a valid MAC address
    VIRTIO_NET_F_CTRL_VQ = 17  # 5.1.3: a control virtqueue exists
    VIRTIO_F_INDIRECT_DESC = 28  # 6: VIRTQ_DESC_F_INDIRECT may be used
    VIRTIO_F_EVENT_IDX = 29  # 6: used_event / avail_event notification suppression
    VIRTIO_F_VERSION_1 = 32  # 6: virtio 1.x semantics, little-endian everywhere
    VIRTIO_NET_F_BPF_OFFLOAD = 58  # this project: the VIRTIO_NET_CTRL_BPF control class


__all__ = [
    "BPF_F_CTXLEN_MASK", "BPF_F_CURRENT_CPU", "BPF_F_INDEX_MASK", "AttachType", "CoreReloKind",
    "MapFlags", "MapType", "ProgFlags", "ProgType", "UpdateFlags", "VirtioFeature",
    "XdpAction", "XdpFlags", "XdpMode",
]
