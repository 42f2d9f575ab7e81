"""Corrupted objects: truncations and bit flips of real fixtures only ever give LoaderError.

A corrupted object either still loads (the flip hit padding, debug info or a value) or is
refused with a LoaderError; nothing else may escape, and nothing may hang.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.loader import LoaderError, parse_object

from .fixtures import OBJECTS, fixture

BLOBS = {path.name: path.read_bytes() for path in OBJECTS}
NAMES = sorted(BLOBS)
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def load_or_refuse(data: bytes) -> None:
    try:
        parse_object(data, "fuzz")
    except LoaderError as error:
        assert str(error)


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_truncated_objects(name: str, data: st.DataObject) -> None:
    blob = BLOBS[name]
    load_or_refuse(blob[:data.draw(st.integers(0, len(blob) - 1))])


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_bit_flips(name: str, data: st.DataObject) -> None:
    blob = bytearray(BLOBS[name])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] ^= 1 << data.draw(st.integers(0, 7))
    load_or_refuse(bytes(blob))


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_corrupted_headers_and_tables(name: str, data: st.DataObject) -> None:
    """Aim at the parts that steer parsing: the ELF header and the section header table."""
    blob = bytearray(BLOBS[name])
    shoff, = struct.unpack_from("<Q", blob, 0x28)
    targets = list(range(0, 64)) + list(range(shoff, len(blob)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.sampled_from(targets))
        blob[position] = data.draw(st.integers(0, 255))
    load_or_refuse(bytes(blob))


@pytest.mark.parametrize("blob", [b"", b"\x7fELF", bytes(64), b"\x7fELF" + bytes(60),
                                  b"MZ" + bytes(200)])
def test_not_an_elf_object(blob: bytes) -> None:
    with pytest.raises(LoaderError):
        parse_object(blob, "x")


def test_wrong_machine_and_type() -> None:
    blob = bytearray(fixture("xdp_pass.o").read_bytes())
    blob[18:20] = struct.pack("<H", 62)  # EM_X86_64
    with pytest.raises(LoaderError, match="not a BPF object"):
        parse_object(bytes(blob), "x")
    blob = bytearray(fixture("xdp_pass.o").read_bytes())
    blob[16:18] = struct.pack("<H", 2)  # ET_EXEC
    with pytest.raises(LoaderError, match="not a relocatable object"):
        parse_object(bytes(blob), "x")
    blob = bytearray(fixture("xdp_pass.o").read_bytes())
    blob[5] = 2  # big-endian
    with pytest.raises(LoaderError, match="little-endian"):
        parse_object(bytes(blob), "x")


def test_huge_symbol_table_is_refused_quickly() -> None:
    """A symbol table claiming billions of entries must not be walked."""
    blob = bytearray(fixture("xdp_pass.o").read_bytes())
    shoff, = struct.unpack_from("<Q", blob, 0x28)
    shnum, = struct.unpack_from("<H", blob, 0x3C)
    for index in range(shnum):
        header = shoff + index * 64
        if struct.unpack_from("<I", blob, header + 4)[0] == 2:  # SHT_SYMTAB
            struct.pack_into("<Q", blob, header + 32, 24 * 10**9)  # sh_size
    with pytest.raises(LoaderError, match="run past the end of the file"):
        parse_object(bytes(blob), "x")
