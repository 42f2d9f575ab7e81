"""movsx, sign-extending loads and bswap lowered to v1: equal results for all inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa import assemble
from offload.lowering import LoweringError, lower, lower_with_report

from .differential import SCRATCH_AREA, assert_equivalent, harness, memory_for, regs, values64

MOVSX = ["movsx864", "movsx1664", "movsx3264", "movsx832", "movsx1632"]


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(MOVSX), a=values64, b=values64, d=regs, s=regs)
def test_movsx(op, a, b, d, s):
    values = {d: a, s: b}
    assert_equivalent(harness(f"{op} %r{d}, %r{s}", {d, s}), memory_for(values), 1)


@settings(max_examples=150, deadline=None)
@given(size=st.sampled_from("bhw"), data=st.binary(min_size=16, max_size=16),
       off=st.integers(0, 8), d=regs)
def test_sign_extending_loads(size, data, off, d):
    body = f"mov %r9, %r1\nadd %r9, {SCRATCH_AREA}\nldxs{size} %r{d}, [%r9+{off}]"
    assert_equivalent(harness(body, {d}), memory_for({}, data), 1)


def test_sign_extending_load_into_its_base_register():
    body = f"mov %r3, %r1\nldxsh %r3, [%r3+{SCRATCH_AREA}]\nmov %r0, %r3"
    data = memory_for({}, b"\x34\x92")
    assert_equivalent(harness(body, {3}), data, 1)


@settings(max_examples=100, deadline=None)
@given(width=st.sampled_from([16, 32, 64]), a=values64, d=regs)
def test_bswap(width, a, d):
    insns = assert_equivalent(harness(f"bswap{width} %r{d}", {d}), memory_for({d: a}), 1)
    assert f"be{width} %r{d}" in [str(i) for i in insns]


def test_bswap_on_a_big_endian_target_is_le():
    insns = lower(assemble("bswap32 %r0\nexit"), 3, byte_order="big")
    assert str(insns[0]) == "le32 %r0"


def test_unknown_byte_order_is_refused():
    with pytest.raises(LoweringError, match="byte order"):
        lower(assemble("bswap32 %r0\nexit"), 3, byte_order="middle")  # type: ignore[arg-type]


def test_report_counts_kinds_and_growth():
    program = assemble("movsx864 %r0, %r0\nmovsx864 %r0, %r0\nbswap16 %r0\nexit")
    report = lower_with_report(program, 1).report
    assert report.counts == {"bswap16": 1, "movsx864": 2}
    assert (report.original_slots, report.lowered_slots, report.growth) == (4, 8, 4)
    assert report.source_version == 4 and report.target_version == 1
    assert "2 movsx864" in str(report)
