"""Map access flags: what a program may do with the values of a map created with
BPF_F_RDONLY_PROG (read, never write) or BPF_F_WRONLY_PROG (write, never read).

Every way to reach a value is covered - a lookup's pointer, a direct value pointer (``lddw
map_value``), a helper handed the value as memory - and every way to touch it: loads, stores,
atomics (both a read and a write), helpers that read, fill or read and write it, and the helpers
that change the map itself. The host kernel (root) judges the same programs where it can be
used; the cases where the device is deliberately stricter are named with the reason.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from offload.backends.kernel import kernel_available  # noqa: I001
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapFlags, MapType
from offload.verifier import VerifierError, verify

from .kernel_load import kernel_verdict
from .suite import FULL, Case

KERNEL, WHY = kernel_available()
ARRAY = MapSpec("values", MapType.ARRAY, 4, 16, 4)
SINGLE = MapSpec("global", MapType.ARRAY, 4, 16, 1)
OTHER = MapSpec("other", MapType.HASH, 4, 16, 16)
QUEUE = MapSpec("queue", MapType.QUEUE, 0, 16, 16)
RO, WO = MapFlags.RDONLY_PROG, MapFlags.WRONLY_PROG
READ_FORBIDDEN, WRITE_FORBIDDEN = "read from map forbidden", "write into map forbidden"

_LOOKUP = ("stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd(1)\ncall 1\n"
           "jeq %r0, 0, out\nmov %r7, %r0\n")
_DIRECT = "lddw %r7, map_value(2)+0\n"
_KEY = "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\n"

#: name -> (how R7 comes to point at the value, what is done with it)
USES = {
    "load": "ldxdw %r0, [%r7+8]",
    "load byte": "ldxb %r0, [%r7+0]",
    "store": "stdw [%r7+8], 1",
    "store register": "mov %r8, 5\nstxw [%r7+0], %r8",
    "atomic add": "mov %r8, 1\nlock add [%r7+8], %r8",
    "atomic fetch": "mov %r8, 1\nlock fetch add [%r7+8], %r8",
    "helper reads it (store_bytes)":
        "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r7\nmov %r4, 8\ncall 190",
    "helper reads it (csum_diff)":
        "mov %r1, %r7\nmov %r2, 8\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28",
    "helper reads it as a key": "mov %r2, %r7\nlddw %r1, map_fd(3)\ncall 1",
    "helper reads it as a value":
        _KEY + "mov %r3, %r7\nmov %r4, 0\nlddw %r1, map_fd(3)\ncall 2",
    "helper fills it (load_bytes)":
        "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r7\nmov %r4, 8\ncall 189",
    "helper fills it (map_pop_elem)": "lddw %r1, map_fd(4)\nmov %r2, %r7\ncall 88",
    "helper reads and writes it (fib_lookup)":
        "mov %r1, %r6\nmov %r2, %r7\nmov %r3, 16\nmov %r4, 0\ncall 69",
    "helper reads and writes it (check_mtu)":
        "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r7\nmov %r4, 0\nmov %r5, 0\ncall 163",
}
#: what the map itself undergoes (not through a value pointer)
MAP_OPS = {
    "lookup": _KEY + "lddw %r1, map_fd(1)\ncall 1",
    "update": _KEY + "stdw [%r10-24], 0\nstdw [%r10-16], 0\nmov %r3, %r10\nadd %r3, -24\n"
                     "mov %r4, 0\nlddw %r1, map_fd(1)\ncall 2",
    "delete": _KEY + "lddw %r1, map_fd(1)\ncall 3",
}
READS = {"load", "load byte", "atomic add", "atomic fetch", "helper reads it (store_bytes)",
         "helper reads it (csum_diff)", "helper reads it as a key", "helper reads it as a value",
         "helper reads and writes it (fib_lookup)", "helper reads and writes it (check_mtu)"}
WRITES = {"store", "store register", "atomic add", "atomic fetch",
          "helper fills it (load_bytes)", "helper fills it (map_pop_elem)",
          "helper reads and writes it (fib_lookup)", "helper reads and writes it (check_mtu)"}
#: where the host kernel differs, and why the device is stricter
KERNEL_DIFFERS = {
    ("helper reads and writes it (fib_lookup)", WO): "the kernel checks only the write "
        "permission for a MEM_WRITE argument; the helper reads the value too",
    ("helper reads and writes it (check_mtu)", WO): "the kernel checks only the write "
        "permission for a MEM_WRITE argument; the helper reads the value too",
}


def _program(reach: str, use: str) -> str:
    return f"mov %r6, %r1\n{reach}{use}\nout:\nmov %r0, 2\nexit\n"


def _maps(flags: int) -> dict[int, MapSpec]:
    return {1: replace(ARRAY, flags=flags), 2: replace(SINGLE, flags=flags), 3: OTHER,
            4: QUEUE}


def _expected(use: str, flags: int) -> str:
    if flags & WO and use in READS:
        return READ_FORBIDDEN
    if flags & RO and use in WRITES:
        return WRITE_FORBIDDEN
    return "accepted"


def _verdict(text: str, maps: dict[int, MapSpec]) -> str:
    try:
        verify(assemble(text), caps=FULL, maps=maps)
    except VerifierError as err:
        return err.reason
    return "accepted"


CASES = [(reach, use, flags) for reach in ("lookup", "direct") for use in USES
         for flags in (0, RO, WO)]


def _flag_name(flags: int) -> str:
    return {0: "none", RO: "rdonly_prog", WO: "wronly_prog"}[flags]


def _ids(cases) -> list[str]:
    return [f"{reach}-{use}-{_flag_name(flags)}" for reach, use, flags in cases]


@pytest.mark.parametrize(("reach", "use", "flags"), CASES, ids=_ids(CASES))
def test_map_rdonly_prog_class(reach, use, flags):
    """The value of a BPF_F_RDONLY_PROG map is never written, of a BPF_F_WRONLY_PROG map
    never read, however the program reaches it and whatever touches it."""
    text = _program(_LOOKUP if reach == "lookup" else _DIRECT, USES[use])
    verdict = _verdict(text, _maps(flags))
    expected = _expected(use, flags)
    assert verdict.startswith(expected), verdict


@pytest.mark.parametrize("op", MAP_OPS)
@pytest.mark.parametrize("flags", [0, RO, WO], ids=_flag_name)
def test_map_wronly_prog_class(op, flags):
    """Lookups stay allowed with either flag (a write-only map's pointer can be written);
    helpers that change the map are refused on a read-only one, as the kernel does."""
    verdict = _verdict(_program("", MAP_OPS[op]), _maps(flags))
    expected = WRITE_FORBIDDEN if flags & RO and op != "lookup" else "accepted"
    assert verdict.startswith(expected), verdict


def test_the_forbidden_access_is_reported_where_it_happens():
    with pytest.raises(VerifierError) as info:
        verify(assemble(_program(_DIRECT, "ldxw %r0, [%r7+4]")), caps=FULL, maps=_maps(WO))
    assert info.value.reason == "read from map forbidden, value_size=16 off=4 size=4"
    with pytest.raises(VerifierError) as info:
        verify(assemble(_program(_DIRECT, "stw [%r7+12], 1")), caps=FULL, maps=_maps(RO))
    assert info.value.reason == "write into map forbidden, value_size=16 off=12 size=4"


def test_devmap_values_are_read_only_to_programs():
    """The kernel creates every devmap with BPF_F_RDONLY_PROG; a spec need not say so."""
    devmap = {1: MapSpec("ports", MapType.DEVMAP, 4, 4, 4)}
    load = _program(_LOOKUP, "ldxw %r0, [%r7+0]")
    store = _program(_LOOKUP, "stw [%r7+0], 1")
    assert _verdict(load, devmap) == "accepted"
    assert _verdict(store, devmap).startswith(WRITE_FORBIDDEN)


def test_both_flags_forbid_both():
    maps = _maps(RO | WO)
    assert _verdict(_program(_DIRECT, USES["load"]), maps).startswith(READ_FORBIDDEN)
    assert _verdict(_program(_DIRECT, USES["store"]), maps).startswith(WRITE_FORBIDDEN)


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
def test_the_kernel_agrees_on_map_access_flags():
    disagreements, stale = [], []
    for reach, use, flags in CASES:
        text = _program(_LOOKUP if reach == "lookup" else _DIRECT, USES[use])
        ours = _expected(use, flags) == "accepted"
        accepted, reason = kernel_verdict(Case("flags", Path("flags"), tuple(assemble(text)),
                                               "", _maps(flags), FULL))
        declared = (use, flags) in KERNEL_DIFFERS
        if (accepted != ours) != declared:
            what = f"{reach}/{use}/{_flag_name(flags)}"
            if declared:
                stale.append(f"{what}: the kernel agrees now")
            else:
                disagreements.append(f"{what}: kernel {'accepts' if accepted else reason}")
    for op in MAP_OPS:
        for flags in (0, RO, WO):
            ours = not (flags & RO and op != "lookup")
            accepted, reason = kernel_verdict(Case("ops", Path("ops"), tuple(assemble(
                _program("", MAP_OPS[op]))), "", _maps(flags), FULL))
            if accepted != ours:
                disagreements.append(f"{op}/{_flag_name(flags)}: kernel "
                                     f"{'accepts' if accepted else reason}")
    assert not disagreements and not stale, "\n".join(disagreements + stale)
