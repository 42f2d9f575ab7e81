"""The decoder on hostile bytes: always a typed SnapshotError, never another exception; the
indexing reader (contents left in the file) refuses exactly what the decoder refuses and reads
back what it decodes."""

from __future__ import annotations

import functools
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.codec import DecodeLimits, decode, encode, index_snapshot
from migrate.errors import SnapshotError

from .samples import fixture_snapshot

LIMITS = DecodeLimits(max_record_bytes=1 << 20, max_bin_len=1 << 20)


@functools.cache
def real() -> bytes:
    return encode(fixture_snapshot("xdp_tailcall", "xdp_lpm", "xdp_config"))


def decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = decode(data, LIMITS)
    except SnapshotError as exc:
        assert str(exc)  # a sentence, not an empty error
        decoded = None
    try:
        indexed = index_snapshot(io.BytesIO(data), LIMITS)
    except SnapshotError as exc:
        assert decoded is None, f"the index refused what the decoder read: {exc}"
        assert str(exc)
        return
    assert decoded is not None, "the index read what the decoder refused"
    assert indexed == decoded  # the contents read back from the file, chunk by chunk


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 8 * 16666 - 1), min_size=1, max_size=8))
def test_bit_flips_of_a_real_snapshot(bits: list[int]) -> None:
    data = bytearray(real())
    for bit in bits:
        bit %= len(data) * 8
        data[bit // 8] ^= 1 << (bit % 8)
    decodes_or_refuses(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 16666))
def test_truncations_of_a_real_snapshot(n: int) -> None:
    data = real()
    decodes_or_refuses(data[:n % len(data)])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 16666), st.binary(min_size=1, max_size=64))
def test_spliced_bytes(at: int, junk: bytes) -> None:
    data = real()
    at %= len(data)
    decodes_or_refuses(data[:at] + junk + data[at + len(junk):])
