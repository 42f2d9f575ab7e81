"""Synthetic traffic: a reproducible mix of families and protocols, sent at a steady rate."""

from __future__ import annotations

import struct
from collections import Counter

import pytest

from cli.exits import UsageError
from service.frames import inet_checksum
from service.traffic import MAX_BURST, Traffic, parse_traffic, synthetic_frames


def classify(frame: bytes) -> tuple[str, int, bytes]:
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == 0x0800:
        assert inet_checksum(frame[14:34]) == 0  # a valid IPv4 header checksum
        return "ipv4", frame[23], frame[26:30]
    assert ethertype == 0x86DD
    assert struct.unpack_from("!H", frame, 18)[0] == len(frame) - 54  # payload length
    return "ipv6", frame[20], frame[22:38]


def test_mix_of_families_protocols_and_sources():
    frames = [f for f, _ in zip(synthetic_frames(seed=4), range(2000))]
    kinds = Counter((family, proto) for family, proto, _ in map(classify, frames))
    assert set(kinds) == {("ipv4", 6), ("ipv4", 17), ("ipv4", 1),
                          ("ipv6", 6), ("ipv6", 17), ("ipv6", 58)}
    assert len({src for _, _, src in map(classify, frames)}) > 60
    again = [f for f, _ in zip(synthetic_frames(seed=4), range(2000))]
    assert frames == again


def test_rate_is_paced_by_the_clock_given():
    traffic = parse_traffic("synthetic", rate=64)  # binary fractions: exact arithmetic
    assert traffic.due(10.0) == 0
    assert traffic.due(10.25) == 16
    assert traffic.due(10.25 + 1 / 128) == 0 and traffic.due(10.25 + 2 / 128) == 1
    assert traffic.due(1000.0) == MAX_BURST  # a late beat does not flood the device
    assert len(traffic.take(3)) == 3 and traffic.sent == 3


def test_bad_traffic_specs():
    assert parse_traffic(None) is None
    for spec, rate in (("flood", 1.0), ("synthetic", 0.0)):
        with pytest.raises(UsageError):
            parse_traffic(spec, rate)
    assert isinstance(parse_traffic("synthetic"), Traffic)
