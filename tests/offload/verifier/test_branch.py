"""Branch narrowing: the shortcut for two constants agrees with the general narrowing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa.opcodes import JmpOp
from offload.verifier.branch import _NOT_JSET, holds, narrow, narrow_sets
from offload.verifier.scalar import Scalar
from offload.verifier.tnum import U64

values = st.one_of(st.integers(0, U64), st.integers(0, 70), st.integers(U64 - 70, U64),
                   st.integers((1 << 31) - 3, (1 << 32) + 3),
                   st.integers((1 << 63) - 3, (1 << 63) + 3))
conditions = st.sampled_from([JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JGE, JmpOp.JLT,
                              JmpOp.JLE, JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE,
                              JmpOp.JSET, _NOT_JSET])


@settings(max_examples=600, deadline=None)
@given(values, values, conditions, st.sampled_from([32, 64]), st.booleans())
def test_two_constants_narrow_as_the_general_rule_does(x, y, op, bits, same):
    if same:
        y = x
    a, b = Scalar.const(x), Scalar.const(y)
    general = narrow_sets(op, a, b, bits)
    assert narrow(op, a, b, bits) == general
    assert holds(op, x, y, bits) == (general is not None)


def test_holds_reads_the_width_and_the_sign():
    assert holds(JmpOp.JEQ, 1 << 32, 0, 32) and not holds(JmpOp.JEQ, 1 << 32, 0, 64)
    assert holds(JmpOp.JSLT, U64, 0, 64) and not holds(JmpOp.JLT, U64, 0, 64)
    assert holds(JmpOp.JSLT, 0xFFFFFFFF, 0, 32) and not holds(JmpOp.JSLT, 0xFFFFFFFF, 0, 64)
    assert holds(JmpOp.JSET, 6, 2, 64) and holds(_NOT_JSET, 6, 1, 64)
