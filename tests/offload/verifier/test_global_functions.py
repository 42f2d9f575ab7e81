"""Global functions (BTF func_info linkage GLOBAL): verified once, on their own, and every call
checked against the prototype, as Linux does; against the host kernel where it can be asked.

The fixtures are ``fixtures/xdp/libbpf/xdp_global_funcs.o`` (a program using every argument
kind, and four refused as Linux refuses them) and ``xdp_global_rules.o`` (one small program
per rule). The kernel side loads each program with libbpf, which passes the object's
func_info, without CAP_PERFMON and CAP_SYS_ADMIN (the device's unprivileged rules).
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

import pytest

from offload.backends.builtin import BuiltinBackend
from offload.isa import assemble
from offload.loader import load_object
from offload.program import ArgKind, FuncArg, FuncInfo, FuncProto, Linkage, resolve_map_references
from offload.soundness import check_program
from offload.verifier import VerifierError, verify
from service import frames as p

from .suite import FULL

LIBBPF = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf"
FUNCS, RULES = LIBBPF / "xdp_global_funcs.o", LIBBPF / "xdp_global_rules.o"
TAGS = LIBBPF / "xdp_global_tags.o"


def _program(path: Path, name: str):
    obj = load_object(path)
    spec = obj.programs[name]
    handles = {m: n for n, m in enumerate(obj.maps, start=1)}
    maps = {handles[m]: s for m, s in obj.maps.items()}
    insns = resolve_map_references(spec.instructions, spec.map_refs, handles, program=name)
    return spec, insns, maps


def _verify(path: Path, name: str, **kw):
    spec, insns, maps = _program(path, name)
    kw.setdefault("functions", spec.functions)
    return verify(insns, caps=FULL, maps=maps, **kw)


def test_the_loader_reads_linkage_and_prototypes() -> None:
    spec = load_object(FUNCS).programs["xdp_global_accept"]
    by_name = {f.name: f for f in spec.functions}
    assert by_name["classify"].linkage == Linkage.GLOBAL
    assert by_name["classify"].proto == FuncProto((FuncArg(ArgKind.CTX),))
    assert by_name["bucket"].proto == FuncProto((FuncArg(ArgKind.SCALAR),) * 2)
    assert by_name["parse_eth"].proto == FuncProto((FuncArg(ArgKind.CTX), FuncArg(ArgKind.MEM, 4)))
    assert by_name["bump"].proto == FuncProto((FuncArg(ArgKind.MEM, 16), FuncArg(ArgKind.SCALAR)))
    void = load_object(FUNCS).programs["xdp_global_void"]
    (mark,) = [f for f in void.functions if f.name == "mark"]
    assert mark.proto is not None and "doesn't return scalar" in mark.proto.problem


def test_the_loader_reads_argument_tags() -> None:
    """``arg:ctx`` makes a ``void *`` the context, ``arg:nonnull`` memory that is never NULL;
    tags Linux refuses are the prototype's problem, in its words."""
    programs = load_object(TAGS).programs
    by_name = {f.name: f for spec in programs.values() for f in spec.functions}
    assert by_name["tag_len"].proto == FuncProto((FuncArg(ArgKind.CTX),))
    assert by_name["tag_first"].proto == FuncProto((FuncArg(ArgKind.MEM_NONNULL, 4),))
    problems = {name: by_name[name].proto.problem for name in
                ("tag_number", "tag_both", "tag_unknown", "tag_wrong_ctx")}
    assert problems == {"tag_number": "arg#0 has pointer tag, but is not a pointer type",
                        "tag_both": "arg#0 has invalid combination of tags",
                        "tag_unknown": "arg#0 has unsupported set of tags",
                        "tag_wrong_ctx": "arg#0 should be `struct xdp_md *`"}
    assert by_name["tag_static"].linkage == Linkage.STATIC


@pytest.mark.parametrize("name, reason", [
    ("xdp_tags_accept", None),
    ("xdp_tags_static", None),
    ("xdp_tags_null", "arg#0 is expected to be non-NULL"),
    ("xdp_tags_maybe_null", "arg#0 is expected to be non-NULL"),
    ("xdp_tags_not_ctx", "arg#0 expects pointer to ctx"),
    ("xdp_tags_not_pointer", "arg#0 has pointer tag, but is not a pointer type"),
])
def test_argument_tags_verdicts(name: str, reason: str | None) -> None:
    """The callee reads its arg:nonnull memory without a NULL check; callers pay for it."""
    if reason is None:
        assert _verify(TAGS, name).insns_processed == {"xdp_tags_accept": 37,
                                                       "xdp_tags_static": 10}[name]
        return
    with pytest.raises(VerifierError) as err:
        _verify(TAGS, name)
    assert reason in err.value.reason


def test_without_the_tag_the_callee_must_check() -> None:
    """The same program with the tag's prototype turned into a plain memory argument: the
    callee's unchecked read is refused, so the tag is what lets it through."""
    spec, insns, maps = _program(TAGS, "xdp_tags_accept")
    plain = tuple(
        FuncInfo(f.slot, f.name, f.linkage, FuncProto(tuple(
            FuncArg(ArgKind.MEM, a.size) if a.kind == ArgKind.MEM_NONNULL else a
            for a in f.proto.args))) if f.proto is not None else f
        for f in spec.functions)
    with pytest.raises(VerifierError, match="invalid mem access 'mem_or_null'"):
        verify(insns, caps=FULL, maps=maps, functions=plain)


@pytest.mark.parametrize("name, reason", [
    ("xdp_global_accept", None),
    ("xdp_global_unchecked", "R1 invalid mem access 'mem_or_null'"),
    ("xdp_global_locked", "global function calls are not allowed while holding a lock"),
    ("xdp_global_void", "Global function mark() doesn't return scalar. Only those are "
                        "supported."),
    ("xdp_global_stale", "R6 !read_ok"),
])
def test_device_verdicts(name: str, reason: str | None) -> None:
    if reason is None:
        assert _verify(FUNCS, name).insns_processed == 117  # as Linux 6.18 counts it
        return
    with pytest.raises(VerifierError) as err:
        _verify(FUNCS, name)
    assert reason in err.value.reason


def test_without_func_info_every_function_is_static() -> None:
    """No BTF: every subprogram is walked at each call with the caller's state (the pointer
    the caller passes is known not NULL there), as Linux does without func_info."""
    _verify(FUNCS, "xdp_global_unchecked", functions=())
    with pytest.raises(VerifierError):
        _verify(FUNCS, "xdp_global_unchecked")


def test_the_log_says_what_the_kernel_says() -> None:
    log = str(_verify(FUNCS, "xdp_global_accept", log_level=2).log)
    assert "Func#2 ('classify') is global and assumed valid." in log
    assert "Validating classify() func#2..." in log
    assert "Func#2 ('classify') is safe for any args that match its prototype" in log
    with pytest.raises(VerifierError) as err:
        _verify(FUNCS, "xdp_global_unchecked")
    assert "Validating first_byte() func#" in str(err.value.log)


# A global function writes 1 through its memory argument; the caller had stored 0 there and
# uses what it reads back as a stack offset: only in bounds if the callee wrote nothing.
CLOBBER = """
    stdw [%r10-8], 0
    mov %r1, %r10
    add %r1, -8
    call local g
    ldxdw %r1, [%r10-8]
    mul %r1, 600
    mov %r2, %r10
    add %r2, -16
    add %r2, %r1
    stb [%r2], 1
    mov %r0, 2
    exit
g:
    mov %r0, 0
    jeq %r1, 0, +1
    stdw [%r1], 1
    exit
"""


def _funcs(*args: FuncArg) -> tuple[FuncInfo, ...]:
    return (FuncInfo(0, "main", Linkage.GLOBAL, FuncProto((FuncArg(ArgKind.CTX),))),
            FuncInfo(12, "g", Linkage.GLOBAL, FuncProto(args)))


def test_memory_a_callee_may_write_is_forgotten() -> None:
    insns = assemble(CLOBBER)
    with pytest.raises(VerifierError, match="invalid|outside|unbounded"):
        verify(insns, caps=FULL, functions=_funcs(FuncArg(ArgKind.MEM, 8)))


def test_r0_after_a_call_is_any_number() -> None:
    text = """
        mov %r1, 3
        call local g
        mov %r1, %r10
        add %r1, -8
        add %r1, %r0
        stb [%r1], 1
        mov %r0, 2
        exit
    g:
        mov %r0, 0
        exit
    """
    insns = assemble(text)
    verify(insns, caps=FULL)  # inline: R0 is 0
    funcs = (FuncInfo(0, "main"), FuncInfo(8, "g", Linkage.GLOBAL,
                                            FuncProto((FuncArg(ArgKind.SCALAR),))))
    with pytest.raises(VerifierError):
        verify(insns, caps=FULL, functions=funcs)


def test_a_global_function_cannot_be_a_callback() -> None:
    text = """
        mov %r1, 2
        lddw %r2, func cb
        mov %r3, 0
        mov %r4, 0
        call 181
        mov %r0, 2
        exit
    cb:
        mov %r0, 0
        exit
    """
    insns = assemble(text)
    verify(insns, caps=FULL)
    funcs = (FuncInfo(0, "main"),
             FuncInfo(8, "cb", Linkage.GLOBAL, FuncProto((FuncArg(ArgKind.SCALAR),) * 2)))
    with pytest.raises(VerifierError, match="callback function not static"):
        verify(insns, caps=FULL, functions=funcs)


FRAMES = [p.ether(p.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, payload=bytes(200))),
          p.ether(p.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, payload=bytes(8))),
          bytes([0xff] * 6) + bytes(6) + b"\x08\x00" + bytes(150), bytes(10)]


def test_engines_agree_and_the_oracle_holds() -> None:
    spec, insns, maps = _program(FUNCS, "xdp_global_accept")
    report = check_program(insns, caps=FULL, maps=maps, frames=FRAMES,
                           functions=spec.functions)
    expected = [o.action for o in report.outcomes]
    backend = BuiltinBackend(FULL, engine="fast")
    for handle, map_spec in maps.items():
        backend.create_map(handle, map_spec)
    backend.load_program(100, insns, prog_type=spec.type, name="g", license="GPL",
                         functions=spec.functions)
    assert [backend.run_xdp(100, frame).action for frame in FRAMES] == expected
    assert len(set(expected)) > 1


# -- against the host kernel -------------------------------------------------------------------
def _kernel():
    if os.geteuid() != 0:
        return None, "needs root"
    try:
        from bench import corpus

        from .kernel_modes import unpriv_mode_usable
        lib = corpus.Libbpf()
    except (ImportError, OSError) as exc:
        return None, str(exc)
    ok, why = unpriv_mode_usable()
    return (lib, "") if ok and corpus.kernel_usable()[0] else (None, why or "no bpf()")


LIB, WHY = _kernel()
needs_kernel = pytest.mark.skipif(LIB is None, reason=f"the kernel side is unavailable: {WHY}")


def _kernel_load(path: Path, name: str) -> tuple[bool, str, int]:
    """Load one program with libbpf, unprivileged rules: accepted, the log, processed."""
    from bench import corpus

    from .kernel_modes import CAP_PERFMON, CAP_SYS_ADMIN, without_capabilities
    lib = LIB.lib
    size = 1 << 20
    log = ctypes.create_string_buffer(size)
    with corpus.captured_stderr():
        obj = lib.bpf_object__open_file(str(path).encode(), None)
    try:
        for prog in LIB.programs(obj):
            if lib.bpf_program__name(prog).decode() != name:
                lib.bpf_program__set_autoload(prog, False)
                continue
            lib.bpf_program__set_log_buf(prog, ctypes.addressof(log), size)
            lib.bpf_program__set_log_level.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
            lib.bpf_program__set_log_level(prog, 1)
        with corpus.captured_stderr(), without_capabilities(CAP_SYS_ADMIN, CAP_PERFMON):
            rc = lib.bpf_object__load(obj)
    finally:
        lib.bpf_object__close(obj)
    text = log.value.decode()
    processed = re.findall(r"processed (\d+) insns", text)
    return rc == 0, text, int(processed[-1]) if processed else -1


def _programs(path: Path) -> list[str]:
    return sorted(load_object(path).programs)


@needs_kernel
@pytest.mark.parametrize("path, name", [(FUNCS, n) for n in _programs(FUNCS)] +
                         [(RULES, n) for n in _programs(RULES)] +
                         [(TAGS, n) for n in _programs(TAGS)])
def test_the_kernel_agrees(path: Path, name: str) -> None:
    """Same verdict; the same processed instructions when accepted; on refusal the kernel's
    reason (its line naming the call, or its last line) in the device's."""
    accepted, log, processed = _kernel_load(path, name)
    try:
        stats = _verify(path, name)
    except VerifierError as err:
        assert not accepted, (name, err.reason)
        lines = [line for line in log.splitlines() if line and not line.startswith("processed")]
        caller = [line for line in lines if line.startswith("Caller passes invalid args")]
        wanted = caller[0] if caller else lines[-1]
        assert wanted.split(",")[0] in err.reason.replace("\n", " "), (wanted, err.reason)
        return
    assert accepted, (name, log[-500:])
    assert stats.insns_processed == pytest.approx(processed, rel=0.15), name


def test_a_tail_call_below_a_callback_is_refused_at_the_call() -> None:
    """A global function is verified on its own and cannot tell it runs under ``bpf_loop``:
    a call of one that may make a tail call is refused there, as a tail call in a callback
    itself is."""
    text = """
        stxdw [%r10-8], %r1
        mov %r1, 2
        lddw %r2, func cb
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 181
        mov %r0, 2
        exit
    cb:
        ldxdw %r1, [%r2+0]
        call local g
        mov %r0, 0
        exit
    g:
        lddw %r2, map_fd(1)
        mov %r3, 0
        call 12
        mov %r0, 0
        exit
    """
    from offload.isa.asm import label_slots
    from offload.maps.spec import MapSpec, MapType
    insns = assemble(text)
    maps = {1: MapSpec("jumps", MapType.PROG_ARRAY, 4, 4, 4)}
    funcs = (FuncInfo(0, "main"), FuncInfo(label_slots(text)["g"], "g", Linkage.GLOBAL,
                                           FuncProto((FuncArg(ArgKind.CTX),))))
    with pytest.raises(VerifierError, match="bpf_tail_call is not allowed in a callback"):
        verify(insns, caps=FULL, maps=maps)
    with pytest.raises(VerifierError, match="bpf_tail_call is not allowed in a callback: g"):
        verify(insns, caps=FULL, maps=maps, functions=funcs)


def test_every_accepted_rule_runs_alike_on_both_engines_under_the_oracle() -> None:
    """The rules fixture's accepted programs (stack, map value, packet and ring buffer memory
    passed, calls from a callback and from other functions): every machine state inside the
    verifier's, the fast engine's bounds-checked memory-argument accesses as the reference's."""
    frames = [FRAMES[0], bytes(6), bytes(20)]
    ran = 0
    for name in _programs(RULES):
        spec, insns, maps = _program(RULES, name)
        try:
            report = check_program(insns, caps=FULL, maps=maps, frames=frames,
                                   functions=spec.functions)
        except VerifierError:
            continue
        backend = BuiltinBackend(FULL, engine="fast")
        for handle, map_spec in maps.items():
            backend.create_map(handle, map_spec)
        backend.load_program(100, insns, prog_type=spec.type, name="r", license="GPL",
                             functions=spec.functions)
        outs = [backend.run_xdp(100, frame) for frame in frames]
        assert [o.error for o in outs] == [None] * len(frames), name
        assert [o.retval for o in outs] == [o.retval for o in report.outcomes], name
        ran += 1
    assert ran >= 10
