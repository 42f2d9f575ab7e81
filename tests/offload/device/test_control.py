"""Control commands through the driver: every refusal is an errno with the device's reason,
and the object table follows the uAPI's lifetime rules."""

from __future__ import annotations

import errno
import struct

import pytest

from offload.caps import Capabilities
from offload.device import build_device
from offload.errors import ErrnoError
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType, ProgType

from .conftest import FULL


def err(call, *args, **kwargs) -> ErrnoError:
    with pytest.raises(ErrnoError) as info:
        call(*args, **kwargs)
    return info.value


HASH = MapSpec("h", MapType.HASH, 4, 8, 16)
PASS = assemble("mov %r0, 2\nexit")
COUNT = assemble("""
    mov %r2, %r10
    add %r2, -4
    stw [%r2], 0
    lddw %r1, map_fd(0)
    call 1
    jeq %r0, 0, out
    lddw %r1, 1
    lock add [%r0], %r1
out:
    mov %r0, 2
    exit
""")


def test_map_errors_name_the_errno(pair):
    d = pair.driver
    handle = d.map_create(HASH)
    assert err(d.map_lookup_elem, handle, b"\0\0\0\0").name == "ENOENT"
    assert err(d.map_lookup_elem, handle, b"\0").name == "EINVAL"
    assert err(d.map_lookup_elem, 999, b"\0\0\0\0").name == "EBADF"
    d.map_update_elem(handle, b"\1\0\0\0", bytes(8))
    assert err(d.map_update_elem, handle, b"\1\0\0\0", bytes(8), 1).name == "EEXIST"
    assert err(d.map_create, MapSpec("bad", MapType.ARRAY, 8, 4, 1)).name == "EINVAL"
    assert err(d.map_create, MapSpec("big", MapType.HASH, 4, 4, 1 << 30)).name == "E2BIG"
    for n in range(2, 17):
        d.map_update_elem(handle, struct.pack("<I", n), bytes(8))
    assert err(d.map_update_elem, handle, b"\xff\0\0\0", bytes(8)).name == "E2BIG"
    assert d.map_get_next_key(handle) in {struct.pack("<I", n) for n in range(1, 17)}
    assert len(list(d.map_items(handle, batch=5))) == 16


def test_rejected_programs_carry_the_verifier_log(pair):
    failure = err(pair.driver.prog_load, assemble("mov %r0, %r5\nexit"))
    assert failure.name == "EACCES"
    assert "R5 !read_ok" in str(failure)
    shapeless = err(pair.driver.prog_load, assemble("ja +0\nexit")[:1])
    assert shapeless.name == "EINVAL" and "jump out of range" in str(shapeless)


def test_program_map_references_are_checked_by_the_device(pair):
    d = pair.driver
    failure = err(d.prog_load, COUNT)  # lddw map_fd(0) without a reference
    assert failure.name == "EINVAL" and "no map reference" in str(failure)


def test_attach_replace_and_detach(pair):
    d = pair.driver
    first = d.prog_load(PASS, name="first")
    second = d.prog_load(PASS, name="second")
    assert err(d.xdp_detach).name == "ENOENT"
    d.xdp_attach(first)
    assert err(d.xdp_attach, second, replace=999).name == "EEXIST"
    d.xdp_attach(second, replace=first)
    assert pair.device.attached == second
    assert err(d.xdp_attach, first, mode="skb").name == "EOPNOTSUPP"
    d.xdp_detach()
    assert pair.device.attached is None
    socket = d.prog_load(PASS, prog_type=ProgType.SOCKET_FILTER, name="sock") \
        if ProgType.SOCKET_FILTER in FULL.prog_types else None
    assert socket is None  # the full profile offers XDP only


def test_unloading_an_attached_program_keeps_it_running_until_detach(pair):
    d, dev = pair.driver, pair.device
    prog = d.prog_load(PASS)
    d.xdp_attach(prog)
    d.prog_unload(prog)
    assert dev.receive(bytes(60)).name == "PASS"
    assert dev.counters(prog).pass_ == 1
    assert err(d.prog_unload, prog).name == "EBADF"
    d.xdp_detach()
    assert prog not in dev.objects.programs


def test_maps_outlive_their_handle_while_programs_use_them(pair):
    from offload.program import MapReference, ProgramSpec

    d, dev = pair.driver, pair.device
    counter = d.map_create(MapSpec("c", MapType.ARRAY, 4, 8, 1))
    spec = ProgramSpec("count", ProgType.XDP, tuple(COUNT), "GPL",
                       map_refs=(MapReference(3, "c"),))
    prog = d.prog_load(spec, maps={"c": counter})
    d.xdp_attach(prog)
    d.map_free(counter)
    assert err(d.map_lookup_elem, counter, bytes(4)).name == "EBADF"
    dev.receive(bytes(60))
    assert counter in dev.objects.maps  # still used by the attached program
    d.xdp_detach()
    d.prog_unload(prog)
    assert counter not in dev.objects.maps


def test_a_frozen_map_refuses_guest_writes(pair):
    d = pair.driver
    handle = d.map_create(MapSpec("ro", MapType.ARRAY, 4, 4, 1, contents=((bytes(4), b"abcd"),),
                                  frozen=True))
    assert d.map_lookup_elem(handle, bytes(4)) == b"abcd"
    assert err(d.map_update_elem, handle, bytes(4), b"wxyz").name == "EPERM"
    assert err(d.map_freeze, handle).name == "EPERM"


def test_offload_needs_the_feature_bit():
    caps = Capabilities("no-xdp", prog_types=frozenset())
    pair = build_device("plain", caps)
    assert err(pair.driver.map_create, HASH).name == "EOPNOTSUPP"


def test_capabilities_travel_over_the_control_queue(pair):
    caps = pair.driver.capabilities()
    assert caps.name == FULL.name
    assert caps.helpers == FULL.helpers and caps.map_types == FULL.map_types


def test_a_verifier_bug_is_a_typed_refusal_and_the_device_keeps_serving(pair, monkeypatch):
    """A broken invariant inside the verifier ends a guest PROG_LOAD in EFAULT with the
    instruction, never an exception out of the device."""
    from offload.verifier import verifier

    if not pair.device.backend.name.startswith("builtin"):
        pytest.skip("the host kernel runs its own verifier")

    def broken(env, state, op):
        raise ValueError("an invariant broke")

    monkeypatch.setattr(verifier, "check_alu", broken)
    failure = err(pair.driver.prog_load, assemble("mov %r0, 2\nexit"))
    assert failure.name == "EFAULT"
    assert "verifier bug: ValueError: an invariant broke" in str(failure)
    monkeypatch.undo()
    assert pair.driver.prog_load(PASS) is not None


def test_an_unexpected_failure_of_any_command_is_efault(pair, monkeypatch):
    from offload.device import control

    def broken(device, request):
        raise KeyError("lost")

    monkeypatch.setitem(control.HANDLERS, next(iter(control.HANDLERS)), broken)
    request_type = next(iter(control.HANDLERS))
    response = control.execute(pair.device, request_type.__new__(request_type))
    assert response.status == errno.EFAULT
