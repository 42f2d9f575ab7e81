"""What the verifier knows about stack memory after a helper may have written it.

The class of bug: a helper writes stack bytes (an uninitialised-memory argument it fills, or
read-write memory) and the verifier keeps believing what the bytes held before - zeros,
constants, spilled registers - so a branch on the old value is wrongly dead, or a pointer is
filled back. Every byte a helper MAY write must become unknown; a spilled pointer may never be
overwritten piecemeal (what is left of it would read back as a number) nor read by a helper.

The probe used throughout: after the call, load the old location and branch on the old value;
the other side does something invalid (``ldxdw r0, [r10+8]``). A verifier that still believes
the old value never explores that side and accepts; a sound one explores it and refuses there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from offload.backends.kernel import kernel_available  # noqa: I001
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from offload.verifier import VerifierError, verify

from .kernel_load import kernel_verdict
from .suite import FULL, Case

KERNEL, WHY = kernel_available()
BAD = "ldxdw %r0, [%r10+8]"
BAD_REASON = "invalid stack off=8 size=8"
QUEUE = {6: MapSpec("queue", MapType.QUEUE, 0, 8, 16)}
#: R7 = 0 or 8, unknown to the verifier (from the context's ingress_ifindex)
VAR8 = "ldxw %r7, [%r6+12]\nand %r7, 8"


@dataclass(frozen=True)
class Writer:
    """A helper that writes stack memory at R(ptr), ``size`` bytes, set up by ``call``."""

    name: str
    ptr: int  # the register carrying the pointer
    call: str  # the call with every other argument set up
    size: int
    maps: dict | None = None


WRITERS = [
    Writer("xdp_load_bytes fill", 3,
           "mov %r1, %r6\nmov %r2, 0\nmov %r4, 16\ncall 189", 16),
    Writer("fib_lookup read-write", 2,
           "mov %r1, %r6\nmov %r3, 16\nmov %r4, 0\ncall 69", 16),
    Writer("check_mtu fixed-size read-write", 3,
           "mov %r1, %r6\nmov %r2, 0\nmov %r4, 0\nmov %r5, 0\ncall 163", 4),
    Writer("map_pop_elem value fill", 2, "lddw %r1, map_fd(6)\ncall 88", 8, QUEUE),
    Writer("map_peek_elem value fill", 2, "lddw %r1, map_fd(6)\ncall 89", 8, QUEUE),
]

#: What the 32 bytes fp-32 .. fp-1 hold before the call, and the value an 8-byte load of
#: any of their slots gave then.
PRIOR = {
    "zero bytes": ("".join(f"stw [%r10-{4 * i}], 0\n" for i in range(1, 9)), 0),
    "spilled zero": ("mov %r8, 0\n" + "".join(f"stxdw [%r10-{8 * i}], %r8\n"
                                              for i in range(1, 5)), 0),
    "spilled constant": ("mov %r8, 7\n" + "".join(f"stxdw [%r10-{8 * i}], %r8\n"
                                                  for i in range(1, 5)), 7),
}


def probe(writer: Writer, prior: str, *, variable: bool, read: int) -> str:
    """Set fp-32..fp-1, let the helper write at fp-32 (+0 or +8 when ``variable``), then
    branch on the slot at fp``read`` still holding its old value."""
    init, old = PRIOR[prior]
    pointer = f"mov %r{writer.ptr}, %r10\nadd %r{writer.ptr}, -32\n"
    if variable:
        pointer += f"add %r{writer.ptr}, %r7\n"
    return (f"mov %r6, %r1\n{VAR8}\n{init}{pointer}{writer.call}\n"
            f"ldxdw %r0, [%r10{read}]\njeq %r0, {old}, ok\n{BAD}\nok:\nmov %r0, 2\nexit\n")


def _verdict(text: str, maps=None) -> str:
    try:
        verify(assemble(text), caps=FULL, maps=maps or {})
    except VerifierError as err:
        return err.reason
    return "accepted"


def _kernel(text: str, maps=None) -> tuple[bool, str]:
    return kernel_verdict(Case("probe", Path("probe"), tuple(assemble(text)), "", maps or {},
                               FULL))


CLASS = [(w, p, v) for w in WRITERS for p in PRIOR for v in (False, True)]


@pytest.mark.parametrize(("writer", "prior", "variable"), CLASS,
                         ids=[f"{w.name}-{p}-{'var' if v else 'const'}" for w, p, v in CLASS])
def test_helper_stack_write_variable_offset_class(writer, prior, variable):
    """Every byte the helper may write is unknown afterwards; bytes it cannot reach keep
    what they held."""
    slots = -(-writer.size // 8) + variable  # the slots from fp-32 the helper may reach
    for read in range(-32, -32 + 8 * slots, 8):
        assert _verdict(probe(writer, prior, variable=variable, read=read),
                        writer.maps) == BAD_REASON, read
    beyond = -32 + 8 * slots
    assert _verdict(probe(writer, prior, variable=variable, read=beyond),
                    writer.maps) == "accepted"


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
def test_the_kernel_agrees_that_helper_writes_forget():
    """The host kernel (root) also explores the branch, and keeps the bytes out of reach."""
    disagreements = []
    for writer, prior, variable in CLASS:
        if writer.maps and variable:
            continue  # a root kernel refuses nothing here that the device accepts
        slots = -(-writer.size // 8) + variable
        for read, expect in ((-32 + 8 * (slots - 1), False), (-32 + 8 * slots, True)):
            if expect and prior == "zero bytes":
                continue  # the kernel makes no zero of 4-byte BPF_ST stores: it explores both
            text = probe(writer, prior, variable=variable, read=read)
            accepted, reason = _kernel(text, writer.maps)
            if accepted != expect:
                disagreements.append(f"{writer.name}/{prior}/{variable}/fp{read}: kernel "
                                     f"{'accepts' if accepted else 'refuses: ' + reason}")
    assert not disagreements, "\n".join(disagreements)


def test_helper_write_reaches_the_callers_stack():
    """A function handing its caller's stack to a helper: the caller's slots are forgotten."""
    text = f"""
    mov %r6, %r1
    stw [%r10-8], 0
    stw [%r10-4], 0
    mov %r1, %r10
    add %r1, -8
    mov %r2, %r6
    call local fill
    ldxdw %r0, [%r10-8]
    jeq %r0, 0, ok
    {BAD}
    ok:
    mov %r0, 2
    exit
    fill:
    mov %r3, %r1
    mov %r1, %r2
    mov %r2, 0
    mov %r4, 8
    call 189
    mov %r0, 0
    exit
    """
    assert _verdict(text) == BAD_REASON


# ---------------------------------------------------------------- spilled registers
SPILL_PTR = "stxdw [%r10-16], %r6\n"  # the context pointer, spilled at fp-16


SPILLED_POINTER_CASES = [
    ("fill covering it", "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\n"
                         "mov %r4, 8\ncall 189", "attempt to corrupt spilled pointer"),
    ("fill over part of it", "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -12\n"
                             "mov %r4, 4\ncall 189", "attempt to corrupt spilled pointer"),
    ("fill at a variable offset", "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -24\n"
                                  "add %r3, %r7\nmov %r4, 8\ncall 189", "spilled pointer"),
    ("fill of a variable size", "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -24\n"
                                "mov %r4, %r7\nadd %r4, 1\ncall 189", "spilled pointer"),
    ("read-write", "mov %r1, %r6\nmov %r2, %r10\nadd %r2, -24\nmov %r3, 16\nmov %r4, 0\n"
                   "call 69", "spilled pointer"),
    ("read", "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 8\ncall 190",
     "spilled pointer"),
    ("map value fill", "lddw %r1, map_fd(6)\nmov %r2, %r10\nadd %r2, -16\ncall 88",
     "attempt to corrupt spilled pointer"),
]


@pytest.mark.parametrize(("what", "call", "reason"), SPILLED_POINTER_CASES,
                         ids=[case[0] for case in SPILLED_POINTER_CASES])
def test_helper_spilled_pointer_class(what, call, reason):
    """No helper writes over, or reads, a spilled pointer; so no later fill gives it back."""
    text = (f"mov %r6, %r1\n{VAR8}\nstdw [%r10-24], 0\nstdw [%r10-8], 0\n{SPILL_PTR}{call}\n"
            "ldxdw %r1, [%r10-16]\nldxw %r0, [%r1+0]\nmov %r0, 2\nexit\n")
    with pytest.raises(VerifierError) as info:
        verify(assemble(text), caps=FULL, maps=QUEUE)
    assert reason in info.value.reason, what


def test_spilled_pointer_outside_the_write_survives():
    text = ("mov %r6, %r1\nstxdw [%r10-8], %r6\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\n"
            "add %r3, -24\nmov %r4, 16\ncall 189\nldxdw %r1, [%r10-8]\nldxw %r0, [%r1+0]\n"
            "mov %r0, 2\nexit")
    assert _verdict(text) == "accepted"


def test_helper_partial_write_of_a_spilled_constant_class():
    """A spilled constant partly overwritten: an 8-byte fill gives an unknown number, never
    the old constant (nor a 4-byte one its untouched half's old bytes as a constant)."""
    for fill in ("mov %r3, %r10\nadd %r3, -8\nmov %r4, 4",  # low half, constant offset
                 "mov %r3, %r10\nadd %r3, -4\nmov %r4, 4",  # high half
                 f"mov %r3, %r10\nadd %r3, -12\n{VAR8}\nrsh %r7, 1\nadd %r3, %r7\n"
                 "mov %r4, 4"):  # fp-12 or fp-8: a variable offset
        for read in ("ldxdw %r0, [%r10-8]\njeq %r0, 7, ok",
                     "ldxw %r0, [%r10-8]\njeq %r0, 7, ok"):
            text = (f"mov %r6, %r1\nstdw [%r10-16], 0\nmov %r8, 7\nstxdw [%r10-8], %r8\n"
                    f"{fill}\nmov %r1, %r6\nmov %r2, 0\ncall 189\n{read}\n{BAD}\n"
                    "ok:\nmov %r0, 2\nexit")
            assert _verdict(text) == BAD_REASON, (fill, read)


# ---------------------------------------------------------------- uninitialised memory
def _fill(pointer: str, size: str, init: str = "") -> str:
    return (f"mov %r6, %r1\n{VAR8}\n{init}mov %r3, %r10\n{pointer}\n{size}\nmov %r1, %r6\n"
            "mov %r2, 0\ncall 189\nldxdw %r0, [%r10-16]\nmov %r0, 2\nexit\n")


INIT_32 = "".join(f"stdw [%r10-{8 * i}], 0\n" for i in range(1, 5))


def test_helper_uninit_fill_variable_offset_class():
    """Filling at a variable offset or of a variable size: which bytes get written is not
    known, so none of them may be uninitialised before (the kernel drops MEM_UNINIT then).
    A constant offset and size initialise exactly the bytes written."""
    const = _fill("add %r3, -16", "mov %r4, 16")
    var_off = _fill("add %r3, -24\nadd %r3, %r7", "mov %r4, 8")
    var_size = _fill("add %r3, -16", "mov %r4, %r7\nadd %r4, 8")
    assert _verdict(const) == "accepted"
    for text in (var_off, var_size):
        assert "needs all of it initialised first" in _verdict(text)
        assert _verdict(text.replace("mov %r6, %r1\n", "mov %r6, %r1\n" + INIT_32)) == \
            "accepted"
    # a constant fill initialises only what it covers
    short = _fill("add %r3, -16", "mov %r4, 4")
    assert _verdict(short).startswith("invalid read from stack off -16+4 size 8")


def test_helper_writes_happen_after_every_argument_is_checked(monkeypatch):
    """An argument the helper reads is checked against the stack before the call, not against
    what another argument of the same call will have written."""
    from dataclasses import replace

    from offload.helpers.prototypes import PROTOTYPES, Arg, ArgType, HelperProto, RetType

    size = Arg(ArgType.CONST_SIZE)
    fill_then_read = HelperProto(1000, "fill_then_read", RetType.INTEGER, (
        Arg(ArgType.PTR_TO_UNINIT_MEM), size, Arg(ArgType.PTR_TO_MEM, rdonly=True), size))
    monkeypatch.setitem(PROTOTYPES, 1000, fill_then_read)
    caps = replace(FULL, helpers=FULL.helpers | {1000})
    text = ("mov %r1, %r10\nadd %r1, -16\nmov %r2, 8\nmov %r3, %r10\nadd %r3, -16\n"
            "mov %r4, 8\ncall 1000\nldxdw %r0, [%r10-16]\nmov %r0, 2\nexit")
    with pytest.raises(VerifierError, match="invalid indirect read from stack R3"):
        verify(assemble(text), caps=caps)
    initialised = "stdw [%r10-16], 0\n" + text
    verify(assemble(initialised), caps=caps)
