"""The pcap reader: both byte orders and timestamp precisions; damaged files refused by name."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.pcap import MAGIC_NS, PcapError, encode_pcap, parse_pcap, read_pcap
from service.traffic import parse_traffic


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=200), max_size=20))
def test_round_trip(frames):
    assert parse_pcap(encode_pcap(frames)) == frames


def test_big_endian_nanosecond_files():
    frame = bytes(range(60))
    data = struct.pack(">IHHiIII", MAGIC_NS, 2, 4, 0, 0, 65535, 1) + \
        struct.pack(">IIII", 1, 2, len(frame), len(frame)) + frame
    assert parse_pcap(data) == [frame]


@pytest.mark.parametrize("data, message", [
    (b"\x0a\x0d\x0d\x0a" + bytes(28), "pcapng"),
    (b"GIF89a" + bytes(30), "not a pcap"),
    (b"\xd4\xc3", "too short"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105), "link type 105"),
    (encode_pcap([b"abcd"])[:-2], "ends inside record 1"),
    (encode_pcap([b"abcd"]) + b"\x00" * 5, "ends inside the header of record 2"),
    (encode_pcap([]) + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30), "claims"),
])
def test_damaged_files(data, message):
    with pytest.raises(PcapError, match=message):
        parse_pcap(data)


def test_files_and_replayed_traffic(tmp_path):
    path = tmp_path / "t.pcap"
    path.write_bytes(encode_pcap([b"one", b"two"]))
    assert read_pcap(path) == [b"one", b"two"]
    traffic = parse_traffic(f"pcap:{path}", rate=10)
    assert traffic.take(5) == [b"one", b"two", b"one", b"two", b"one"]
    with pytest.raises(PcapError, match="cannot read"):
        read_pcap(tmp_path / "missing.pcap")
