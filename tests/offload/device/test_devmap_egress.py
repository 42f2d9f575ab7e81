"""A devmap entry's own program runs on the way out, as the kernel's ``dev_map_bpf_prog_run``:
it sees the ingress and the egress interface, XDP_PASS sends the frame on as it left it, DROP
drops it, and TX or REDIRECT there are invalid (aborted, dropped)."""

from __future__ import annotations

import struct

import pytest

from offload.caps import load_profile
from offload.device import build_device
from offload.device.interfaces import Interface
from offload.isa import assemble
from offload.maps import MapSpec
from offload.program import MapReference, ProgramSpec
from offload.uapi import AttachType, MapType, ProgType
from tests.offload.device.test_interfaces import FakeGuest

REDIRECT_TO_ENTRY_0 = assemble("""
    lddw %r1, map_fd(0)
    mov %r2, 0
    mov %r3, 0
    call 51
    exit
""")
#: writes the egress and ingress ifindex into the frame's first two bytes
MARK = assemble("""
    ldxw %r2, [%r1+0]
    ldxw %r3, [%r1+4]
    mov %r4, %r2
    add %r4, 2
    jgt %r4, %r3, short
    ldxw %r5, [%r1+20]
    stxb [%r2+0], %r5
    ldxw %r5, [%r1+12]
    stxb [%r2+1], %r5
    mov %r0, 2
    exit
short:
    mov %r0, 1
    exit
""")
DROP = assemble("mov %r0, 1\nexit")
TX = assemble("mov %r0, 3\nexit")
FRAME = bytes(range(60))


@pytest.fixture
def pair():
    pair = build_device("d", load_profile("full"))
    devmap = pair.driver.map_create(MapSpec("ports", MapType.DEVMAP, 4, 8, 4))
    main = pair.driver.prog_load(
        ProgramSpec("steer", ProgType.XDP, tuple(REDIRECT_TO_ENTRY_0), "GPL",
                    map_refs=(MapReference(0, "ports"),)), maps={"ports": devmap})
    pair.driver.xdp_attach(main)
    pair.devmap = devmap
    return pair


def entry(pair, ifindex: int, insns=None) -> int | None:
    """Point entry 0 at ``ifindex``, with a devmap program made of ``insns`` if given."""
    handle = None
    if insns is not None:
        handle = pair.driver.prog_load(ProgramSpec(
            "egress", ProgType.XDP, tuple(insns), "GPL",
            expected_attach_type=AttachType.XDP_DEVMAP))
    # struct bpf_devmap_val: the ifindex, then the program's fd (-1: none)
    value = struct.pack("<Ii", ifindex, -1 if handle is None else handle)
    pair.driver.map_update_elem(pair.devmap, bytes(4), value)
    return handle


def test_the_entry_program_sees_both_interfaces_and_its_changes_leave(pair):
    device = pair.device
    guest = FakeGuest()
    device.add_interface(Interface(1, "in", FakeGuest()))
    device.add_interface(Interface(5, "out", guest))
    handle = entry(pair, 5, MARK)
    device.receive(FRAME)
    assert guest.frames == [bytes([5, 1]) + FRAME[2:]]
    assert device.objects.programs[handle].counters.pass_ == 1
    assert device.ports.devmap_dropped == 0


def test_without_ports_the_switch_gets_the_frame_the_entry_program_left(pair):
    device = pair.device
    entry(pair, 7, MARK)
    device.receive(FRAME)
    assert list(device.redirected) == [(7, bytes([7, 1]) + FRAME[2:])]


@pytest.mark.parametrize(("insns", "counter"), [(DROP, "drop"), (TX, "aborted")])
def test_drop_and_invalid_verdicts_of_the_entry_program_drop_the_frame(pair, insns, counter):
    device = pair.device
    guest = FakeGuest()
    device.add_interface(Interface(5, "out", guest))
    handle = entry(pair, 5, insns)
    device.receive(FRAME)
    assert guest.frames == [] and device.ports.devmap_dropped == 1
    assert getattr(device.objects.programs[handle].counters, counter) == 1
    assert device.ports.redirect_errors == 0


def test_an_entry_without_a_program_sends_the_frame_unchanged(pair):
    device = pair.device
    guest = FakeGuest()
    device.add_interface(Interface(5, "out", guest))
    entry(pair, 5)
    device.receive(FRAME)
    assert guest.frames == [FRAME] and device.ports.devmap_dropped == 0


def test_an_entry_program_unloaded_runs_on_until_its_entry_goes(pair):
    """The entry holds its program, as the kernel's devmap holds a reference: unloaded by the
    guest, it stays on the device (counted, checkpointed) and runs until the entry is
    replaced; then it goes."""
    device = pair.device
    guest = FakeGuest()
    device.add_interface(Interface(5, "out", guest))
    handle = entry(pair, 5, MARK)
    pair.driver.prog_unload(handle)
    assert handle in device.objects.programs
    device.receive(FRAME)
    assert guest.frames == [bytes([5, 1]) + FRAME[2:]]
    assert device.objects.programs[handle].counters.pass_ == 1
    entry(pair, 5)  # the entry replaced: its program goes with it
    assert handle not in device.objects.programs
    device.receive(FRAME)
    assert guest.frames[-1] == FRAME
