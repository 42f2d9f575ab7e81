"""KernelBackend specifics: handle translation both ways, pinned runs, what a test run cannot
report, and cleanup. The behaviour shared with the built-in backend is in
tests/offload/backends/test_backend_contract.py."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from offload.backends.kernel import KernelBackend, host_capabilities
from offload.errors import ErrnoError
from offload.isa import Instruction, assemble
from offload.isa.opcodes import LDDW, PseudoSrc
from offload.maps.spec import MapSpec
from offload.uapi import AttachType, MapType, ProgType, XdpAction

pytestmark = pytest.mark.usefixtures("kernel")
FRAME = bytes(14) + b"\x45" + bytes(45)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


@pytest.fixture
def backend():
    with KernelBackend() as live:
        yield live


def load(backend: KernelBackend, handle: int, text: str, **kwargs) -> None:
    backend.load_program(handle, assemble(text), prog_type=ProgType.XDP, name="t",
                         license="GPL", **kwargs)


def test_lddw_handles_become_kernel_fds(backend):
    m = backend.create_map(7, MapSpec("g", MapType.ARRAY, 4, 8, 1))
    insns = [Instruction(LDDW, dst=1, src=PseudoSrc.MAP_FD, imm=7),
             Instruction(LDDW, dst=1, src=PseudoSrc.MAP_IDX, imm=7),
             Instruction(LDDW, dst=1, src=PseudoSrc.MAP_VALUE, imm=7, next_imm=4),
             Instruction(LDDW, dst=1, src=PseudoSrc.MAP_IDX_VALUE, imm=7, next_imm=2),
             Instruction(LDDW, dst=1, src=PseudoSrc.IMM64, imm=7)]
    out = backend.kernel_instructions(insns)
    assert [(i.src, i.imm, i.next_imm) for i in out] == [
        (PseudoSrc.MAP_FD, m.fd, 0), (PseudoSrc.MAP_FD, m.fd, 0),
        (PseudoSrc.MAP_VALUE, m.fd, 4), (PseudoSrc.MAP_VALUE, m.fd, 2), (PseudoSrc.IMM64, 7, 0)]
    with pytest.raises(ErrnoError) as caught:
        backend.kernel_instructions([Instruction(LDDW, dst=1, src=PseudoSrc.MAP_FD, imm=8)])
    assert caught.value.errno == errno.EBADF and "instruction 0" in str(caught.value)


def test_map_in_map_values_are_device_handles(backend):
    inner = MapSpec("inner", MapType.HASH, 4, 1, 4)
    outer = backend.create_map(1, MapSpec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 2, inner=inner))
    backend.create_map(50, inner)
    outer.update(u32(1), u32(50))
    assert outer.lookup(u32(1)) == u32(50)
    assert dict(outer.items()) == {u32(1): u32(50)}
    with pytest.raises(ErrnoError) as caught:
        outer.update(u32(0), u32(51))
    assert caught.value.errno == errno.EBADF


def test_devmap_program_field_is_a_device_handle(backend):
    tx = backend.create_map(1, MapSpec("tx", MapType.DEVMAP, 4, 8, 4))
    load(backend, 20, "mov %r0, 2\nexit", expected_attach_type=AttachType.XDP_DEVMAP)
    tx.update(u32(0), u32(1) + u32(20))  # ifindex 1 (lo) and program handle 20
    assert tx.lookup(u32(0)) == u32(1) + u32(20)
    tx.update(u32(1), u32(1) + u32(0))
    assert tx.lookup(u32(1)) == u32(1) + u32(0)


def test_per_cpu_writes_land_in_the_slot_of_the_queue_cpu(backend):
    stats = backend.create_map(1, MapSpec("pc", MapType.PERCPU_ARRAY, 4, 8, 1))
    load(backend, 10, "stw [%r10-4], 0\nlddw %r1, map_fd(1)\nmov %r2, %r10\nadd %r2, -4\n"
                      "call 1\njeq %r0, 0, +2\nmov %r1, 1\nlock add [%r0+0], %r1\n"
                      "mov %r0, 2\nexit")
    for _ in range(3):
        assert backend.run_xdp(10, FRAME, rx_queue_index=0).action == XdpAction.PASS
    copies = stats.live.lookup_percpu(u32(0))
    assert len(copies) == backend.ncpus
    assert copies[0] == (3).to_bytes(8, "little")
    assert all(copy == bytes(8) for copy in copies[1:])


def test_redirect_target_is_not_reported(backend):
    load(backend, 10, "mov %r1, 1\nmov %r2, 0\ncall 23\nexit")
    out = backend.run_xdp(10, FRAME)
    assert out.action == XdpAction.REDIRECT
    assert (out.redirect_ifindex, out.redirect_program, out.trace) == (None, None, ())


def test_repeated_test_runs_report_a_duration(backend):
    load(backend, 10, "mov %r0, 1\nexit")
    result = backend.test_run(10, FRAME, repeat=1000)
    assert (result.retval, result.repeat) == (XdpAction.DROP, 1000)
    assert result.duration_ns >= 0


def test_capabilities_limit_map_types(backend):
    assert backend.caps == host_capabilities()
    narrow = replace(host_capabilities(), name="narrow",
                     map_types=frozenset({MapType.ARRAY}))
    with KernelBackend(narrow) as limited:
        with pytest.raises(ErrnoError) as caught:
            limited.create_map(1, MapSpec("h", MapType.HASH, 4, 4, 1))
        assert caught.value.errno == errno.EOPNOTSUPP
        assert not limited.maps


def test_close_releases_every_descriptor():
    backend = KernelBackend()
    m = backend.create_map(1, MapSpec("a", MapType.ARRAY, 4, 4, 1))
    load(backend, 10, "mov %r0, 2\nexit")
    program = backend.programs[10]
    backend.close()
    assert m.live.closed and program.closed
    assert not backend.maps and not backend.programs
    with pytest.raises(ErrnoError) as caught:
        backend.run_xdp(10, FRAME)
    assert caught.value.errno == errno.EBADF


def test_frames_shorter_than_an_ethernet_header_are_einval(backend):
    load(backend, 10, "mov %r0, 2\nexit")
    with pytest.raises(ErrnoError) as caught:
        backend.run_xdp(10, bytes(13))
    assert caught.value.errno == errno.EINVAL
