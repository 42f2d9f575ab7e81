"""Reference tracking: programs that acquire sockets and ring buffer reservations verify
when every path releases them, and pruning never lets a path holding a reference pass for
one that holds none (the policy table, test_policy_table.py, has the refusals)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.backends.kernel import kernel_available
from offload.backends.kernel.maps import KernelMap
from offload.backends.kernel.programs import load_program_spec
from offload.caps import load_profile
from offload.isa import assemble
from offload.loader import load_object
from offload.maps.spec import MapSpec
from offload.program import resolve_map_references
from offload.uapi import MapType
from offload.verifier import VerifierError, explored, prune, verify

from .suite import FULL

LIBBPF = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf"
KERNEL, WHY = kernel_available()
RING = {5: MapSpec("ring", MapType.RINGBUF, 0, 0, 4096)}
PROGRAMS = [("xdp_sk_lookup", p) for p in ("xdp_sk_established", "xdp_udp_bound",
                                            "xdp_syncookie")] + \
    [("xdp_ringbuf_log", p) for p in ("xdp_ringbuf_reserve", "xdp_ringbuf_sample")]


def _device(name: str, program: str) -> int:
    obj = load_object(LIBBPF / f"{name}.o")
    handles = {m: n for n, m in enumerate(obj.maps, start=1)}
    spec = obj.programs[program]
    insns = resolve_map_references(spec.instructions, spec.map_refs, handles)
    maps = {handles[m]: s for m, s in obj.maps.items()}
    return verify(insns, caps=load_profile("full"), maps=maps).insns_processed


def _kernel(name: str, program: str) -> int:
    obj = load_object(LIBBPF / f"{name}.o")
    maps = {n: KernelMap.create(s) for n, s in obj.maps.items()}
    try:
        prog = load_program_spec(obj.programs[program], maps, log_level=1, log_size=1 << 20)
        prog.close()
    finally:
        for live in maps.values():
            live.close()
    return int(prog.log.split("processed ")[1].split(" ")[0])


@pytest.mark.parametrize(("name", "program"), PROGRAMS, ids=[p for _, p in PROGRAMS])
def test_fixture_programs_verify(name, program):
    processed = _device(name, program)
    if KERNEL:  # the kernel loads them too, after about as much work
        theirs = _kernel(name, program)
        assert 0.7 * theirs <= processed <= 1.1 * theirs, (processed, theirs)


LEAK_AT_JOIN = """
lddw %r1, map_fd(5)
mov %r2, 8
mov %r3, 0
call 131
jne %r0, 0, join
join:
mov %r0, 2
exit
"""
#: the fall-through (NULL: nothing held) reaches ``join`` first and closes a checkpoint there;
#: the other path holds the reservation, with the same live registers (none)
LEAK_AFTER_NULL_PATH = LEAK_AT_JOIN.replace("jne %r0, 0, join\njoin:",
                                            "jne %r0, 0, join\nmov %r1, 0\njoin:")


def test_a_path_holding_a_reference_is_not_pruned_by_one_holding_none():
    """(Checkpoints kept at every prune point, ``state_freq``, so one waits at ``join``.)"""
    with pytest.raises(VerifierError, match="Unreleased reference id=2 alloc_insn=4"):
        verify(assemble(LEAK_AFTER_NULL_PATH), caps=FULL, maps=RING, state_freq=True)


def test_without_comparing_references_the_leak_would_pass(monkeypatch):
    """The test above can fail: pruning that ignores references (in ``covers`` and in the
    checkpoints' shapes) accepts the leak."""
    keys = explored.PrunePoint.keys

    def keys_without_refs(self, state, fingerprint=True):
        held, state.refs = state.refs, ()
        try:
            return keys(self, state, fingerprint)
        finally:
            state.refs = held

    monkeypatch.setattr(prune, "refs_cover", lambda old, cur, same: True)
    monkeypatch.setattr(explored.PrunePoint, "keys", keys_without_refs)
    verify(assemble(LEAK_AFTER_NULL_PATH), caps=FULL, maps=RING, state_freq=True)


def test_references_are_matched_through_the_id_map():
    """Two paths holding one reservation each, under different ids, meet where the
    pointer is live: the second is pruned (ids correspond), and still released."""
    text = """
    ldxw %r7, [%r1+16]
    lddw %r1, map_fd(5)
    mov %r2, 8
    mov %r3, 0
    jeq %r7, 0, other
    call 131
    ja join
    other:
    call 131
    join:
    jeq %r0, 0, out
    mov %r1, %r0
    mov %r2, 0
    call 133
    out:
    mov %r0, 2
    exit
    """
    stats = verify(assemble(text), caps=FULL, maps=RING, log_level=2, state_freq=True)
    assert any(line.text == "safe" for line in stats.log.lines)
    leak = text.replace("call 133\n", "")
    with pytest.raises(VerifierError, match="Unreleased reference"):
        verify(assemble(leak), caps=FULL, maps=RING, state_freq=True)
