"""The interpreter's arithmetic, swaps and jumps against a literal model of RFC 9669."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from offload.engine.harness import run_on_memory
from offload.isa import assemble

from .rfc9669_model import model_alu, model_jump, model_swap

# Values biased toward the edges that matter: 0, -1, INT_MIN, powers of two.
EDGES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
         0xFFFFFFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
         0xFFFF_FFFF_FFFF_FFFF, 63, 64, 31, 32]
u64s = st.one_of(st.sampled_from(EDGES), st.integers(0, (1 << 64) - 1))
imm32s = st.one_of(st.sampled_from([0, 1, -1, 0x7FFFFFFF, -0x80000000, 31, 32, 63, 64]),
                   st.integers(-(1 << 31), (1 << 31) - 1))
BINARY = ["add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "xor", "lsh", "rsh",
          "arsh", "mov"]
JUMPS = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"]


def run(text: str) -> int:
    result, _ = run_on_memory(assemble(text))
    return result.r0


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BINARY), st.booleans(), u64s, u64s)
def test_alu_register_forms(name, wide, a, b):
    mnemonic = name if wide else name + "32"
    got = run(f"lddw %r0, {a}\nlddw %r1, {b}\n{mnemonic} %r0, %r1\nexit")
    assert got == model_alu(name, wide, a, b)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BINARY), st.booleans(), u64s, imm32s)
def test_alu_immediate_forms(name, wide, a, imm):
    mnemonic = name if wide else name + "32"
    got = run(f"lddw %r0, {a}\n{mnemonic} %r0, {imm}\nexit")
    # RFC 9669 4.1: the immediate is sign-extended to 64 bits for ALU64, used as 32 for ALU.
    assert got == model_alu(name, wide, a, imm)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), u64s)
def test_neg(wide, a):
    got = run(f"lddw %r0, {a}\nneg{'' if wide else '32'} %r0\nexit")
    assert got == model_alu("neg", wide, a, 0)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["864", "1664", "3264", "832", "1632"]), u64s, u64s)
def test_movsx(form, junk, b):
    width, wide = int(form[:-2]), form.endswith("64")
    got = run(f"lddw %r0, {junk}\nlddw %r1, {b}\nmovsx{form} %r0, %r1\nexit")
    assert got == model_alu(f"movsx{width}", wide, junk, b)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["le", "be", "bswap"]), st.sampled_from([16, 32, 64]), u64s)
def test_byte_swaps(kind, width, a):
    got = run(f"lddw %r0, {a}\n{kind}{width} %r0\nexit")
    assert got == model_swap("le" if kind == "le" else "be", width, a)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(JUMPS), st.booleans(), u64s, u64s, imm32s, st.booleans())
def test_conditional_jumps(name, wide, a, b, imm, use_imm):
    mnemonic = name if wide else name + "32"
    operand = str(imm) if use_imm else "%r2"
    got = run(f"lddw %r1, {a}\nlddw %r2, {b}\nmov %r0, 0\n{mnemonic} %r1, {operand}, +1\n"
              "exit\nmov %r0, 1\nexit")
    assert got == int(model_jump(name, wide, a, imm if use_imm else b))
