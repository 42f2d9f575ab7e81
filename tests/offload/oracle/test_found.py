"""Bugs the generated programs found, each as its smallest program.

Open bugs are strict expected failures (they start passing when fixed: drop the mark then,
and turn on what the generator or the differential test left out for them); fixed ones stay
as regression tests.
"""

from __future__ import annotations

import itertools

import pytest

from offload.backends.builtin import BuiltinBackend
from offload.caps.profiles import load_profile
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType, ProgType
from offload.verifier import verify

CAPS = load_profile("full")
ENGINES = ("reference", "fast")


def _backend(engine: str) -> BuiltinBackend:
    return BuiltinBackend(CAPS, engine=engine, clock=itertools.count(0, 1000).__next__)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tail_call_past_the_limit_falls_through(engine):
    """bpf_tail_call fails once the chain holds 33 tail calls and the program goes on with the
    next instruction (bpf-helpers(7)). A program tail-calling itself through slot 0 counts
    its runs in a map value: 34 runs, then the failed call returns and the program exits
    with XDP_PASS. (Found with SELF_TAIL_CALLS in test_generated.py.)"""
    backend = _backend(engine)
    backend.create_map(1, MapSpec("progs", MapType.PROG_ARRAY, 4, 4, 1))
    backend.create_map(2, MapSpec("runs", MapType.ARRAY, 4, 8, 1))
    backend.load_program(10, assemble("""
        mov %r6, %r1
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_fd(2)
        call 1
        jeq %r0, 0, +2
        mov %r1, 1
        lock add [%r0+0], %r1
        mov %r1, %r6
        lddw %r2, map_fd(1)
        mov %r3, 0
        call 12
        mov %r0, 2
        exit
    """), prog_type=ProgType.XDP, name="chain", license="GPL")
    backend.map(1).update(bytes(4), (10).to_bytes(4, "little"))
    out = backend.run_xdp(10, bytes(64))
    assert out.error is None, out.error
    assert out.retval == 2
    assert int.from_bytes(backend.map(2).lookup(bytes(4)), "little") == 34


@pytest.mark.parametrize("engine", ENGINES)
def test_a_checked_packet_pointer_passed_to_a_function(engine):
    """A function storing through a packet pointer its caller checked (the fast engine once
    raised NameError: the function's code used the packet without binding it)."""
    backend = _backend(engine)
    backend.load_program(10, assemble("""
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 8
        jgt %r4, %r3, out
        mov %r1, %r2
        call local store
        out:
        mov %r0, 2
        exit
        store:
        stdw [%r1+0], 1
        mov %r0, 0
        exit
    """), prog_type=ProgType.XDP, name="store", license="GPL")
    out = backend.run_xdp(10, bytes(16))
    assert (out.error, out.retval, out.data) == (None, 2, b"\x01" + bytes(15))


def test_check_mtu_is_verified():
    """bpf_check_mtu's MTU pointer has no size argument after it (the verifier once failed
    with "verifier bug: AssertionError" on every call)."""
    verify(assemble("""
        mov %r6, %r1
        stw [%r10-4], 0
        mov %r1, %r6
        mov %r2, 1
        mov %r3, %r10
        add %r3, -4
        mov %r4, 0
        mov %r5, 0
        call 163
        ldxw %r0, [%r10-4]
        mov %r0, 2
        exit
    """), caps=CAPS)
