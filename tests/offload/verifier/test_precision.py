"""Precision tracking: pruning may ignore a scalar only when no check relied on its value.

Every program here meets two paths at one point: on one a value is safe, on the other it is
not (or both are safe). Whichever path is explored first closes its checkpoints; the second
reaches them with another value. If the demand made where the value is used did not walk back
to the meeting point - through copies, arithmetic, spills and fills, calls and returns, linked
copies, the packet length proven - the second path would be pruned there and its unsafe use
never seen. So each program must be refused exactly when an unsafe value can arrive, with
precision tracking on and off alike. The programs are drawn from templates (value, flow,
distraction, use, path order) by a seeded generator, plus a few written out. One flow reads
the value back from a stack slot each path wrote before they met, which stack liveness
(``liveness.py``) must count as read.
"""

from __future__ import annotations

import dataclasses
import os
import random

import pytest

from offload.caps import load_profile
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from offload.verifier import VerifierError, verify

CAPS = load_profile("full")
STRICT = dataclasses.replace(CAPS, check_xdp_action=True)
MAPS = {1: MapSpec("values", MapType.ARRAY, 4, 16, 4)}
PROGRAMS = int(os.environ.get("OFFLOAD_PRECISION_PROGRAMS", "400"))

_PROLOGUE = """
mov %r6, %r1
stdw [%r10-8], 0
stdw [%r10-16], 0
stdw [%r10-24], 0
stdw [%r10-32], 0
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 48
jgt %r4, %r3, out
ldxb %r7, [%r2+0]
"""
_EPILOGUE = """
out:
mov %r0, 2
exit
"""


def accepted(text: str, *, precision: bool = True, caps=CAPS) -> bool:
    try:
        verify(assemble(text), caps=caps, maps=MAPS, log_level=0, precision=precision,
               state_freq=True)
    except VerifierError:
        return False
    return True


# ---------------------------------------------------------------- uses of the value in r9
#: (safe values, unsafe values, code using %r9) - the code ends by falling through
USES = {
    "map value offset": ((0, 8, 12), (13, 16, 200), """
stw [%r10-36], 0
lddw %r1, map_fd(1)
mov %r2, %r10
add %r2, -36
call 1
jeq %r0, 0, out
add %r0, %r9
ldxw %r1, [%r0+0]
"""),
    "stack offset": ((0, 8, 24), (32, 40, 300), """
mov %r1, %r10
add %r1, -32
add %r1, %r9
stb [%r1+0], 1
"""),
    "helper size": ((1, 8, 32), (33, 40, 64), """
mov %r1, %r10
add %r1, -32
mov %r2, %r9
mov %r3, 0
mov %r4, 0
mov %r5, 0
call 28
"""),
    "decided branch": ((0,), (1, 5), """
jeq %r9, 0, +1
ldxdw %r1, [%r10-64]
"""),
    "packet offset": ((0, 8, 16), (24, 40, 100), """
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 48
jgt %r4, %r3, out
add %r2, %r9
ldxdw %r1, [%r2+24]
"""),
}

#: How the value in %r8 reaches %r9 (``{}`` marks where the use goes, for flows into a call).
FLOWS = {
    "copy": "mov %r9, %r8\n{}",
    "arithmetic": "mov %r9, 3\nadd %r9, %r8\nsub %r9, 3\nlsh %r9, 1\nrsh %r9, 1\n{}",
    "32-bit copy": "mov32 %r9, %r8\n{}",
    "spill and fill": "stxdw [%r10-8], %r8\nmov %r8, 0\nldxdw %r9, [%r10-8]\n{}",
    "fill of a spilled constant's byte": "stxdw [%r10-8], %r8\nldxb %r9, [%r10-8]\n{}",
    "through a call": "mov %r1, %r8\ncall local ident\nmov %r9, %r0\n{}",
    "stack slot written on each path": "mov %r8, 0\nldxdw %r9, [%r10-16]\n{}",
    "spill in a caller, fill in a callee": (
        "stxdw [%r10-8], %r8\nmov %r1, %r10\nadd %r1, -8\ncall local fetch\nmov %r9, %r0\n{}"),
}
_FUNCTIONS = {"ident": "ident:\nmov %r0, %r1\nexit\n",
              "fetch": "fetch:\nldxdw %r0, [%r1+0]\nexit\n"}

#: Jumps on the unknown byte between the meeting point and the use: more checkpoints
DISTRACTIONS = (
    "",
    "jeq %r7, 5, +1\nmov %r2, 1\n",
    "jgt %r7, 200, +2\nmov %r3, 7\nja +1\nmov %r3, 9\njset %r7, 1, +0\n",
    "mov %r5, 0\nloop{n}:\nadd %r5, 1\njlt %r5, 3, loop{n}\n",
)


def build(use: str, value_a: int, value_b: int, flow: str, distraction: str,
          swap: bool, n: int = 0) -> str:
    """A program where the value in %r8 is ``value_a`` or ``value_b`` (the first explored on
    the fall-through unless ``swap``) and reaches the use through ``flow``."""
    first, second = (value_b, value_a) if swap else (value_a, value_b)
    body = FLOWS[flow].format(distraction.format(n=n) + USES[use][2])
    # the value also goes to a stack slot on each path, which only some flows read back
    spill = "stxdw [%r10-16], %r8\n"
    return (_PROLOGUE + f"mov %r8, {first}\n{spill}jgt %r7, 100, other\nja meet\n"
            f"other:\nmov %r8, {second}\n{spill}meet:\n" + body + "ja out\n" + _EPILOGUE +
            "".join(code for name, code in _FUNCTIONS.items() if f"call local {name}" in body))


def draw(rng: random.Random, n: int) -> tuple[str, bool, str]:
    """(program, whether it is safe, description)."""
    use = rng.choice(sorted(USES))
    safe_values, unsafe_values, _ = USES[use]
    flow = rng.choice(sorted(FLOWS))
    safe = rng.random() < 0.3
    a = rng.choice(safe_values)
    b = rng.choice(safe_values if safe else unsafe_values)
    if flow == "fill of a spilled constant's byte" and b > 255:
        b = unsafe_values[0]
    distraction = rng.choice(DISTRACTIONS)
    swap = rng.random() < 0.5
    what = f"{use} via {flow}, values {a} and {b}{' (unsafe explored first)' if swap else ''}"
    return build(use, a, b, flow, distraction, swap, n), safe, what


def test_the_templates_are_refused_without_pruning_tricks() -> None:
    """Sanity of the templates: each use refuses its unsafe values on a single path."""
    for use, (safe_values, unsafe_values, _) in USES.items():
        for value in safe_values:
            assert accepted(build(use, value, value, "copy", "", False)), (use, value)
        for value in unsafe_values:
            assert not accepted(build(use, value, value, "copy", "", False)), (use, value)


@pytest.mark.parametrize("chunk", range(4))
def test_generated_meetings_keep_the_unsafe_path(chunk: int) -> None:
    """Refused exactly when an unsafe value can arrive, with and without precision tracking
    (``OFFLOAD_PRECISION_PROGRAMS`` programs in all)."""
    rng = random.Random(0x5EED + chunk)
    refused = 0
    for n in range(PROGRAMS // 4):
        text, safe, what = draw(rng, n)
        with_tracking = accepted(text)
        assert with_tracking == safe, f"{what}: {'accepted' if with_tracking else 'refused'}" \
            f" with precision tracking\n{text}"
        assert accepted(text, precision=False) == safe, f"{what}: differs without tracking"
        refused += not safe
    assert refused >= PROGRAMS // 8  # the draw really makes unsafe programs


def test_the_value_at_exit_is_demanded() -> None:
    """With R0 checked at exit (an XDP action), a path returning 7 meets one returning 2."""
    for swap in (False, True):
        first, second = (7, 2) if swap else (2, 7)
        text = (_PROLOGUE + f"mov %r8, {first}\njgt %r7, 100, other\nja meet\nother:\n"
                f"mov %r8, {second}\nmeet:\njeq %r7, 3, +1\nmov %r2, 0\nmov %r0, %r8\nexit\n"
                + _EPILOGUE)
        assert not accepted(text, caps=STRICT)
        assert accepted(text.replace("mov %r8, 7", "mov %r8, 1"), caps=STRICT)


def test_linked_copies_narrowed_together() -> None:
    """A copy linked to the compared register takes the narrowing and the demand."""
    def program(mask: int) -> str:
        return (_PROLOGUE + "mov %r8, %r7\nand %r8, 7\njgt %r7, 100, other\nja meet\nother:\n"
                f"mov %r8, %r7\nand %r8, {mask}\nmeet:\nmov %r9, %r8\njgt %r8, 15, out\n"
                + USES["map value offset"][2] + "ja out\n" + _EPILOGUE)

    assert accepted(program(7))
    assert not accepted(program(63))  # 0..15 after the jump: a 4-byte load at 15 overruns
    assert not accepted(program(63), precision=False)


def test_proven_packet_length_is_demanded() -> None:
    """One path proves 48 bytes, the other fewer; a variable-offset access needs 32."""
    def program(short: int) -> str:
        return ("mov %r6, %r1\nldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r4, %r2\n"
                "add %r4, 1\njgt %r4, %r3, out\nldxb %r7, [%r2+0]\njgt %r7, 100, other\n"
                "mov %r4, %r2\nadd %r4, 48\njgt %r4, %r3, out\nja meet\nother:\n"
                f"mov %r4, %r2\nadd %r4, {short}\njgt %r4, %r3, out\nmeet:\n"
                "jeq %r7, 3, +1\nmov %r1, 0\nldxw %r2, [%r6+0]\nmov %r5, %r7\nand %r5, 7\n"
                "add %r2, %r5\nldxb %r0, [%r2+24]\nja out\n" + _EPILOGUE)

    assert accepted(program(40))
    assert not accepted(program(20))
    assert not accepted(program(20), precision=False)


def test_ranges_granted_from_the_proven_length() -> None:
    """A pointer checked for 0 bytes takes its range from the length proven before: one path
    proved a byte, the other none, and both meet before the check."""
    for first_proves in (True, False):
        prove = "mov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, meet\nldxb %r8, [%r2+0]\n"
        skip = "ja meet\n"
        text = ("mov %r6, %r1\nldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nldxw %r7, [%r6+16]\n"
                "jgt %r7, 3, other\n" + (prove if first_proves else skip) + "other:\n"
                + (skip if first_proves else prove) + "meet:\nldxw %r2, [%r6+0]\n"
                "ldxw %r3, [%r6+4]\nmov %r4, %r2\nadd %r4, 0\njgt %r4, %r3, out\n"
                "ldxb %r8, [%r2+0]\nja out\n" + _EPILOGUE)
        assert not accepted(text), text
        assert not accepted(text, precision=False)


def test_imprecise_scalars_let_states_merge() -> None:
    """Paths that differ only in a number nothing checks are pruned as one: eight header
    bytes each steering a counter that only goes into a map value."""
    lines = [_PROLOGUE, "mov %r8, 0"]
    for i in range(8):
        lines.append(f"ldxb %r1, [%r2+{i}]\njgt %r1, 100, +1\nadd %r8, {i + 1}")
    lines.append(USES["map value offset"][2].replace("add %r0, %r9\n", "")
                 + "stxdw [%r0+0], %r8\nja out\n")
    text = "\n".join(lines) + _EPILOGUE
    # the map value is 16 bytes: an 8-byte store at 0 fits
    tracked = verify(assemble(text), caps=CAPS, maps=MAPS, log_level=0)
    untracked = verify(assemble(text), caps=CAPS, maps=MAPS, log_level=0, precision=False)
    assert tracked.insns_processed * 4 < untracked.insns_processed

