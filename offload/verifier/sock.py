"""Reads through a socket pointer: the fields of ``struct bpf_sock`` a program may see.

A socket from ``bpf_sk_lookup_tcp``/``_udp`` (``sock``) or ``bpf_skc_lookup_tcp``
(``sock_common``, which may be a request or time-wait socket) is read-only, and only at the
offsets and sizes the kernel's ``bpf_sock_is_valid_access`` allows (include/uapi/linux/bpf.h
gives the layout): every field whole as a u32; the narrow reads (1, 2 or 4 bytes at a
multiple of their size) of ``family``, ``type``, ``protocol``, ``src_port``, ``state``,
``rx_queue_mapping`` at the field's start and anywhere inside the addresses; ``dst_port`` (a
16-bit field) as 1 or 2 bytes, or as the u32 at its offset; never the padding after it, never
8 bytes. A ``sock_common`` has no ``type``, ``protocol``, ``mark`` or ``priority`` (the
kernel's ``bpf_sock_common_is_valid_access``).
"""

from __future__ import annotations

from .reject import Reject
from .state import TYPE_NAMES, Reg, RegType

#: ``sizeof(struct bpf_sock)``
BPF_SOCK_SIZE = 80
_U32 = 4
# field offsets of struct bpf_sock
FAMILY, TYPE, PROTOCOL, PRIORITY = 4, 8, 12, 20
SRC_IP4, SRC_IP6, SRC_PORT, DST_PORT, DST_IP4, DST_IP6 = 24, 28, 44, 48, 52, 56
STATE, RX_QUEUE_MAPPING = 72, 76
#: fields read narrowly only at their first byte
_NARROW_AT_START = frozenset({STATE, FAMILY, TYPE, PROTOCOL, SRC_PORT, RX_QUEUE_MAPPING})
#: byte ranges anywhere in which a narrow read is allowed: the addresses
_NARROW_RANGES = ((SRC_IP4, SRC_IP4 + 4), (SRC_IP6, SRC_IP6 + 16), (DST_IP4, DST_IP4 + 4),
                  (DST_IP6, DST_IP6 + 16))


def _narrow_ok(size: int, field_size: int) -> bool:
    """A read of a power-of-two size no larger than the field (``bpf_ctx_narrow_access_ok``)."""
    return size <= field_size and size & (size - 1) == 0


def sock_read_ok(off: int, size: int, common: bool) -> bool:
    """Whether ``size`` bytes at ``off`` of ``struct bpf_sock`` may be read."""
    if off < 0 or off >= BPF_SOCK_SIZE or size <= 0 or off % size:
        return False
    if common and TYPE <= off < PRIORITY + _U32:
        return False
    if off in _NARROW_AT_START or any(lo <= off < hi for lo, hi in _NARROW_RANGES):
        return _narrow_ok(size, _U32)
    if DST_PORT <= off < DST_PORT + 2:
        return _narrow_ok(size, _U32 if size == _U32 else 2)
    if DST_PORT + 2 <= off < DST_IP4:
        return False
    return size == _U32


def check_sock_access(regno: int, ptr: Reg, off: int, size: int) -> None:
    """A load of ``size`` bytes at ``off`` through a socket pointer (``check_sock_access``)."""
    if ptr.var.smin < 0:
        raise Reject(f"R{regno} min value is negative, either use unsigned index or do a "
                     "if (index >=0) check.")
    fixed = ptr.off + off
    if not ptr.var.is_const or not sock_read_ok(fixed + ptr.var.value, size,
                                                ptr.type == RegType.PTR_TO_SOCK_COMMON):
        raise Reject(f"R{regno} invalid {TYPE_NAMES[ptr.type]} access off={fixed} "
                     f"size={size}")
