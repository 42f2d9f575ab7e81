"""A hostile guest: malformed and oversized control commands, hostile descriptor chains.

Whatever the guest places in the control queue, the device answers through its own path
(an errno, or DEVICE_NEEDS_RESET for a broken chain): nothing raises out of ``service()``, and
guest memory outside the device-writable buffer and the used ring never changes."""

from __future__ import annotations

import errno

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.device import build_device
from offload.virtio.ctrl import RESULT_HEADER_SIZE, BpfCommand, CtrlClass
from offload.virtio.netdev import CONTROLQ
from offload.virtio.transport import DeviceStatus

from .conftest import FULL

REPLY = 4096


def raw_command(pair, body: bytes, reply: int = REPLY):
    """Place ``body`` as a control command; return (reply bytes, memory before, regions)."""
    driver, memory = pair.driver, pair.device.memory
    out = driver.allocator.alloc(max(len(body), 1))
    into = driver.allocator.alloc(reply)
    memory.write(out, body)
    head = driver.ctrlq.add_buffer([(out, len(body))], [(into, reply)])
    before = memory.snapshot()
    driver.ctrlq.kick_prepare()
    driver.transport.notify(CONTROLQ)
    pair.device.service()
    used = driver.ctrlq.get_used()
    assert used is not None and used.head == head
    return memory.read(into, used.length), before, (into, reply)


def unchanged_outside(pair, before: bytes, writable: tuple[int, int]) -> bool:
    after = pair.device.memory.snapshot()
    start, size = writable
    layout = pair.driver.ctrlq.layout
    used_start, used_end = layout.device, layout.device + layout.used_bytes(layout.size)
    if len(before) != len(after):
        return False
    # compare the memory between the windows the device may write, slice by slice (16 MiB)
    edge = 0
    for lo, hi in sorted([(start, start + size), (used_start, used_end)]):
        if before[edge:lo] != after[edge:lo]:
            return False
        edge = max(edge, hi)
    return before[edge:] == after[edge:]


commands = st.one_of(
    st.binary(max_size=96),
    st.builds(lambda cmd, tail: bytes([CtrlClass.BPF, cmd]) + tail,
              st.sampled_from([int(c) for c in BpfCommand] + [99, 200]), st.binary(max_size=96)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_malformed_commands_get_an_errno_and_touch_nothing_else(body):
    pair = build_device("dut", FULL)
    reply, before, writable = raw_command(pair, body)
    assert len(reply) >= 1
    assert not pair.device.transport.status & DeviceStatus.DEVICE_NEEDS_RESET
    assert unchanged_outside(pair, before, writable)


def test_an_oversized_request_is_refused():
    pair = build_device("dut", FULL)
    pair.device.max_request = 1024
    body = bytes([CtrlClass.BPF, BpfCommand.MAP_UPDATE]) + bytes(4096)
    reply, before, writable = raw_command(pair, body)
    status = int.from_bytes(reply[1:5], "little")
    assert status in (errno.EINVAL, errno.E2BIG)
    assert unchanged_outside(pair, before, writable)


def test_a_reply_buffer_too_small_for_the_header_gets_only_the_ack():
    pair = build_device("dut", FULL)
    reply, before, writable = raw_command(pair, bytes([CtrlClass.BPF, BpfCommand.CAPS]),
                                          reply=RESULT_HEADER_SIZE - 1)
    assert reply == b"\x01"
    assert unchanged_outside(pair, before, writable)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 255), st.integers(0, (1 << 64) - 1), st.integers(0, 1 << 20))
def test_hostile_descriptors_reset_the_device_without_raising(flags, addr, length):
    """A descriptor pointing anywhere: the device validates it and at worst asks for a reset."""
    pair = build_device("dut", FULL)
    queue = pair.driver.ctrlq
    layout = queue.layout
    memory = pair.device.memory
    # Write a descriptor by hand at index 0 and make it available.
    memory.write_u64(layout.desc, addr)
    memory.write_u32(layout.desc + 8, length & 0xFFFFFFFF)
    memory.write_u16(layout.desc + 12, flags & 0x7)
    memory.write_u16(layout.desc + 14, 0)
    idx = memory.read_u16(layout.driver + 2)
    memory.write_u16(layout.driver + 4 + (idx % layout.size) * 2, 0)
    memory.write_u16(layout.driver + 2, (idx + 1) & 0xFFFF)
    before = memory.snapshot()
    pair.driver.transport.notify(CONTROLQ)
    pair.device.service()  # must not raise
    status = pair.device.transport.status
    after = memory.snapshot()
    if status & DeviceStatus.DEVICE_NEEDS_RESET:
        assert pair.device.transport.reset_reason
        assert before[:layout.device] == after[:layout.device]
