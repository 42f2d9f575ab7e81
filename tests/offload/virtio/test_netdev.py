"""virtio-net parts: the header that precedes every frame (5.1.6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offload.virtio import NetHdr
from offload.virtio.netdev import NET_HDR_SIZE, NetHdrError


@given(st.integers(0, 0xFFFF))
def test_the_plain_header_is_the_encoding_of_a_header_without_offloads(num_buffers):
    plain = NetHdr.plain(num_buffers)
    assert plain == NetHdr(num_buffers=num_buffers).encode() and len(plain) == NET_HDR_SIZE
    assert NetHdr.decode(plain) == NetHdr(num_buffers=num_buffers)


def test_the_plain_header_is_encoded_once():
    assert NetHdr.plain(1) is NetHdr.plain(1)
    assert NetHdr.plain() == bytes(NET_HDR_SIZE)


def test_a_plain_header_that_does_not_fit_is_refused():
    with pytest.raises(NetHdrError):
        NetHdr.plain(1 << 16)
