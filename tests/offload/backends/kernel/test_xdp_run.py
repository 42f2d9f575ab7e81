"""BPF_PROG_TEST_RUN for XDP: actions, packets out, metadata, context and errors."""

from __future__ import annotations

import errno

import pytest

from offload.backends.kernel import BpfSyscallError, load_program, run_xdp
from offload.errors import ErrnoError
from offload.isa import assemble
from offload.uapi import XdpAction

from .skipping import require_kernel

pytestmark = pytest.mark.usefixtures("kernel")

# Drops frames whose first byte is 0xff, else writes 0x42 into byte 13 and passes them.
FILTER = """
    ldxw %r2, [%r1+0]
    ldxw %r3, [%r1+4]
    mov %r4, %r2
    add %r4, 14
    jgt %r4, %r3, drop
    ldxb %r5, [%r2+0]
    jeq %r5, 0xff, drop
    stb [%r2+13], 0x42
    mov %r0, 2
    exit
drop:
    mov %r0, 1
    exit
"""


@pytest.fixture(scope="module")
def filter_program():
    require_kernel()  # module fixtures run before the function-scoped "kernel" fixture
    with load_program(assemble(FILTER), name="filter") as prog:
        yield prog


def test_pass_with_modified_bytes(filter_program) -> None:
    frame = bytes(range(1, 61))
    result = run_xdp(filter_program, frame)
    assert result.action == XdpAction.PASS and result.retval == 2
    assert result.data == frame[:13] + b"\x42" + frame[14:]
    assert result.meta == b"" and result.repeat == 1


def test_drop_leaves_the_packet_alone(filter_program) -> None:
    frame = b"\xff" + bytes(59)
    result = run_xdp(filter_program, frame, repeat=50)
    assert result.action == XdpAction.DROP and result.data == frame
    assert result.repeat == 50 and isinstance(result.duration_ns, int) and result.duration_ns >= 0


def test_adjust_head_and_tail_change_the_length() -> None:
    grow = assemble("mov %r6, %r1\nmov %r2, -4\ncall 44\nmov %r0, 2\nexit")
    trim = assemble("mov %r2, -10\ncall 65\nmov %r0, 2\nexit")
    frame = bytes(range(40))
    with load_program(grow) as prog:
        out = run_xdp(prog, frame).data
        assert len(out) == 44 and out[4:] == frame
    with load_program(trim) as prog:
        assert run_xdp(prog, frame).data == frame[:30]


def test_metadata_in_and_out() -> None:
    # Reads the first metadata word into r0 (bounds-checked against data).
    text = """
        ldxw %r2, [%r1+8]
        ldxw %r3, [%r1+0]
        mov %r4, %r2
        add %r4, 4
        mov %r0, 0
        jgt %r4, %r3, out
        ldxw %r0, [%r2+0]
        stw [%r2+0], 7
    out:
        exit
    """
    with load_program(assemble(text)) as prog:
        result = run_xdp(prog, bytes(20), meta=(3).to_bytes(4, "little") + bytes(4))
        assert result.retval == 3 and result.action == XdpAction.TX
        assert result.meta == (7).to_bytes(4, "little") + bytes(4) and result.data == bytes(20)
        assert run_xdp(prog, bytes(20)).retval == 0  # no metadata: the bound check fails


def test_context_fields_reach_the_program() -> None:
    with load_program(assemble("ldxw %r0, [%r1+12]\nexit")) as prog:
        result = run_xdp(prog, bytes(14), ingress_ifindex=1)  # the loopback device
        assert result.retval == 1 and result.ingress_ifindex == 1
    with load_program(assemble("ldxw %r0, [%r1+16]\nexit")) as prog:
        assert run_xdp(prog, bytes(14), ingress_ifindex=1, rx_queue_index=0).retval == 0
        with pytest.raises(BpfSyscallError) as info:
            run_xdp(prog, bytes(14), ingress_ifindex=1, rx_queue_index=5)  # lo has one queue
        assert info.value.name == "EINVAL" and "rx_queue_index" in str(info.value)


def test_return_values_outside_the_actions() -> None:
    with load_program(assemble("mov %r0, 77\nexit")) as prog:
        result = run_xdp(prog, bytes(14))
        assert result.retval == 77 and result.action is None


def test_bad_arguments_are_refused_before_the_kernel(filter_program) -> None:
    with pytest.raises(ErrnoError, match="at least 14 bytes") as info:
        run_xdp(filter_program, bytes(13))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ErrnoError, match="multiple of 4"):
        run_xdp(filter_program, bytes(14), meta=b"abc")
    with pytest.raises(ErrnoError, match="at most 32"):
        run_xdp(filter_program, bytes(14), meta=bytes(36))
    with pytest.raises(ErrnoError, match="repeat"):
        run_xdp(filter_program, bytes(14), repeat=-1)


def test_kernel_refusals_are_errno_errors(filter_program) -> None:
    with pytest.raises(BpfSyscallError) as info:
        run_xdp(filter_program, bytes(64), out_size=16)
    assert info.value.name == "ENOSPC" and "output buffer" in str(info.value)
    with pytest.raises(BpfSyscallError) as info:
        run_xdp(filter_program, bytes(14), ingress_ifindex=0x7FFFFFF0)  # no such device
    assert info.value.name in ("ENODEV", "EINVAL")
