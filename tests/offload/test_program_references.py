"""Map references of a ProgramSpec become lddw immediates holding map fds or device handles (pure)."""

from __future__ import annotations

import errno

import pytest

from offload.errors import ErrnoError
from offload.isa import PseudoSrc, assemble
from offload.program import MapReference, resolve_map_references

PROGRAM = assemble("""
    lddw %r1, map_fd(0)
    mov %r2, 0
    lddw %r3, map_value(0)+0
    mov %r0, 2
    exit
""")


def test_map_fd_and_map_value_references_are_patched_by_slot() -> None:
    refs = (MapReference(0, "flows"), MapReference(3, "cfg", PseudoSrc.MAP_VALUE, offset=16))
    out = resolve_map_references(PROGRAM, refs, {"flows": 7, "cfg": 9})
    assert (out[0].src, out[0].imm, out[0].next_imm) == (PseudoSrc.MAP_FD, 7, 0)
    assert (out[2].src, out[2].imm, out[2].next_imm) == (PseudoSrc.MAP_VALUE, 9, 16)
    assert out[1] == PROGRAM[1] and out[3:] == tuple(PROGRAM[3:])


def test_a_missing_map_is_ebadf_naming_it() -> None:
    with pytest.raises(ErrnoError) as info:
        resolve_map_references(PROGRAM, (MapReference(0, "flows"),), {"other": 3}, program="fw")
    assert info.value.errno == errno.EBADF
    assert "'flows'" in str(info.value) and "other" in str(info.value)


@pytest.mark.parametrize("slot", [1, 2, 99])
def test_a_reference_not_on_an_lddw_is_einval(slot: int) -> None:
    with pytest.raises(ErrnoError) as info:
        resolve_map_references(PROGRAM, (MapReference(slot, "flows"),), {"flows": 3})
    assert info.value.errno == errno.EINVAL
    assert f"slot {slot}" in str(info.value)


def test_only_fd_kinds_are_resolved() -> None:
    with pytest.raises(ErrnoError) as info:
        resolve_map_references(PROGRAM, (MapReference(0, "m", PseudoSrc.MAP_IDX),), {"m": 3})
    assert info.value.errno == errno.EINVAL and "MAP_IDX" in str(info.value)


def test_invalid_fds_and_offsets_are_refused() -> None:
    with pytest.raises(ErrnoError):
        resolve_map_references(PROGRAM, (MapReference(0, "m"),), {"m": -1})
    with pytest.raises(ErrnoError):
        resolve_map_references(PROGRAM, (MapReference(3, "m", PseudoSrc.MAP_VALUE, 1 << 33),),
                             {"m": 3})
