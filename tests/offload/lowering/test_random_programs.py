"""Random programs mixing every rewritten instruction with ordinary ones, loads and stores
from input memory, stack traffic and forward jumps across expansions: the lowered program
gives the same r0 and the same memory as the original, at every target version."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa.instruction import JMP_NAMES

from .differential import SCRATCH_AREA, assert_equivalent, imms, memory_for, values64

WRITABLE = [0, 2, 3, 4, 5, 6, 7, 8]  # r1 points at the memory, r9 at its scratch area
ALU = ["add", "sub", "mul", "or", "and", "xor", "mov", "div", "mod"]
SHIFTS = ["lsh", "rsh", "arsh"]
V4_ALU = ["sdiv", "smod"]
MOVSX = ["movsx864", "movsx1664", "movsx3264", "movsx832", "movsx1632"]
ATOMICS = ["lock fetch add", "lock fetch and", "lock fetch or", "lock fetch xor", "lock and",
           "lock or", "lock xor", "lock xchg", "lock cmpxchg", "lock add"]
SIZES = {"b": 1, "h": 2, "w": 4, "dw": 8}


@st.composite
def statement(draw, index: int, count: int, atomics: bool) -> str:
    reg = st.sampled_from(WRITABLE)
    d, s = draw(reg), draw(reg)
    kinds = ["alu", "shift", "v4alu", "movsx", "load", "store", "stack", "swap", "jump",
             "gotol"] + (["atomic"] if atomics else [])
    kind = draw(st.sampled_from(kinds))
    w = draw(st.sampled_from(["", "32"]))
    if kind == "alu":
        operand = f"%r{s}" if draw(st.booleans()) else str(draw(imms))
        return f"{draw(st.sampled_from(ALU))}{w} %r{d}, {operand}"
    if kind == "shift":
        return f"{draw(st.sampled_from(SHIFTS))}{w} %r{d}, {draw(st.integers(0, 31))}"
    if kind == "v4alu":
        operand = f"%r{s}" if draw(st.booleans()) else str(draw(imms))
        return f"{draw(st.sampled_from(V4_ALU))}{w} %r{d}, {operand}"
    if kind == "movsx":
        return f"{draw(st.sampled_from(MOVSX))} %r{d}, %r{s}"
    if kind == "swap":
        width = draw(st.sampled_from([16, 32, 64]))
        return f"{draw(st.sampled_from(['bswap', 'be', 'le']))}{width} %r{d}"
    if kind in ("load", "store"):
        size = draw(st.sampled_from(list(SIZES)))
        off = draw(st.integers(0, 64 - SIZES[size]))
        if kind == "store":
            return f"stx{size} [%r9+{off}], %r{s}"
        signed = "s" if size != "dw" and draw(st.booleans()) else ""
        return f"ldx{signed}{size} %r{d}, [%r9+{off}]"
    if kind == "stack":
        slot = -8 * draw(st.integers(1, 4))
        if draw(st.booleans()):
            return f"stxdw [%r10{slot}], %r{s}"
        return f"ldxdw %r{d}, [%r10{slot}]"
    if kind == "atomic":
        op = draw(st.sampled_from(ATOMICS))
        size = draw(st.sampled_from(["", "32"]))
        off = 8 * draw(st.integers(0, 7)) if not size else 4 * draw(st.integers(0, 15))
        return f"{op}{size} [%r9+{off}], %r{s}"
    target = f"L{draw(st.integers(index + 1, count))}"
    if kind == "gotol":
        return f"gotol {target}"
    operand = f"%r{s}" if draw(st.booleans()) else str(draw(imms))
    op = draw(st.sampled_from(list(JMP_NAMES.values())))
    return f"{op}{draw(st.sampled_from(['', '32']))} %r{d}, {operand}, {target}"


@st.composite
def programs(draw, atomics: bool) -> str:
    count = draw(st.integers(1, 25))
    lines = ["mov %r9, %r1", f"add %r9, {SCRATCH_AREA}"]
    lines += [f"ldxdw %r{reg}, [%r1+{8 * reg}]" for reg in WRITABLE]
    for index in range(count):
        lines.append(f"L{index}:")
        lines.append(draw(statement(index, count, atomics)))
    lines.append(f"L{count}:")
    # Which registers the end observes decides what is live where: a random subset.
    stored = draw(st.sets(st.sampled_from(WRITABLE)))
    lines += [f"stxdw [%r1+{8 * reg}], %r{reg}" for reg in sorted(stored)]
    lines.append("exit")
    return "\n".join(lines)


@st.composite
def inputs(draw) -> bytes:
    values = {reg: draw(values64) for reg in WRITABLE}
    return memory_for(values, draw(st.binary(min_size=64, max_size=64)))


@settings(max_examples=250, deadline=None)
@given(program=programs(atomics=False), data=inputs(), target=st.sampled_from([1, 2, 3]))
def test_random_programs_keep_their_results(program, data, target):
    assert_equivalent(program, data, target)


@settings(max_examples=120, deadline=None)
@given(program=programs(atomics=True), data=inputs(), target=st.sampled_from([1, 2]))
def test_random_programs_with_atomics_when_allowed(program, data, target):
    assert_equivalent(program, data, target, allow_non_atomic=True)
