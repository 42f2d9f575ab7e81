"""Generated XDP programs through the verifier and both engines.

Every program ``generator.xdp_programs`` draws is verified with the ``full`` profile. A refusal
must be a ``VerifierError`` that is not an internal one ("verifier bug"); any other exception
fails the test. Every accepted program goes through each check in :data:`CHECKS` (hooks
``check(gen, stats, recorder)``: the verifier's ``VerifierStats`` and the abstract states it
kept): by default :func:`differential`, which loads the program on the built-in backend with
the reference and with the fast engine and runs every frame on both: return value, output
frame, metadata, redirect and trace, and every map's contents after each frame must be
identical, and neither may fault (a fault in an accepted program is a verifier soundness bug).
The reference runs go through the soundness oracle (``offload.soundness``): every machine
state must lie inside an abstract state the verifier had at that instruction. The share of
programs it traces is ``OFFLOAD_ORACLE_SOUNDNESS`` (a fraction, default 1: all).

``OFFLOAD_ORACLE_PROGRAMS`` sets how many accepted programs to check (default 1,600: a
time-boxed share, new draws every run; docs/verifier.md has the slow profile), split
over shards so that pytest-xdist spreads them; the session summary prints the counts.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings

import offload.backends.builtin as builtin
from offload.backends.builtin import BuiltinBackend
from offload.caps.profiles import load_profile
from offload.isa import assemble
from offload.isa.opcodes import (
    ATOMIC_FETCH,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)
from offload.soundness import SoundnessError, SoundnessOracle, StateRecorder
from offload.uapi import MapType, ProgType
from offload.verifier import VerifierError, VerifierStats, verify

from .generator import ALU_MISMATCH, TOP_TOTAL, Generated, build, xdp_programs
from .stats import COUNTS

#: The full profile with fewer processed instructions allowed: now and then a program's paths
#: multiply past what pruning merges, and a million-instruction refusal costs a minute; such
#: programs are refused sooner ("too large") and counted apart.
PROCESSED_LIMIT = 100_000
_FULL = load_profile("full")
CAPS = replace(_FULL, limits=replace(_FULL.limits, max_processed_insns=PROCESSED_LIMIT))
HANDLE = 1000
TARGET = 1001  # the program in prog array slot 0: marks the packet, returns XDP_DROP
TAIL_TARGET = assemble("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 1\n"
                       "jgt %r4, %r3, +1\nstb [%r2+0], 0x5a\nmov %r0, 1\nexit")
#: Whether prog arrays also hold the program itself (slot 2): chains of tail calls into
#: itself then run into the limit of 33 (test_found.py).
SELF_TAIL_CALLS = True
NCPUS = 2
PROGRAMS = int(os.environ.get("OFFLOAD_ORACLE_PROGRAMS", "1600"))
SOUNDNESS_SHARE = float(os.environ.get("OFFLOAD_ORACLE_SOUNDNESS", "1"))
SHARDS = max(4, min(200, PROGRAMS // 500))
PER_SHARD = math.ceil(PROGRAMS / SHARDS)

Check = Callable[[Generated, VerifierStats, StateRecorder | None], None]


def _describe(gen: Generated, frame: bytes | None = None) -> str:
    maps = "\n".join(f"  {h}: {s.type.name} key={s.key_size} value={s.value_size} "
                     f"entries={s.max_entries}{' frozen' if s.frozen else ''}"
                     for h, s in gen.maps.items())
    shown = f"\nframe ({len(frame)} bytes): {frame.hex()}" if frame is not None else ""
    return (f"maps:\n{maps}\nrx_queue {gen.rx_queue}{shown}\nprogram:\n{gen.listing()}")


@contextmanager
def _verified(stats: VerifierStats) -> Iterator[None]:
    """Loads within reuse ``stats``: the program was just verified against the same caps and
    maps, and verification is most of the cost of a load (each backend would repeat it)."""
    original = builtin.verify
    builtin.verify = lambda *args, **kwargs: stats
    try:
        yield
    finally:
        builtin.verify = original


def _backend(engine: str, gen: Generated) -> BuiltinBackend:
    clock = itertools.count(1_000_000_000_000, 1_000).__next__  # the same times on both
    backend = BuiltinBackend(CAPS, engine=engine, ncpus=NCPUS, clock=clock, seed=7)
    for handle, spec in gen.maps.items():
        backend.create_map(handle, spec)
    return backend


def _populate(backend: BuiltinBackend, gen: Generated) -> None:
    """Entries for lookups to find: keys 0-2 of hash maps, two devmap ports, two cpumap CPUs,
    two xskmap sockets, a small program in prog array slot 0 (and the program itself in
    slot 2, see ``SELF_TAIL_CALLS``)."""
    if any(spec.type == MapType.PROG_ARRAY for spec in gen.maps.values()):
        backend.load_program(TARGET, TAIL_TARGET, prog_type=ProgType.XDP, name="target",
                             license="GPL")
    for handle, spec in gen.maps.items():
        live = backend.map(handle)
        if spec.type in (MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                         MapType.LRU_PERCPU_HASH):
            for key in range(min(3, spec.max_entries - 1)):  # room for one insert at least
                value = bytes((key * 37 + i) & 0xFF for i in range(live.uapi_value_size))
                live.update(key.to_bytes(spec.key_size, "little"), value)
        elif spec.type == MapType.DEVMAP:
            for key, port in ((0, 3), (1, 5)):
                live.update(key.to_bytes(4, "little"), port.to_bytes(4, "little"))
        elif spec.type == MapType.CPUMAP:  # CPU 0 and 1, queue sizes 16 and 2
            for cpu, qsize in ((0, 16), (1, 2)):
                live.update(cpu.to_bytes(4, "little"),
                            qsize.to_bytes(4, "little") + bytes(spec.value_size - 4))
        elif spec.type == MapType.XSKMAP:  # sockets on receive queues 3 and 1
            for key, queue in ((0, 3), (2, 1)):
                live.update(key.to_bytes(4, "little"), queue.to_bytes(4, "little"))
        elif spec.type == MapType.PROG_ARRAY:
            live.update((0).to_bytes(4, "little"), TARGET.to_bytes(4, "little"))
            if SELF_TAIL_CALLS:
                live.update((2).to_bytes(4, "little"), HANDLE.to_bytes(4, "little"))


def _observed(backend: BuiltinBackend, out: Any) -> tuple[Any, ...]:
    """What a frame left: the verdict, the frame, where a redirect goes, the trace, the maps'
    contents and the event records written (perf event arrays, ring buffers)."""
    maps = tuple((h, list(backend.map(h).items())) for h in sorted(backend.maps))
    events = tuple((h, [(e.stream, e.cpu, e.seq, e.time_ns, e.data)
                        for e in backend.map(h).take_events()],
                    backend.map(h).stream_stats())
                   for h in sorted(backend.maps) if hasattr(backend.map(h), "take_events"))
    target = out.redirect_target
    redirect = None if target is None else (target.kind, target.ifindex, target.qsize)
    return (out.retval, out.data, out.meta, out.redirect_ifindex,
            out.redirect_program is None, out.trace, maps, events, redirect)


def differential(gen: Generated, stats: VerifierStats,
                 recorder: StateRecorder | None) -> None:
    """The reference and the fast engine agree on every frame, and neither faults; with a
    ``recorder`` (the states the verification kept) the reference run is traced by the
    soundness oracle, so every machine state it reaches is checked against them."""
    engines = ("reference", "fast")
    backends = [_backend(engine, gen) for engine in engines]
    with _verified(stats):
        for backend in backends:
            backend.load_program(HANDLE, gen.insns, prog_type=ProgType.XDP, name="generated",
                                 license="GPL")
    for backend in backends:
        _populate(backend, gen)
    oracle = None
    if recorder is not None:
        oracle = SoundnessOracle(backends[0], HANDLE, recorder, text=gen.listing())
    for frame in gen.frames:
        seen = []
        for engine, backend in zip(engines, backends, strict=True):
            if oracle is not None and engine == "reference":
                try:
                    out = oracle.run(frame, rx_queue_index=gen.rx_queue)
                except SoundnessError as err:
                    pytest.fail(f"{err}\n{_describe(gen, frame)}")
            else:
                out = backend.run_xdp(HANDLE, frame, rx_queue_index=gen.rx_queue)
            if out.error is not None:
                pytest.fail(f"verifier bug: an accepted program faults on the {engine} engine: "
                            f"{out.error}\n{_describe(gen, frame)}")
            if out.retval == ALU_MISMATCH:
                pytest.fail(f"the {engine} engine's arithmetic differs from the RFC 9669 model "
                            f"(a result is not the one tabled for its inputs)\n"
                            f"{_describe(gen, frame)}")
            seen.append(_observed(backend, out))
        COUNTS["frames"] += 1
        if seen[0] != seen[1]:
            names = ("retval", "data", "meta", "redirect ifindex", "redirect program",
                     "trace", "maps", "events", "redirect target")
            diffs = [f"  {name}: reference {a!r}\n  {' ' * len(name)}  fast      {b!r}"
                     for name, a, b in zip(names, *seen, strict=True) if a != b]
            pytest.fail("the engines differ after a frame:\n" + "\n".join(diffs) + "\n" +
                        _describe(gen, frame))
    if oracle is not None:
        COUNTS["soundness"] += 1
        COUNTS["soundness_steps"] += oracle.steps


#: What every accepted program must pass; append further checks here.
CHECKS: list[Check] = [differential]


def check_accepted(gen: Generated, stats: VerifierStats,
                   recorder: StateRecorder | None = None) -> None:
    for check in CHECKS:
        check(gen, stats, recorder)


def check_generated(gen: Generated) -> None:
    """Verify; a refusal must be a clean VerifierError, an acceptance passes ``CHECKS``."""
    recorder = StateRecorder() if _under_oracle(gen) else None
    try:
        stats = verify(gen.insns, caps=CAPS, maps=gen.maps, observer=recorder,
                       functions=gen.functions)
    except VerifierError as err:
        if err.reason.startswith("verifier bug") or err.errno == errno.EFAULT:
            pytest.fail(f"the verifier failed internally: {err}\n{_describe(gen)}")
        if "too large" in err.reason or "too complex" in err.reason:
            COUNTS["refused_too_large"] += 1
        COUNTS["refused_risky" if gen.risky else "refused"] += 1
        reject()
    COUNTS["accepted"] += 1
    COUNTS["accepted_risky"] += gen.risky
    if recorder is not None and recorder.overflow:  # beyond what the oracle checks
        COUNTS["soundness_skipped"] += 1
        recorder = None
    check_accepted(gen, stats, recorder)


def _under_oracle(gen: Generated) -> bool:
    """Whether this program's runs go through the soundness oracle (a deterministic share)."""
    return SOUNDNESS_SHARE >= 1 or (SOUNDNESS_SHARE > 0 and
                                    random.Random(gen.text).random() < SOUNDNESS_SHARE)


# -- what the generator covers ---------------------------------------------------------------
_ATOMIC_NAMES = {AtomicOp.ADD: "add", AtomicOp.OR: "or", AtomicOp.AND: "and", AtomicOp.XOR: "xor",
                 AtomicOp.XCHG: "xchg", AtomicOp.CMPXCHG: "cmpxchg"}


def features(gen: Generated) -> set[str]:
    """Names for the instruction forms, helpers and map types a program uses."""
    out: set[str] = set()
    for insn in gen.insns:
        cls = insn.cls
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            width = "64" if cls == InsnClass.ALU64 else "32"
            op = insn.alu_op
            out.add(f"alu{width}")
            if op == AluOp.MOV and insn.off:
                out.add(f"movsx{insn.off}/{width}")
            elif op in (AluOp.DIV, AluOp.MOD) and insn.off == 1:
                out.add(f"s{op.name.lower()}/{width}")
            elif op == AluOp.END:
                out.add("bswap" if cls == InsnClass.ALU64 else "be/le")
            elif op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH) and insn.source == Source.X:
                out.add(f"shift by register/{width}")
        elif cls in (InsnClass.JMP, InsnClass.JMP32):
            if insn.is_helper_call:
                out.add(f"helper {insn.imm}")
            elif insn.is_local_call:
                out.add("call local")
                if gen.functions:
                    out.add("call of a global function")
            elif not insn.is_exit:
                jump = "ja" if insn.jmp_op == JmpOp.JA else "jcc"
                width = "32" if cls == InsnClass.JMP32 else "64"
                out.add(f"{jump}{width}")
                if insn.jump_offset == 0:
                    out.add(f"{jump}{width} to the next instruction")
                elif insn.jump_offset < 0:
                    out.add(f"loop {jump}{width}")
        elif cls == InsnClass.STX and insn.mode == Mode.ATOMIC:
            always = insn.imm in (AtomicOp.XCHG, AtomicOp.CMPXCHG)  # these always fetch
            name = _ATOMIC_NAMES[AtomicOp(insn.imm if always else insn.imm & ~ATOMIC_FETCH)]
            fetch = " fetch" if insn.imm & ATOMIC_FETCH and not always else ""
            out |= {f"atomic {name}{fetch}", f"atomic {insn.size.name}",
                    f"atomic on {'the stack' if insn.dst == 10 else 'a pointer'}"}
        elif cls == InsnClass.LDX and insn.mode == Mode.MEMSX:
            out.add(f"ldxs {insn.size.name}")
        elif cls == InsnClass.LDX and insn.src == 6 and insn.off == 8:
            out.add("data_meta")
        elif insn.is_lddw and insn.src == PseudoSrc.MAP_VALUE:
            out.add("direct map value")
        elif cls == InsnClass.STX and insn.dst == 10 and insn.size == Size.DW and \
                insn.src in (0, 1, 2, 6):
            out.add("pointer spill")
    if {"helper 1", "helper 2", "helper 3"} & out:
        out |= {f"map {spec.type.name}" for spec in gen.maps.values()}
    return out


REQUIRED = {
    "alu32", "alu64", "movsx8/64", "movsx16/64", "movsx32/64", "movsx8/32", "movsx16/32",
    "sdiv/64", "sdiv/32", "smod/64", "smod/32", "bswap", "be/le", "shift by register/64",
    "shift by register/32", "jcc32", "jcc64", "ja32", "jcc64 to the next instruction",
    "jcc32 to the next instruction", "ja64 to the next instruction",
    "ja32 to the next instruction", "loop jcc64", "loop jcc32", "loop ja64", "call local",
    "call of a global function",
    "ldxs B", "ldxs H", "ldxs W", "data_meta", "direct map value", "pointer spill",
    *(f"atomic {op}{fetch}" for op in ("add", "or", "and", "xor") for fetch in ("", " fetch")),
    "atomic xchg", "atomic cmpxchg", "atomic W", "atomic DW", "atomic on the stack",
    "atomic on a pointer",
    *(f"helper {h}" for h in (1, 2, 3, 5, 7, 12, 23, 25, 28, 44, 51, 54, 65, 69, 130, 134,
                              163, 181, 188, 189, 190, 195, 86, 131)),
    *(f"map {t}" for t in ("ARRAY", "HASH", "PERCPU_ARRAY", "PERCPU_HASH", "LRU_HASH",
                           "LRU_PERCPU_HASH", "CPUMAP", "XSKMAP", "PERF_EVENT_ARRAY",
                           "RINGBUF")),
}


def test_generator_covers_the_features() -> None:
    """Accepted programs of a fixed sample use every form the generator is meant to cover,
    and at least 60% of the programs are accepted (the rest break a rule on purpose)."""
    rng = random.Random(20240611)
    seen: set[str] = set()
    accepted = total = clean = 0
    while total < 500:
        snippets = [(rng.randrange(TOP_TOTAL), rng.getrandbits(32))
                    for _ in range(rng.randint(1, 10))]
        gen = build(rng.getrandbits(32), snippets)
        assert gen.insns == tuple(assemble(gen.text)), gen.text  # the memoised assembler
        total += 1
        clean += not gen.risky
        try:
            verify(gen.insns, caps=CAPS, maps=gen.maps, functions=gen.functions)
        except VerifierError as err:
            assert gen.risky, f"a program keeping every rule is refused: {err}\n" + \
                _describe(gen)
            continue
        accepted += 1
        seen |= features(gen)
    assert accepted >= 0.6 * total
    assert not REQUIRED - seen, f"never in an accepted program: {sorted(REQUIRED - seen)}"


# -- the property ----------------------------------------------------------------------------
@pytest.mark.parametrize("shard", range(SHARDS))
def test_generated_programs(shard: int) -> None:
    """``PER_SHARD`` accepted programs of one shard (each shard draws other programs)."""

    @settings(max_examples=PER_SHARD, deadline=None, suppress_health_check=list(HealthCheck))
    @given(xdp_programs(salt=shard * 0x9E3779B1))
    def run(gen: Generated) -> None:
        check_generated(gen)

    start, cpu = time.perf_counter(), time.process_time()
    before = COUNTS["accepted"], COUNTS["refused"] + COUNTS["refused_risky"]
    try:
        run()
    finally:
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        COUNTS["seconds"] += seconds
        COUNTS["cpu_seconds"] += cpu
        accepted = COUNTS["accepted"] - before[0]
        refused = COUNTS["refused"] + COUNTS["refused_risky"] - before[1]
        print(f"shard {shard}: {accepted} accepted, {refused} refused in {seconds:.1f} s "
              f"({1000 * cpu / max(accepted, 1):.1f} ms of CPU per accepted program)")
