"""The Backend contract, checked the same way on every backend: the built-in one with each
engine, and the host kernel (skipped, with the reason, where bpf() cannot be used).

What a device may rely on: maps behave as the bpf uAPI says (values, iteration, errnos); a load
either succeeds or is refused with a reason (an OffloadError: VerifierError from the built-in
verifier, KernelVerifierError from the kernel's); handles name objects until freed; and a frame
run through a fixture program gives the same action and bytes wherever it runs.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest

from offload.errors import ErrnoError, OffloadError
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.maps.values import round8
from offload.uapi import MapType, ProgType, UpdateFlags, XdpAction
from service import frames as p

from .backends import FIXTURES, KINDS, close, install, make_backend

U32 = [i.to_bytes(4, "little") for i in range(64)]
U64 = [i.to_bytes(8, "little") for i in range(64)]


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    live = make_backend(request.param)
    yield live
    close(live)


def errno_of(call, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(ErrnoError) as caught:
        call(*args, **kwargs)
    return caught.value.errno


def load(backend: Any, handle: int, text: str) -> Any:
    return backend.load_program(handle, assemble(text), prog_type=ProgType.XDP, name="contract",
                                license="GPL")


# -- maps -----------------------------------------------------------------------------------

def test_hash_map_operations_and_errnos(backend):
    m = backend.create_map(1, MapSpec("h", MapType.HASH, 4, 8, 4))
    m.update(U32[1], U64[10])
    m.update(U32[2], U64[20], UpdateFlags.NOEXIST)
    assert m.lookup(U32[1]) == U64[10]
    assert errno_of(m.update, U32[1], U64[11], UpdateFlags.NOEXIST) == errno.EEXIST
    assert errno_of(m.update, U32[9], U64[9], UpdateFlags.EXIST) == errno.ENOENT
    m.update(U32[1], U64[11], UpdateFlags.EXIST)
    assert m.lookup(U32[1]) == U64[11]
    assert errno_of(m.lookup, U32[7]) == errno.ENOENT
    assert errno_of(m.delete, U32[7]) == errno.ENOENT
    assert errno_of(m.lookup, b"\0" * 3) == errno.EINVAL
    assert errno_of(m.update, U32[3], b"\0" * 7) == errno.EINVAL
    m.update(U32[3], U64[30])
    m.update(U32[4], U64[40])
    assert errno_of(m.update, U32[5], U64[50]) == errno.E2BIG
    m.delete(U32[4])
    assert dict(m.items()) == {U32[1]: U64[11], U32[2]: U64[20], U32[3]: U64[30]}
    seen, key = [], None
    while True:
        try:
            key = m.get_next_key(key)
        except ErrnoError as exc:
            assert exc.errno == errno.ENOENT
            break
        seen.append(key)
    assert sorted(seen) == [U32[1], U32[2], U32[3]]
    assert m.get_next_key(U32[60]) in seen  # a missing key restarts the walk


def test_array_map_operations_and_errnos(backend):
    m = backend.create_map(1, MapSpec("a", MapType.ARRAY, 4, 4, 3))
    assert m.lookup(U32[2]) == bytes(4)
    m.update(U32[2], U32[7])
    assert m.lookup(U32[2]) == U32[7]
    assert errno_of(m.update, U32[0], U32[1], UpdateFlags.NOEXIST) == errno.EEXIST
    assert errno_of(m.update, U32[3], U32[1]) == errno.E2BIG
    assert errno_of(m.lookup, U32[3]) == errno.ENOENT
    assert errno_of(m.delete, U32[0]) == errno.EINVAL
    assert m.get_next_key(None) == U32[0]
    assert m.get_next_key(U32[1]) == U32[2]
    assert errno_of(m.get_next_key, U32[2]) == errno.ENOENT
    assert list(m.items()) == [(U32[0], bytes(4)), (U32[1], bytes(4)), (U32[2], U32[7])]


def test_percpu_values_have_one_padded_copy_per_cpu(backend):
    m = backend.create_map(1, MapSpec("pc", MapType.PERCPU_ARRAY, 4, 4, 2))
    ncpus = backend.ncpus
    assert m.uapi_value_size == round8(4) * ncpus
    blob = b"".join(i.to_bytes(4, "little") + bytes(4) for i in range(1, ncpus + 1))
    m.update(U32[1], blob)
    assert m.lookup(U32[1]) == blob
    assert errno_of(m.update, U32[1], bytes(m.uapi_value_size + 8)) == errno.EINVAL


def test_batches(backend):
    m = backend.create_map(1, MapSpec("b", MapType.HASH, 4, 4, 16))
    assert m.update_batch([(U32[i], U32[i * 2]) for i in range(10)]) == 10
    entries, cursor, done = [], None, False
    while not done:
        batch = m.lookup_batch(cursor, 4)
        entries.extend(batch.entries)
        cursor, done = batch.cursor, batch.done
        if not batch.entries:
            break
    assert dict(entries) == {U32[i]: U32[i * 2] for i in range(10)}
    assert m.delete_batch([U32[0], U32[1]]) == 2
    with pytest.raises(ErrnoError) as caught:
        m.delete_batch([U32[2], U32[40]])
    assert caught.value.errno == errno.ENOENT and caught.value.count == 1
    assert len(dict(m.items())) == 7


def test_freeze_stops_user_writes(backend):
    m = backend.create_map(1, MapSpec("f", MapType.ARRAY, 4, 4, 1))
    m.freeze()
    assert errno_of(m.update, U32[0], U32[1]) == errno.EPERM
    assert m.lookup(U32[0]) == bytes(4)


@pytest.mark.parametrize("spec", [
    MapSpec("k0", MapType.HASH, 0, 4, 1),
    MapSpec("v0", MapType.HASH, 4, 0, 1),
    MapSpec("e0", MapType.ARRAY, 4, 4, 0),
    MapSpec("ak", MapType.ARRAY, 8, 4, 1),
    MapSpec("lpm", MapType.LPM_TRIE, 8, 4, 1),  # LPM tries need BPF_F_NO_PREALLOC
], ids=lambda spec: spec.name)
def test_invalid_map_specs_are_einval(backend, spec):
    assert errno_of(backend.create_map, 1, spec) == errno.EINVAL
    assert errno_of(backend.map, 1) == errno.EBADF


def test_handles(backend):
    backend.create_map(1, MapSpec("a", MapType.ARRAY, 4, 4, 1))
    assert errno_of(backend.create_map, 1, MapSpec("b", MapType.ARRAY, 4, 4, 1)) == errno.EEXIST
    assert errno_of(load, backend, 1, "mov %r0, 2\nexit") == errno.EEXIST
    backend.free_map(1)
    assert errno_of(backend.free_map, 1) == errno.EBADF
    assert errno_of(backend.unload_program, 5) == errno.EBADF
    assert errno_of(backend.run_xdp, 5, bytes(64)) == errno.EBADF


def test_prog_array_holds_program_handles(backend):
    jt = backend.create_map(1, MapSpec("jt", MapType.PROG_ARRAY, 4, 4, 2))
    load(backend, 10, "mov %r0, 1\nexit")
    jt.update(U32[0], (10).to_bytes(4, "little"))
    assert jt.lookup(U32[0]) == (10).to_bytes(4, "little")
    assert errno_of(jt.update, U32[1], (77).to_bytes(4, "little")) == errno.EBADF
    assert errno_of(jt.lookup, U32[1]) == errno.ENOENT


# -- programs -------------------------------------------------------------------------------

def test_load_run_unload(backend):
    report = load(backend, 10, "mov %r0, 1\nexit")
    assert report.insns_processed >= 2
    out = backend.run_xdp(10, bytes(60))
    assert (out.action, out.data) == (XdpAction.DROP, bytes(60))
    backend.unload_program(10)
    assert errno_of(backend.run_xdp, 10, bytes(60)) == errno.EBADF


@pytest.mark.parametrize("text", [
    "exit",  # R0 !read_ok
    "ldxdw %r0, [%r10-520]\nmov %r0, 2\nexit",  # below the 512-byte frame
    "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nmov %r0, 2\nexit",  # packet without bounds check
    "ldxdw %r0, [%r1+0]\nexit",  # wide context load
    "mov %r0, 2\nja -1",  # infinite loop
    "lddw %r1, map_fd(9)\nmov %r0, 2\nexit",  # no such map
], ids=["uninit-r0", "stack", "packet", "ctx", "loop", "no-map"])
def test_unsafe_programs_are_refused_with_a_reason(backend, text):
    with pytest.raises(OffloadError) as caught:
        load(backend, 10, text)
    assert str(caught.value).strip()
    assert errno_of(backend.run_xdp, 10, bytes(60)) == errno.EBADF


def test_map_value_lddw_reaches_the_map(backend):
    m = backend.create_map(3, MapSpec("g", MapType.ARRAY, 4, 8, 1))
    m.update(U32[0], U64[5])
    load(backend, 10, "lddw %r2, map_value(3)+0\nldxdw %r0, [%r2+0]\nstdw [%r2+0], 9\nexit")
    assert backend.run_xdp(10, bytes(60)).retval == 5
    assert m.lookup(U32[0]) == U64[9]


# -- fixtures -------------------------------------------------------------------------------

FRAME = p.ether(p.udp_packet("10.0.0.1", "10.0.0.2", 1000, 53), p.ETH_P_IP)


def test_pass_and_drop_fixtures(backend):
    obj = install(backend, FIXTURES / "xdp" / "xdp_pass.o")
    assert obj.run("xdp_pass_all", FRAME).action == XdpAction.PASS
    out = obj.run("xdp_drop_all", FRAME)
    assert (out.action, out.data) == (XdpAction.DROP, FRAME)


def test_firewall_drops_blocklisted_sources(backend):
    obj = install(backend, FIXTURES / "xdp" / "xdp_firewall.o")
    obj.map("blocked_v4").update(p.ip4("10.0.0.66"), U64[0])
    blocked = p.ether(p.tcp_packet("10.0.0.66", "10.0.0.2", 1, 80), p.ETH_P_IP)
    assert obj.run("xdp_firewall", blocked).action == XdpAction.DROP
    assert obj.run("xdp_firewall", FRAME).action == XdpAction.PASS
    assert obj.map("blocked_v4").lookup(p.ip4("10.0.0.66")) == U64[1]


def test_trim_cuts_frames_to_the_snap_length(backend):
    obj = install(backend, FIXTURES / "xdp" / "xdp_trim.o")
    frame = p.ether(p.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, b"z" * 400), p.ETH_P_IP)
    out = obj.run("xdp_trim_tail", frame)
    assert (out.action, out.data) == (XdpAction.PASS, frame[:128])


def test_tunnel_encapsulates_with_an_outer_header(backend):
    obj = install(backend, FIXTURES / "xdp" / "xdp_tunnel.o")
    obj.map("tunnels").update(p.ip4("172.16.0.5"), p.ip4("10.1.1.1") + p.ip4("10.2.2.2"))
    inner = p.udp_packet("10.0.0.1", "172.16.0.5", 5, 6)
    out = obj.run("xdp_ipip_encap", p.ether(inner, p.ETH_P_IP))
    assert out.action == XdpAction.TX
    assert out.data[:12] == p.MAC_A + p.MAC_B  # MACs swapped
    assert out.data[14 + 20:] == inner
    assert out.data[14 + 9] == p.IPPROTO_IPIP and out.data[14 + 12:14 + 20] == p.ip4("10.1.1.1") + \
        p.ip4("10.2.2.2")
