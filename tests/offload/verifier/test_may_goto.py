"""may_goto in the verifier: both edges explored with the state unchanged; a loop bounded only
by may_goto converges where an open checkpoint at the may_goto covers a later iteration; what
the loop does is still checked on every iteration it can reach. The host kernel (as root)
judges the same programs where it is available."""

from __future__ import annotations

import pytest

from offload.backends.kernel import KernelVerifierError, kernel_available, load_program
from offload.isa import assemble
from offload.verifier import VerifierError, verify

from .suite import FULL

AVAILABLE, WHY = kernel_available()

# Counts until the runtime counter is spent: nothing but may_goto leaves the loop.
COUNT = """
mov %r0, 0
top:
may_goto done
add %r0, 1
ja top
done:
exit
"""

# Nothing happens in the loop: may_goto alone leaves it.
SPIN = """
mov %r0, 0
top:
may_goto done
ja top
done:
exit
"""

# The same loop with a test that never leaves it: an infinite loop.
NO_MAY_GOTO = SPIN.replace("may_goto done", "jeq %r0, 1, done")

# The store is in bounds on the first iteration only (fp-8), out of bounds from the second
# (fp-520).
OOB_ON_SECOND = """
mov %r6, -8
mov %r7, 0
top:
may_goto done
jeq %r7, 0, first
mov %r6, -520
first:
mov %r7, 1
mov %r1, %r10
add %r1, %r6
stdw [%r1+0], 0
ja top
done:
mov %r0, 0
exit
"""

# A packet scan bounded by may_goto and by a test: drop on a 0xff in the first 64 bytes.
SCAN = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r0, 2
mov %r4, 0
top:
may_goto out
mov %r5, %r2
add %r5, %r4
mov %r6, %r5
add %r6, 1
jgt %r6, %r3, out
ldxb %r7, [%r5+0]
jeq %r7, 0xff, drop
add %r4, 1
jlt %r4, 64, top
ja out
drop:
mov %r0, 1
out:
exit
"""

# The same scan with no bound on the index but may_goto: every packet offset is reachable.
SCAN_UNBOUNDED_STACK = """
mov %r4, 0
stdw [%r10-8], 0
top:
may_goto out
mov %r5, %r10
add %r5, -8
add %r5, %r4
ldxb %r7, [%r5+0]
add %r4, 1
ja top
out:
mov %r0, 2
exit
"""

# may_goto jumping to itself: once the counter is spent it jumps forever.
SELF = """
mov %r0, 0
top:
may_goto top
exit
"""

# A may_goto loop inside a function called twice (its own frame's counter each time).
IN_FUNCTION = """
call local count
mov %r6, %r0
call local count
mov %r0, 2
exit
count:
mov %r0, 0
top:
may_goto done
add %r0, 1
ja top
done:
exit
"""

ACCEPT = {"count": COUNT, "spin": SPIN, "scan": SCAN, "in_function": IN_FUNCTION}
REJECT = {
    "no_may_goto": (NO_MAY_GOTO, "infinite loop detected at insn 1", "infinite loop"),
    "oob_on_second": (OOB_ON_SECOND, "invalid stack off=-520 size=8", "off=-520"),
    "self": (SELF, "infinite loop detected at insn 1", "infinite loop detected at insn 1"),
    "unbounded_stack": (SCAN_UNBOUNDED_STACK, "invalid", "invalid"),
    "bad_src": ("mov %r0, 0\n.raw 0x00000000000010e5\nexit",
                "invalid may_goto imm 0: BPF_JCOND src 1", "invalid may_goto"),
}


@pytest.mark.parametrize("name", sorted(ACCEPT))
def test_accepted(name):
    stats = verify(assemble(ACCEPT[name]), caps=FULL)
    assert stats.insns_processed < 2000  # converged: not the loop unrolled to the counter


def test_a_counter_nothing_checks_converges_by_widening():
    """r0 changes every iteration and nothing relies on its value: after two iterations it is
    widened to unknown and the third is covered by the open checkpoint at the may_goto."""
    stats = verify(assemble(COUNT), caps=FULL, log_level=2)
    assert stats.insns_processed < 30 and stats.total_states < 12
    lines = [str(line) for line in stats.log.lines]
    assert any("may_goto pc+2" in line for line in lines)
    assert any("R0=scalar()" in line for line in lines)  # widened


@pytest.mark.parametrize("name", sorted(REJECT))
def test_refused(name):
    text, reason, _ = REJECT[name]
    with pytest.raises(VerifierError) as info:
        verify(assemble(text), caps=FULL)
    assert reason in info.value.reason


def test_the_failing_iteration_is_in_the_log():
    with pytest.raises(VerifierError) as info:
        verify(assemble(OOB_ON_SECOND), caps=FULL)
    lines = info.value.log.lines
    slots = [line.insn for line in lines]
    assert slots.count(2) == 2 and slots[-1] == 8  # the store, after a second may_goto
    assert "R6=-520" in str(info.value.log)


def test_a_bounded_loop_still_needs_no_may_goto():
    text = "mov %r6, 0\ntop:\nadd %r6, 1\njlt %r6, 10, top\nmov %r0, 0\nexit"
    assert verify(assemble(text), caps=FULL).insns_processed < 100


@pytest.mark.skipif(not AVAILABLE, reason=f"the host kernel's bpf() is unusable: {WHY}")
@pytest.mark.parametrize("name", sorted(ACCEPT) + sorted(REJECT))
def test_the_host_kernel_agrees(name):
    """Loaded as XDP by root: the same verdict, and the same words where they are the
    kernel's (ours says where a stack access failed in its own words)."""
    if name in ACCEPT:
        load_program(assemble(ACCEPT[name]), name=name[:15]).close()
        return
    text, _, kernel_words = REJECT[name]
    insns = assemble(text)
    with pytest.raises(KernelVerifierError) as info:
        load_program(insns, name=name[:15]).close()
    assert kernel_words in (info.value.reason or "")
