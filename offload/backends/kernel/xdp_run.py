"""Running an XDP program on one packet in the kernel: BPF_PROG_TEST_RUN.

The kernel builds an ``xdp_buff`` from ``data_in`` (at least an Ethernet header), runs the
program ``repeat`` times and reports the last return value, the packet as the program left it
and ``duration``, the mean nanoseconds per run. ``struct xdp_md`` goes in and out as ``ctx``:
on input ``data`` is the length of the metadata at the front of ``data_in``, ``data_meta`` must
be 0 and ``data_end`` the input length (net/bpf/test_run.c); the output packet starts at
``data_meta``, so the output context tells where metadata ends and the packet begins.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass

from ...errors import ErrnoError
from ...uapi import XdpAction
from .attr import TestRunAttr, XdpMdStruct
from .programs import KernelProgram
from .syscall import BpfCmd, bpf

ETH_HLEN = 14
#: Room for growth beyond the input (bpf_xdp_adjust_head/tail can add at most a page).
OUT_SLACK = 4096
#: Metadata must be a multiple of 4 bytes, at most 32 (xdp_metalen_invalid).
MAX_META = 32


@dataclass(frozen=True, slots=True)
class XdpRunResult:
    """The outcome of a test run: ``retval`` as returned, the packet and metadata after it."""

    retval: int
    data: bytes
    meta: bytes
    duration_ns: int
    repeat: int
    ingress_ifindex: int = 0
    rx_queue_index: int = 0

    @property
    def action(self) -> XdpAction | None:
        """The XDP action, or None when the program returned something else."""
        try:
            return XdpAction(self.retval)
        except ValueError:
            return None


def run_xdp(program: KernelProgram, data: bytes | bytearray | memoryview, *, repeat: int = 1,
            meta: bytes = b"", ingress_ifindex: int = 0, rx_queue_index: int = 0,
            out_size: int | None = None) -> XdpRunResult:
    """Run ``program`` on ``data`` (with ``meta`` in front as XDP metadata).

    ``ingress_ifindex`` and ``rx_queue_index`` must name a real interface and queue of the host
    (0 for none); ``out_size`` bounds the output buffer (default: input plus a page).
    """
    packet = bytes(meta) + bytes(data)
    what = program.describe()
    if len(data) < ETH_HLEN:
        raise ErrnoError(errno.EINVAL, f"an XDP test run of {what} needs at least {ETH_HLEN} "
                                       f"bytes of packet (an Ethernet header), got {len(data)}")
    if len(meta) % 4 or len(meta) > MAX_META:
        raise ErrnoError(errno.EINVAL, f"XDP metadata must be a multiple of 4 bytes and at most "
                                       f"{MAX_META}, got {len(meta)}")
    if not 0 <= repeat <= 0xFFFFFFFF:
        raise ErrnoError(errno.EINVAL, f"repeat {repeat} does not fit in 32 bits")
    if not (0 <= ingress_ifindex <= 0xFFFFFFFF and 0 <= rx_queue_index <= 0xFFFFFFFF):
        raise ErrnoError(errno.EINVAL, "ingress_ifindex and rx_queue_index must fit in 32 bits")
    size_out = out_size if out_size is not None else len(packet) + OUT_SLACK
    if not 0 < size_out <= 0xFFFFFFFF:
        raise ErrnoError(errno.EINVAL, f"out_size {size_out} must be 1..2^32-1")
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(size_out)
    ctx_in = XdpMdStruct(data=len(meta), data_end=len(packet), ingress_ifindex=ingress_ifindex,
                         rx_queue_index=rx_queue_index)
    ctx_out = XdpMdStruct()
    attr = TestRunAttr(
        prog_fd=program.fd, data_size_in=len(packet), data_size_out=size_out,
        data_in=ctypes.addressof(data_in), data_out=ctypes.addressof(data_out), repeat=repeat,
        ctx_size_in=ctypes.sizeof(ctx_in), ctx_size_out=ctypes.sizeof(ctx_out),
        ctx_in=ctypes.addressof(ctx_in), ctx_out=ctypes.addressof(ctx_out))
    bpf(BpfCmd.PROG_TEST_RUN, attr, what=what)
    out = data_out.raw[:attr.data_size_out]
    meta_len = min(ctx_out.data, len(out))
    return XdpRunResult(retval=attr.retval, data=out[meta_len:], meta=out[:meta_len],
                        duration_ns=attr.duration, repeat=max(repeat, 1),
                        ingress_ifindex=ctx_out.ingress_ifindex,
                        rx_queue_index=ctx_out.rx_queue_index)
