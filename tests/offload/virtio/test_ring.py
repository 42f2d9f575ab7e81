from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offload.virtio import Descriptor, VirtqueueError, VringLayout, vring_need_event
from offload.virtio.ring import is_valid_queue_size

u16 = st.integers(0, 0xFFFF)


@given(u16, u16, st.integers(0, 0x8000))
def test_need_event_is_membership_of_event_in_the_new_window(event, old, count):
    """Notify iff event_idx is one of old, old+1, ..., new-1 (mod 2**16)."""
    new = (old + count) & 0xFFFF
    window = {(old + i) & 0xFFFF for i in range(count)}
    assert vring_need_event(event, new, old) == (event in window)


def test_need_event_across_the_16_bit_wrap():
    assert vring_need_event(0xFFFF, 2, 0xFFFE)
    assert vring_need_event(0, 2, 0xFFFE)
    assert not vring_need_event(2, 2, 0xFFFE)
    assert not vring_need_event(0xFFFD, 2, 0xFFFE)


def test_descriptor_encoding_is_the_16_byte_virtq_desc():
    d = Descriptor(0x1122334455667788, 0x99AABBCC, 3, 7)
    raw = d.encode()
    assert len(raw) == 16 and raw[:8] == bytes.fromhex("8877665544332211")
    assert Descriptor.decode(raw) == d


@pytest.mark.parametrize("size, ok", [(1, True), (2, True), (32768, True), (0, False),
                                      (3, False), (65536, False), (24, False)])
def test_queue_sizes_are_powers_of_two_up_to_32768(size, ok):
    assert is_valid_queue_size(size) == ok


def test_layout_sizes_and_field_addresses():
    layout = VringLayout(8, 0x1000, 0x2000, 0x3000)
    assert VringLayout.desc_bytes(8) == 128
    assert VringLayout.avail_bytes(8) == 22 and VringLayout.used_bytes(8) == 70
    assert layout.avail_ring(7) == 0x2000 + 4 + 14 and layout.used_event == 0x2000 + 20
    assert layout.used_ring(7) == 0x3000 + 4 + 56 and layout.avail_event == 0x3000 + 68
    layout.validate(0x4000)


@pytest.mark.parametrize("layout, field", [
    (VringLayout(8, 0x1008, 0x2000, 0x3000), "queue_desc"),  # misaligned
    (VringLayout(8, 0x1000, 0x2001, 0x3000), "queue_driver"),
    (VringLayout(8, 0x1000, 0x2000, 0x3002), "queue_device"),
    (VringLayout(8, 0x1000, 0x2000, 0x3FF0), "queue_device"),  # past the end
    (VringLayout(8, 0x1000, 0x1040, 0x3000), "queue_driver"),  # overlaps the table
    (VringLayout(6, 0x1000, 0x2000, 0x3000), "queue_size"),
])
def test_layout_validation_names_the_area(layout, field):
    with pytest.raises(VirtqueueError) as info:
        layout.validate(0x4000)
    assert info.value.field == field
