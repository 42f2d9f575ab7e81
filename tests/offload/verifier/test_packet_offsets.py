"""Offsets added to packet pointers: bounded as the kernel bounds them."""

from __future__ import annotations

from tests.offload.verifier.test_precision import _EPILOGUE, accepted


def test_a_large_packet_offset_is_refused_at_the_access_not_the_addition() -> None:
    """As the kernel's ``check_reg_sane_offset``: only the minimum of an offset added to a
    packet pointer is bounded; a pointer with a huge maximum gets no range from a
    comparison, so reading through it is what fails."""
    base = ("mov %r6, %r1\nldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nldxw %r4, [%r6+16]\n"
            "add %r2, %r4\nmov %r5, %r2\nadd %r5, 4\njgt %r5, %r3, out\n")
    assert accepted(base + "ja out\n" + _EPILOGUE)
    assert not accepted(base + "ldxb %r0, [%r2+0]\nja out\n" + _EPILOGUE)
    negative = base.replace("ldxw %r4, [%r6+16]\n", "lddw %r4, -0x40000000\n")
    assert not accepted(negative + "ja out\n" + _EPILOGUE)
