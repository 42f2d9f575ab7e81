"""Callbacks: ``lddw func`` and ``bpf_loop`` in the verifier, against Linux where it can be asked.

Each run of a callback is explored until the states at the call converge or ``nr_loops``
runs are explored, and the code after the call from every number of runs (none included); the
soundness oracle must catch a verifier that explores fewer runs. With the host kernel: the
same verdicts and about as many processed instructions, and the fixture programs of
``xdp_loop.o`` give the kernel's results on both engines.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from offload.backends.kernel import KernelMap, kernel_available, load_program_spec
from offload.isa import assemble
from offload.loader import load_object
from offload.soundness import SoundnessError, check_program
from offload.verifier import VerifierError, callbacks, verify
from service import frames as p
from tests.offload.backends.backends import close, install, make_backend

from .kernel_modes import PRIV, kernel_verdict
from .suite import FULL

KERNEL, WHY = kernel_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
LOOP_OBJECT = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf" / "xdp_loop.o"

# bpf_loop(RUNS, cb, &counter at fp-8, 0): the callback counts its runs at fp-8; the caller then
# reads byte fp-16 + counter + OFF of a 16-byte buffer, in bounds for every count up to
# 15 - OFF. The callback's ctx is its only way into the caller's frame.
COUNTS = """
stdw [%r10-8], 0
stdw [%r10-16], 0
{runs}
lddw %r2, func cb
mov %r3, %r10
add %r3, -8
mov %r4, 0
call 181
ldxdw %r1, [%r10-8]
mov %r2, %r10
add %r2, -16
add %r2, %r1
ldxb %r0, [%r2+{off}]
mov %r0, 2
exit
cb:
ldxdw %r3, [%r2+0]
{step}
stxdw [%r2+0], %r3
mov %r0, 0
exit
"""
COUNT = "add %r3, 1"
SATURATE = "jge %r3, 3, +1\nadd %r3, 1"  # counts to 3 and stays


def counts(runs: str, off: int, step: str = COUNT) -> str:
    return COUNTS.format(runs=runs, off=off, step=step)


def accepted(text: str) -> bool:
    try:
        verify(assemble(text), caps=FULL)
    except VerifierError as err:
        assert "verifier bug" not in err.reason
        return False
    return True


@pytest.mark.parametrize("runs", [1, 3, 7])
def test_every_run_up_to_nr_loops_is_explored_and_no_more(runs):
    assert accepted(counts(f"mov %r1, {runs}", 15 - runs))
    assert not accepted(counts(f"mov %r1, {runs}", 16 - runs))


def test_a_bounded_count_bounds_the_runs():
    bounded = "ldxw %r1, [%r1+12]\nand %r1, 3"
    assert accepted(counts(bounded, 12))
    assert not accepted(counts(bounded, 13))


def test_an_unknown_count_converges_when_the_callback_does():
    assert accepted(counts("ldxw %r1, [%r1+12]", 12, SATURATE))
    assert not accepted(counts("ldxw %r1, [%r1+12]", 13, SATURATE))


def test_the_code_after_the_call_is_explored_after_no_run():
    only_in_callback = COUNTS.replace("stdw [%r10-8], 0\n", "")
    with pytest.raises(VerifierError, match="invalid read from stack off -8"):
        verify(assemble(only_in_callback.format(runs="mov %r1, 5", off=0, step=COUNT)),
               caps=FULL)


def test_a_callback_may_not_return_its_stack_nor_reach_the_callers_frame():
    leak = counts("mov %r1, 1", 0).replace("mov %r0, 0\nexit", "mov %r0, %r10\nexit")
    with pytest.raises(VerifierError, match="R0 not a scalar value"):
        verify(assemble(leak), caps=FULL)
    for reg in ("%r3", "%r4", "%r5", "%r6", "%r9"):
        read = counts("mov %r1, 1", 0).replace("ldxdw %r3, [%r2+0]", f"mov %r0, {reg}\n"
                                               "ldxdw %r3, [%r2+0]")
        with pytest.raises(VerifierError, match=rf"R{reg[-1]} !read_ok"):
            verify(assemble(read), caps=FULL)


def test_the_device_needs_bpf_loop_in_its_profile():
    from dataclasses import replace
    without = replace(FULL, helpers=FULL.helpers - {181})
    with pytest.raises(VerifierError, match="unknown func bpf_loop#181"):
        verify(assemble(counts("mov %r1, 1", 0)), caps=without)


def test_a_nested_callback_counts_against_the_call_frames():
    from dataclasses import replace
    nested = counts("mov %r1, 1", 0).replace(
        "cb:\n", "cb:\nmov %r6, %r2\ncall local f\nmov %r2, %r6\n") + \
        "f:\nmov %r0, 0\nexit\n"
    verify(assemble(nested), caps=FULL)
    two = replace(FULL, limits=replace(FULL.limits, max_call_frames=2))
    with pytest.raises(VerifierError, match="too deep"):
        verify(assemble(nested), caps=two)


def test_the_oracle_catches_a_verifier_that_explores_too_few_runs(monkeypatch):
    text = counts("mov %r1, 3", 12)
    frames = [bytes(64)]
    check_program(assemble(text), caps=FULL, frames=frames, text=text)
    monkeypatch.setattr(callbacks, "BPF_MAX_LOOPS", 1)
    with pytest.raises(SoundnessError, match="outside"):
        check_program(assemble(text), caps=FULL, frames=frames, text=text)


# -- against the host kernel -------------------------------------------------------------------
def _kernel_processed(insns) -> int:
    from offload.backends.kernel import load_program
    program = load_program(insns, log_level=1)
    try:
        return int(re.search(r"processed (\d+) insns", program.log).group(1))
    finally:
        program.close()


@needs_kernel
@pytest.mark.parametrize("text", [counts("mov %r1, 3", 12), counts("mov %r1, 7", 8),
                                  counts("ldxw %r1, [%r1+12]", 12, SATURATE),
                                  counts("ldxw %r1, [%r1+12]\nand %r1, 3", 12)])
def test_as_many_processed_instructions_as_linux(text):
    insns = assemble(text)
    ours = verify(insns, caps=FULL).insns_processed
    assert kernel_verdict(insns, {}, PRIV)[0]
    kernel = _kernel_processed(insns)
    assert abs(ours - kernel) <= max(5, kernel // 5), (ours, kernel)


@needs_kernel
def test_the_fixture_verifies_with_about_the_kernels_processed_instructions():
    obj = load_object(LOOP_OBJECT)
    handles = {name: i + 1 for i, name in enumerate(obj.maps)}
    specs = {handles[name]: spec for name, spec in obj.maps.items()}
    maps = {name: KernelMap.create(spec) for name, spec in obj.maps.items()}
    try:
        for name, prog in obj.programs.items():
            from offload.program import resolve_map_references
            insns = resolve_map_references(prog.instructions, prog.map_refs, handles,
                                           program=name)
            ours = verify(insns, caps=FULL, maps=specs).insns_processed
            program = load_program_spec(prog, maps, log_level=1)
            kernel = int(re.search(r"processed (\d+) insns", program.log).group(1))
            program.close()
            assert kernel // 2 <= ours <= kernel * 3 // 2, (name, ours, kernel)
    finally:
        for live in maps.values():
            live.close()


SRC, PEER = "10.1.2.3", "192.0.2.9"
FRAMES = {
    "udp-53": p.ether(p.udp_packet(SRC, PEER, 1000, 53,
                                      payload=bytes([7, 1, 2, 3, 4, 5, 7, 9])), p.ETH_P_IP),
    "udp-other": p.ether(p.udp_packet("172.16.0.1", PEER, 1000, 4789,
                                         payload=bytes([40]) + bytes(range(1, 40))), p.ETH_P_IP),
    "udp-short": p.ether(p.udp_packet(SRC, PEER, 1000, 123, payload=bytes([3, 2])), p.ETH_P_IP),
    "tcp-80": p.ether(p.tcp_packet(SRC, PEER, 40000, 80), p.ETH_P_IP),
    "tcp-22": p.ether(p.tcp_packet("172.16.0.1", PEER, 40000, 22), p.ETH_P_IP),
    "arp": p.ether(bytes(28), 0x0806),
}


def _rule(addr: str, mask: str, dport: int, proto: int, enabled: int, action: int) -> bytes:
    return p.ip4(addr) + p.ip4(mask) + struct.pack("!H", dport) + \
        bytes([proto, enabled]) + struct.pack("<IQ", action, 0)


RULES = {2: _rule("10.0.0.0", "255.0.0.0", 53, 17, 1, 1),  # UDP/53 from 10/8: drop
         3: _rule("0.0.0.0", "0.0.0.0", 22, 6, 0, 1),  # disabled
         5: _rule("0.0.0.0", "0.0.0.0", 80, 0, 1, 3)}  # port 80: XDP_TX


def _run_fixture(kind: str) -> dict[str, object]:
    backend = make_backend(kind)
    try:
        obj = install(backend, LOOP_OBJECT)
        for index, value in RULES.items():
            obj.map("rules").update(struct.pack("<I", index), value)
        seen: dict[str, object] = {}
        for program in obj.programs:
            for name, frame in FRAMES.items():
                out = obj.run(program, frame)
                seen[f"{program} {name}"] = (out.action, out.retval, out.data, out.error)
        for name in ("rules", "loop_stats"):
            seen[f"map {name}"] = sorted(obj.map(name).items())
        return seen
    finally:
        close(backend)


@needs_kernel
def test_both_engines_give_the_kernels_results_on_the_fixture():
    kernel = _run_fixture("kernel")
    assert kernel["xdp_loop_rules udp-53"][1] == 1 and kernel["xdp_loop_rules tcp-80"][1] == 3
    assert kernel["xdp_loop_sum udp-53"][1] == 1  # 7 + 1 + ... + 5 + 7 is odd: dropped
    for kind in ("builtin-reference", "builtin-fast"):
        engine = _run_fixture(kind)
        assert engine == kernel, kind
