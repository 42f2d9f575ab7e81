"""The Linux verifier selftests as a judge (bench/kernel_selftests.py).

The objects are built locally from GPL sources and never enter the repository, so the judging
test runs only when OFFLOAD_KSELFTESTS names a directory of them; it fails if a program the
kernel refuses for a memory or division reason is accepted here, unless the harness lists it
as out of scope with the reason. tc programs are judged with their packet pointers mapped onto
the XDP context's (``--skb-as-xdp``), so their packet accesses count too. The annotation and
message rules are tested always.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.kernel_selftests import (
    DIVISION,
    LEAK,
    MEMORY,
    NO_MESSAGE,
    OTHER,
    OUT_OF_SCOPE,
    message_class,
    our_class,
    parse_expectation,
    run,
    skb_as_xdp,
    summarise,
)
from offload.isa import assemble

OBJECTS = os.environ.get("OFFLOAD_KSELFTESTS", "")


def test_privileged_failure_is_inherited_by_an_unprivileged_run():
    expect = parse_expectation(["test_expect_failure", "test_expect_msg=3=invalid access",
                                "test_expect_msg_unpriv=4=leaks addr"])
    assert expect.priv and expect.unpriv
    assert expect.priv_failure and expect.unpriv_failure
    assert expect.kernel_refuses and expect.refused_in == "priv"
    assert expect.failure_messages == ("invalid access",)


def test_unprivileged_only_failure():
    expect = parse_expectation(["test_expect_success", "test_expect_failure_unpriv",
                                "test_expect_msg_unpriv=7=R1 pointer comparison"])
    assert not expect.priv_failure and expect.unpriv_failure
    assert expect.refused_in == "unpriv"
    assert expect.failure_messages == ("R1 pointer comparison",)


def test_no_annotation_means_a_privileged_success():
    expect = parse_expectation([])
    assert expect.priv and not expect.unpriv and not expect.kernel_refuses
    unpriv_ok = parse_expectation(["test_expect_success_unpriv", "test_retval=0"])
    assert unpriv_ok.priv and unpriv_ok.unpriv and not unpriv_ok.kernel_refuses


def test_flags_description_and_auxiliary_are_read():
    expect = parse_expectation(["test_description=a = b", "test_prog_flags=BPF_F_ANY_ALIGNMENT",
                                "test_auxiliary"])
    assert expect.description == "a = b"
    assert expect.flags == ("BPF_F_ANY_ALIGNMENT",)
    assert expect.auxiliary


@pytest.mark.parametrize("messages, expected", [
    (["R0 invalid mem access 'scalar'"], MEMORY),
    (["invalid access to packet, off=0 size=8"], MEMORY),
    (["R1 offset is outside of the packet"], MEMORY),
    (["read from map forbidden"], MEMORY),
    (["div by zero"], DIVISION),
    (["R0 leaks addr as return value"], LEAK),
    (["R2 pointer comparison prohibited"], LEAK),
    (["back-edge from insn 10 to 11"], OTHER),
    ([], NO_MESSAGE),
])
def test_message_classes(messages, expected):
    assert message_class(messages) == expected


def test_incidental_refusals_are_told_apart():
    assert our_class("unknown func bpf_skb_load_bytes#26") == "incidental"
    assert our_class("invalid bpf_context access off=76 size=4") == "incidental"
    assert our_class("invalid access to map value, value_size=8 off=8 size=1") == MEMORY


def test_skb_packet_pointers_are_mapped_only_where_the_context_register_is_known():
    insns = assemble("""
        mov %r6, %r1
        ldxw %r2, [%r6+76]
        ldxw %r3, [%r1+80]
        ldxw %r4, [%r1+140]
        ldxw %r5, [%r2+76]
        mov %r6, 0
        ldxw %r7, [%r6+76]
        ja +0
        ldxw %r8, [%r1+76]
        exit
    """)
    mapped, changed = skb_as_xdp(insns)
    assert changed
    assert [insn.off for insn in mapped[1:4]] == [0, 4, 8]
    # r2 is not the context, r6 no longer is, and nothing after the first jump is touched
    assert mapped[4] == insns[4] and mapped[6] == insns[6] and mapped[8] == insns[8]
    assert skb_as_xdp(assemble("ldxw %r2, [%r1+0]\nexit")) == \
        (tuple(assemble("ldxw %r2, [%r1+0]\nexit")), False)


def test_out_of_scope_entries_give_a_reason():
    assert OUT_OF_SCOPE and all(len(why) > 40 for why in OUT_OF_SCOPE.values())


@pytest.mark.skipif(not OBJECTS, reason="set OFFLOAD_KSELFTESTS to a directory of objects "
                                        "built from the kernel's selftests/bpf/progs/"
                                        "verifier_*.c (see bench/kernel_selftests.py)")
def test_no_memory_or_division_refusal_of_the_kernel_is_accepted():
    directory = Path(OBJECTS)
    assert directory.is_dir(), f"OFFLOAD_KSELFTESTS={OBJECTS} is not a directory"
    summary = summarise(run(directory, skb=True))
    assert summary.judged > 0, "no program could be judged"
    failing = [f"{o.obj}/{o.name} ({o.kind}, kernel: {(o.kernel_msgs or ('',))[-1]})"
               for o in summary.failing]
    assert not failing, (f"{len(failing)} programs the kernel refuses for a memory or "
                         "division reason are accepted:\n" + "\n".join(failing))
