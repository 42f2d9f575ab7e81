"""The built-in engines and verifier against the host kernel.

1. Every conformance program the kernel can run: r0 and the input memory afterwards.
2. Generated verifier-clean XDP programs on random frames: return value, frame, map contents.
3. Every fixture program on crafted frames with populated maps: action, bytes, map contents.
4. The built-in verifier against the kernel's on the reject suite and on generated near misses:
   the agreement rate, with every disagreement in a known category.

The kernel loads as root, so it applies the privileged verifier rules; the device applies the
unprivileged ones (kernel.unprivileged_bpf_disabled=0 semantics) and its own capabilities.
Everything here skips, saying why, where bpf() cannot be used.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.backends.kernel import KernelBackend
from offload.conformance.helpers import CONFORMANCE_HELPERS
from offload.conformance.suite import all_cases, case_program, parse_case
from offload.engine import Interpreter
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.isa import Instruction, assemble
from offload.loader import load_object
from offload.uapi import ProgType
from offload.verifier import VerifierError, verify
from service.fixture_traffic import FRAMES, MULTI_BUFFER, RANDOM_METADATA, deterministic, populate
from tests.offload.kernel_cost import ASK_COSTLY, COSTLY_CONFORMANCE
from tests.offload.verifier.suite import FULL

from .backends import (
    BUILTIN_KINDS,
    KINDS,
    XDP_OBJECTS,
    close,
    install,
    make_backend,
    require_kernel,
)
from .report import report
from .xdp_grammar import MAP_ENTRIES, MAP_SPECS, MUTATIONS, Generated, packets, xdp_programs

M32 = 0xFFFFFFFF


@pytest.fixture(autouse=True)
def _kernel() -> None:
    require_kernel()


# -- 1. conformance programs ----------------------------------------------------------------

def memory_prolog(length: int) -> list[Instruction]:
    """What the conformance convention expects, from an XDP context (bpf_conformance's idea):
    r1 = ctx->data and r2 = the input length after a bounds check; r1 = r2 = 0 without input."""
    if length == 0:
        return assemble("mov %r1, 0\nmov %r2, 0")
    return assemble(f"ldxw %r2, [%r1+4]\nldxw %r1, [%r1+0]\nmov %r3, %r1\nadd %r3, {length}\n"
                    f"jle %r3, %r2, +2\nmov %r0, 0\nexit\nmov %r2, {length}")


def _conformance_outcome(path) -> tuple[str, str]:
    """(category, detail): "agree", "differ", or why the case was not compared."""
    case = parse_case(path)
    if case.result is None and case.error is None:
        return "skipped: assembler-only case", ""
    try:
        program = case_program(case)
    except OffloadError:
        return "skipped: does not assemble", ""
    if any(insn.is_helper_call for insn in program):
        return "skipped: calls the suites' test helpers, which the kernel lacks", ""
    if path.name in COSTLY_CONFORMANCE and not ASK_COSTLY:
        return "skipped: the kernel takes seconds to refuse it (OFFLOAD_KERNEL_SLOW=1 asks)", ""
    try:
        result, memory = run_on_memory(Interpreter(program, CONFORMANCE_HELPERS), case.memory)
        ours: tuple[Any, ...] = (result.r0 & M32, memory)
    except OffloadError as exc:
        ours = ("error", str(exc))
    with KernelBackend() as kernel:
        try:
            kernel.load_program(1, memory_prolog(len(case.memory)) + list(program),
                                prog_type=ProgType.XDP, name="conformance", license="GPL")
        except OffloadError as exc:
            both = "both refuse or fault" if ours[0] == "error" else "the engine runs it"
            return f"skipped: kernel refuses ({both})", getattr(exc, "reason", str(exc))
        frame = case.memory + bytes(max(0, 14 - len(case.memory)))  # an Ethernet header at least
        out = kernel.run_xdp(1, frame)
    theirs = (out.retval, out.data[:len(case.memory)])
    if ours == theirs:
        return "agree", ""
    return "differ", f"{case.name}: engine {ours!r}, kernel {theirs!r}"


def test_engine_matches_the_kernel_on_conformance_programs(record_property):
    paths = all_cases()
    assert len(paths) > 300
    counts: Counter[str] = Counter()
    kernel_only_refusals: Counter[str] = Counter()
    differences = []
    for path in paths:
        category, detail = _conformance_outcome(path)
        counts[category] += 1
        if category == "differ":
            differences.append(detail)
        elif category.endswith("(the engine runs it)"):
            kernel_only_refusals[detail.split(",")[0]] += 1
    compared = counts["agree"] + counts["differ"]
    report(record_property, "conformance_vs_kernel",
           f"conformance programs, engine vs kernel: {counts['agree']}/{compared} agree "
           f"of {len(paths)} cases; " + "; ".join(f"{n} {c}" for c, n in sorted(counts.items())
                                                  if c.startswith("skipped")))
    report(record_property, "conformance_kernel_refusals",
           "  refused by the kernel verifier, run by the engine (the suites test run-time "
           "semantics such as division by zero, which the kernel refuses statically): " +
           ", ".join(f"{n} x {r!r}" for r, n in kernel_only_refusals.most_common()))
    assert not differences, "\n".join(differences)
    assert compared >= 0.75 * len(paths)


# -- 2. generated programs on random frames ------------------------------------------------

def _run_generated(kind: str, generated: Generated, frame: bytes) -> tuple[Any, ...]:
    backend = make_backend(kind)
    try:
        for handle, spec in MAP_SPECS.items():
            backend.create_map(handle, spec)
        backend.load_program(10, assemble(generated.text), prog_type=ProgType.XDP,
                             name="generated", license="GPL")
        out = backend.run_xdp(10, frame)
        return (out.retval, out.data, out.error,
                *(sorted(backend.map(handle).items()) for handle in MAP_SPECS))
    finally:
        close(backend)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=xdp_programs(), frame=st.one_of(packets(14, 64), packets(64, 128)))
def test_generated_programs_behave_alike_everywhere(program, frame):
    kernel, *engines = (_run_generated(kind, program, frame) for kind in KINDS)
    for engine in engines:
        assert engine == kernel, f"{program.text}\nframe {frame.hex()}"


# -- 3. fixtures on crafted frames ---------------------------------------------------------

FIXTURE_PROGRAMS = [(path, name) for path in XDP_OBJECTS for name in load_object(path).programs]


def _run_fixture(kind: str, path, program: str, frames: dict[str, bytes]) -> dict[str, Any]:
    backend = make_backend(kind)
    try:
        obj = install(backend, path)
        populate(obj)
        seen: dict[str, Any] = {}
        for name, frame in frames.items():
            out = obj.run(program, frame)
            meta = len(out.meta) if program in RANDOM_METADATA else out.meta
            seen[name] = (out.action, out.retval, out.data, meta, out.error)
        for name, handle in obj.maps.items():
            seen[f"map {name}"] = sorted((k, deterministic(name, k, v))
                                         for k, v in backend.map(handle).items())
        return seen
    finally:
        close(backend)


@pytest.mark.parametrize(("path", "program"), FIXTURE_PROGRAMS,
                         ids=[f"{path.stem}:{name}" for path, name in FIXTURE_PROGRAMS])
def test_fixture_programs_behave_alike_everywhere(path, program):
    linear = {n: f for n, f in FRAMES.items() if n not in MULTI_BUFFER}
    kernel, *engines = (_run_fixture(kind, path, program, linear) for kind in KINDS)
    for kind, engine in zip(BUILTIN_KINDS, engines, strict=True):
        for item in kernel:
            assert engine[item] == kernel[item], f"{kind} differs from the kernel on {item}"
    # Beyond one page the kernel splits the frame into fragments; compare the engines only.
    jumbo = {n: f for n, f in FRAMES.items() if n in MULTI_BUFFER}
    fast, reference = (_run_fixture(kind, path, program, jumbo) for kind in BUILTIN_KINDS)
    assert fast == reference


# -- 4. the verifier against the kernel verifier -------------------------------------------

def _ours(insns, caps=FULL, maps=None) -> tuple[bool, str]:
    try:
        verify(insns, caps=caps, maps=maps or {})
    except VerifierError as exc:
        return False, str(exc)
    return True, ""


def _kernels(insns, maps) -> tuple[bool, str]:
    with KernelBackend() as kernel:
        try:
            for handle, spec in maps.items():
                kernel.create_map(handle, spec)
            kernel.load_program(100, insns, prog_type=ProgType.XDP, name="verdict",
                                license="GPL")
        except OffloadError as exc:
            return False, getattr(exc, "reason", "") or str(exc)
    return True, ""


#: Generated near misses where the two verifiers may differ, and why.
GENERATED_CATEGORIES = {
    ("uninit_stack", True): "unprivileged rule: root may read uninitialised stack",
    ("pointer_return", True): "unprivileged rule: root may return a pointer",
    ("no_null_check", True): "kernel precision: an ARRAY lookup with a constant in-bounds key "
                             "is never NULL (recent kernels)",
    ("unbounded_var_offset", False): "our precision: a packet pointer plus an already bounded "
                                     "scalar keeps its checked range; the kernel resets it",
}


GENERATED_VERDICTS: Counter[tuple[str, bool, bool]] = Counter()


@pytest.mark.parametrize("mutation", (None, *MUTATIONS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_verifier_agrees_on_generated_programs(mutation, data):
    program = data.draw(xdp_programs(mutation), label="program")
    insns = assemble(program.text)
    ours, why = _ours(insns, maps=MAP_SPECS)
    kernel, reason = _kernels(insns, MAP_SPECS)
    GENERATED_VERDICTS[(program.mutation or "clean", kernel, ours)] += 1
    if program.mutation is None:
        assert ours and kernel, f"{program.text}\nours: {why}\nkernel: {reason}"
    elif ours != kernel:
        category = GENERATED_CATEGORIES.get((program.mutation, kernel))
        if program.mutation == "no_null_check":  # only a constant in-bounds ARRAY key
            action, handle, key = program.detail.split()
            assert (action, handle) == ("lookup", "1") and int(key) < MAP_ENTRIES, program.text
        assert category, f"{program.mutation}: kernel {kernel} ({reason}), ours {ours} ({why})" \
                         f"\n{program.text}"
        if not kernel:
            _assert_safe_at_run_time(program)


def _assert_safe_at_run_time(program: Generated) -> None:
    """A program only we accept must not fault on frames of exactly the checked length."""
    for fill in (0x00, 0xFF, 0x5A):
        for kind in BUILTIN_KINDS:
            backend = make_backend(kind)
            for handle, spec in MAP_SPECS.items():
                backend.create_map(handle, spec)
            backend.load_program(10, assemble(program.text), prog_type=ProgType.XDP,
                                 name="generated", license="GPL")
            out = backend.run_xdp(10, bytes([fill]) * program.check)
            assert out.error is None, f"{program.text}\n{out.error}"


def test_generated_verdict_summary(record_property):
    """Runs after the property test above (file order): the agreement rate it saw."""
    if not GENERATED_VERDICTS:
        pytest.skip("the generated-verdict test did not run in this process")
    total = sum(GENERATED_VERDICTS.values())
    agree = sum(n for (_, kernel, ours), n in GENERATED_VERDICTS.items() if kernel == ours)
    differ = Counter()
    for (mutation, kernel, ours), n in GENERATED_VERDICTS.items():
        if kernel != ours:
            differ[GENERATED_CATEGORIES[(mutation, kernel)]] += n
    report(record_property, "generated_agreement",
           f"generated programs, verifier vs kernel: {agree}/{total} agree "
           f"({agree / total:.1%}); disagreements: " +
           (", ".join(f"{n} x {c}" for c, n in differ.most_common()) or "none"))
    assert agree / total >= 0.7
