"""Atomics beyond lock add: refused by default, load/op/store only when allowed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa import assemble
from offload.lowering import LoweringError, lower

from .differential import (
    REGS,
    SCRATCH_AREA,
    assert_equivalent,
    harness,
    memory_for,
    outcome,
    values64,
)

OPS = ["lock fetch add", "lock fetch and", "lock fetch or", "lock fetch xor", "lock and",
       "lock or", "lock xor", "lock xchg", "lock cmpxchg"]
# Registers other than r1 (the memory pointer) that may hold the address; r9 is the default.
ADDRESS_REGS = [0, 2, 9]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("suffix", ["", "32"])
def test_refused_by_default_with_the_reason(op, suffix):
    program = assemble(f"mov %r0, 0\nmov %r2, 1\n{op}{suffix} [%r10-8], %r2\nexit")
    with pytest.raises(LoweringError) as err:
        lower(program, 2)
    assert err.value.insn_index == 2
    assert "atomic" in err.value.reason and "allow_non_atomic" in err.value.reason
    assert "insn 2" in str(err.value)


def test_lock_add_needs_no_rewrite():
    program = assemble("mov %r2, 1\nstxdw [%r10-8], %r2\nlock add [%r10-8], %r2\n"
                       "lock add32 [%r10-8], %r2\nmov %r0, 0\nexit")
    assert lower(program, 1) == program


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(OPS), suffix=st.sampled_from(["", "32"]), old=values64, value=values64,
       r0=values64, base=st.sampled_from(ADDRESS_REGS), src=st.sampled_from(REGS),
       off=st.sampled_from([0, 8, 16]), others=st.sets(st.sampled_from(REGS)))
def test_non_atomic_lowering_when_allowed(op, suffix, old, value, r0, base, src, off, others):
    body = (f"mov %r{base}, %r1\nadd %r{base}, {SCRATCH_AREA}\n"
            f"stxdw [%r{base}+{off}], %r{src}\n"
            f"{op}{suffix} [%r{base}+{off}], %r{src}")
    if src == base:
        body = (f"mov %r{base}, %r1\nadd %r{base}, {SCRATCH_AREA}\n"
                f"{op}{suffix} [%r{base}+{off}], %r{src}")
    extra = bytes(SCRATCH_AREA - 80) + old.to_bytes(8, "little") * 3
    values = {src: value, 0: r0} if src != 0 else {0: value}
    program = harness(body, ({src, 0} | others) - {base})  # base holds a pointer: not stored
    assert_equivalent(program, memory_for(values, extra), 1, allow_non_atomic=True)


def test_stack_atomics_with_every_register_live():
    body = "stxdw [%r10-8], %r3\nlock fetch xor [%r10-8], %r2\nlock cmpxchg32 [%r10-8], %r4\n" \
           "ldxdw %r5, [%r10-8]"
    values = {reg: 0x0123456789ABCDEF * (reg + 1) for reg in REGS}
    values[0] = values[3] ^ values[2]
    assert_equivalent(harness(body, set(REGS)), memory_for(values), 1, allow_non_atomic=True)


@pytest.mark.parametrize("suffix", ["", "32"])
def test_cmpxchg_whose_address_is_in_r0(suffix):
    """r0 is both the address and the expected value: the 32-bit compare must not truncate
    the address register. Regions start at multiples of 2^32, so the pointer's low half is
    its offset, and the stored old value is made to match it."""
    body = f"""
    mov %r0, %r1
    add %r0, {SCRATCH_AREA}
    mov %r2, {SCRATCH_AREA}
    stxdw [%r0], %r2
    mov %r3, 0x77
    lock cmpxchg{suffix} [%r0], %r3
    ldxdw %r4, [%r1+{SCRATCH_AREA}]
    """
    insns = assert_equivalent(harness(body, {4}), memory_for({}), 1, allow_non_atomic=True)
    _, r0, memory = outcome(insns, memory_for({}))
    assert r0 == SCRATCH_AREA
    # r4 holds the memory word: only the 32-bit form matches (the 64-bit r0 is the pointer).
    expected = 0x77 if suffix else SCRATCH_AREA
    assert int.from_bytes(memory[32:40], "little") == expected
