"""PROG_TEST_RUN over the control queue: BPF_PROG_TEST_RUN's data in and out, return value,
duration and repeat, and the kernel's errnos for hostile requests."""

from __future__ import annotations

import errno

import pytest

from offload.caps import load_profile
from offload.device import build_device
from offload.device.control import TEST_RUN_MAX_DATA
from offload.errors import ErrnoError
from offload.isa import assemble
from offload.uapi import XdpAction
from offload.virtio import bpf_progs as p
from offload.virtio.messages import decode_request, decode_response

# r0 = XDP_DROP if the first byte is 0xff else XDP_PASS; the first byte is then set to 0x42
PROGRAM = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 1
jgt %r4, %r3, out
ldxb %r5, [%r2+0]
mov %r0, 2
jne %r5, 0xff, write
mov %r0, 1
write:
stb [%r2+0], 0x42
exit
out:
mov %r0, 0
exit
"""
FRAME = bytes(range(1, 61))


@pytest.fixture(scope="module")
def pair():
    return build_device("dut", load_profile("full"), seed=1)


@pytest.fixture(scope="module")
def handle(pair):
    return pair.driver.prog_load(assemble(PROGRAM), name="t")


def test_data_in_and_out_retval_and_duration(pair, handle):
    result = pair.driver.prog_test_run(handle, FRAME, repeat=10)
    assert result.retval == XdpAction.PASS
    assert result.data_out == b"\x42" + FRAME[1:]
    assert result.data_size_out == len(FRAME)
    assert result.duration > 0
    dropped = pair.driver.prog_test_run(handle, b"\xff" + FRAME[1:])
    assert dropped.retval == XdpAction.DROP


def test_the_verdict_is_not_acted_on(pair, handle):
    before = pair.device.ports.rx_frames
    pair.driver.prog_test_run(handle, FRAME)
    assert pair.device.ports.rx_frames == before


@pytest.mark.parametrize(("data", "kwargs", "code"), [
    (b"\0" * 13, {}, errno.EINVAL),  # shorter than an Ethernet header
    (b"\0" * (TEST_RUN_MAX_DATA + 1), {}, errno.EINVAL),  # longer than a page allows
    (FRAME, {"data_size_out": 10}, errno.ENOSPC),  # the frame does not fit the room
])
def test_hostile_requests_get_the_kernels_errno(pair, handle, data, kwargs, code):
    with pytest.raises(ErrnoError) as info:
        pair.driver.prog_test_run(handle, data, **kwargs)
    assert info.value.errno == code


def test_flags_and_unknown_handles_are_refused(pair, handle):
    response = pair.driver.command
    with pytest.raises(ErrnoError) as info:
        response(p.ProgTestRunRequest(handle, FRAME, 1, 2))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ErrnoError) as info:
        pair.driver.prog_test_run(9999, FRAME)
    assert info.value.errno in (errno.ENOENT, errno.EBADF)


def test_repeat_zero_runs_once_and_a_huge_repeat_is_interrupted(pair, handle, monkeypatch):
    assert pair.driver.prog_test_run(handle, FRAME, repeat=0).retval == XdpAction.PASS
    monkeypatch.setattr("offload.device.control.TEST_RUN_BUDGET", 0.05)
    with pytest.raises(ErrnoError) as info:
        pair.driver.prog_test_run(handle, FRAME, repeat=0xFFFFFFFF)
    assert info.value.errno == errno.EINTR


def test_message_bytes_are_pinned():
    request = p.ProgTestRunRequest(7, b"\xaa\xbb", 3, 0, 64)
    assert request.encode().hex() == "400e" "07000000" "03000000" "00000000" "40000000" \
                                     "02000000" "aabb"
    assert decode_request(request.encode()) == request
    response = p.ProgTestRunResponse(retval=2, duration=100, data_size_out=2, data_out=b"\x01\x02")
    assert decode_response(p.ProgTestRunResponse.COMMAND, response.encode()) == response
