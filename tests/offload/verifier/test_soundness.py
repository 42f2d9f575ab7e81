"""Soundness: programs the verifier accepts never fault in the engine, whatever the packet.

Hypothesis builds programs from snippets that are often unsafe by a byte (packet reads near
the proven length, masked indices into map values, stack reads of possibly unwritten slots,
arithmetic feeding offsets); whatever the verifier accepts is loaded on the built-in backend
and run on random frames, and must finish without a memory fault or any other run-time error.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from offload.backends.builtin import BuiltinBackend
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from offload.verifier import VerifierError

from .suite import FULL

SIZES = {1: "b", 2: "h", 4: "w", 8: "dw"}
ARRAY = MapSpec("values", MapType.ARRAY, 4, 16, 4)


@st.composite
def snippet(draw, n: int) -> str:
    kind = draw(st.sampled_from(["pkt", "pkt_var", "pkt_write", "stack_write", "stack_read",
                                 "alu", "map", "random", "branch"]))
    end = f"end{n}"
    size = draw(st.sampled_from(sorted(SIZES)))
    sz = SIZES[size]
    if kind in ("pkt", "pkt_var", "pkt_write"):
        proven = draw(st.integers(0, 40))
        off = draw(st.integers(-2, 42))
        head = (f"ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r4, %r2\nadd %r4, {proven}\n"
                f"jgt %r4, %r3, {end}\n")
        if kind == "pkt":
            body = f"ldx{sz} %r8, [%r2{off:+d}]\n"
        elif kind == "pkt_write":
            body = f"stx{sz} [%r2{off:+d}], %r7\n"
        else:
            mask = draw(st.sampled_from([1, 3, 7, 15, 31, 63]))
            body = f"mov %r5, %r7\nand %r5, {mask}\nadd %r2, %r5\nldx{sz} %r8, [%r2{off:+d}]\n"
        return head + body + f"{end}:\n"
    if kind == "stack_write":
        slot = draw(st.integers(1, 8)) * 8
        return f"st{sz} [%r10-{slot}], {draw(st.integers(-5, 5))}\n"
    if kind == "stack_read":
        slot = draw(st.integers(1, 8)) * 8
        return f"ldx{sz} %r8, [%r10-{slot}]\n"
    if kind == "alu":
        op = draw(st.sampled_from(["add", "sub", "mul", "and", "or", "xor", "lsh", "rsh",
                                   "arsh", "mod", "div", "add32", "and32", "rsh32"]))
        reg = draw(st.sampled_from(["%r7", "%r8"]))
        if op.startswith(("lsh", "rsh", "arsh")):
            operand = str(draw(st.integers(0, 31)))
        elif op in ("mod", "div"):
            operand = str(draw(st.integers(1, 40)))
        else:
            operand = draw(st.sampled_from(["%r7", "%r8", str(draw(st.integers(-50, 300)))]))
        return f"{op} {reg}, {operand}\n"
    if kind == "map":
        mask = draw(st.sampled_from([3, 7, 8, 15]))
        off = draw(st.integers(-1, 16))
        access = draw(st.sampled_from([f"ldx{sz} %r8, [%r0{off:+d}]",
                                       f"stx{sz} [%r0{off:+d}], %r7"]))
        return ("stw [%r10-4], 1\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd(1)\ncall 1\n"
                f"jeq %r0, 0, {end}\nmov %r1, %r7\nand %r1, {mask}\nadd %r0, %r1\n{access}\n"
                f"{end}:\n")
    if kind == "random":
        return "call 7\nmov %r7, %r0\n"
    limit = draw(st.integers(0, 64))
    return f"jgt %r7, {limit}, {end}\nmov %r8, %r7\n{end}:\n"


@st.composite
def program(draw) -> str:
    parts = ["mov %r6, %r1\nmov %r7, 0\nmov %r8, 0\nldxw %r7, [%r6+16]\n"]
    for n in range(draw(st.integers(1, 6))):
        parts.append(draw(snippet(n)))
    parts.append(f"mov %r0, {draw(st.integers(0, 4))}\nexit\n")
    return "".join(parts)


frames = st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(program(), frames, st.integers(0, 7))
def test_accepted_programs_never_fault(text, packets, queue):
    backend = BuiltinBackend(FULL, engine="reference", seed=1)
    backend.create_map(1, ARRAY)
    try:
        backend.load_program(100, assemble(text), prog_type=6, name="generated", license="GPL")
    except VerifierError:
        assume(False)
    for frame in packets:
        outcome = backend.run_xdp(100, frame, rx_queue_index=queue)
        assert outcome.error is None, (outcome.error, text, frame)
