"""The helper table of the conformance-suite convention (bpf_conformance and uBPF tests).

Those suites call a few test helpers by fixed ids; an engine judged by them must offer the
same ones: 0 gather_bytes, 1 memfrob, 2 no_op, 3 sqrti, 4 strcmp_ext, 5 unwind (the run stops
with r0 = 0 when its argument is 0).
"""

from __future__ import annotations

import math

from ..engine.alu import M64
from ..engine.interpreter import Execution, Helper

STRING_LIMIT = 1 << 16


def gather_bytes(ex: Execution, a: int, b: int, c: int, d: int, e: int) -> int:
    """Pack five bytes into one value: a in bits 32-39 down to e in bits 0-7."""
    return ((a & 0xFF) << 32) | ((b & 0xFF) << 24) | ((c & 0xFF) << 16) | ((d & 0xFF) << 8) | (
        e & 0xFF)


def memfrob(ex: Execution, address: int, length: int, *_: int) -> int:
    """XOR ``length`` bytes at ``address`` with 42, in place (as glibc's memfrob)."""
    data = ex.memory.read(address, length)
    ex.memory.write(address, bytes(byte ^ 42 for byte in data))
    return address


def no_op(ex: Execution, *_: int) -> int:
    return 0


def sqrti(ex: Execution, value: int, *_: int) -> int:
    """Integer square root of the low 32 bits."""
    return math.isqrt(value & 0xFFFFFFFF)


def strcmp_ext(ex: Execution, a: int, b: int, *_: int) -> int:
    """C strcmp of two NUL-terminated strings: the difference of the first differing bytes."""
    left = ex.memory.read_cstring(a, STRING_LIMIT) + b"\0"
    right = ex.memory.read_cstring(b, STRING_LIMIT) + b"\0"
    for x, y in zip(left, right):
        if x != y:
            return (x - y) & M64
    return 0


def unwind(ex: Execution, value: int, *_: int) -> int:
    """Return the argument; an argument of 0 ends the whole run with r0 = 0."""
    if value == 0:
        ex.finish(0)
    return value


CONFORMANCE_HELPERS: dict[int, Helper] = {
    0: gather_bytes,
    1: memfrob,
    2: no_op,
    3: sqrti,
    4: strcmp_ext,
    5: unwind,
}
