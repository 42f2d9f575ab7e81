"""Generated XDP programs through the verifier and both engines.

Every program ``generator.xdp_programs`` draws is verified with the ``full`` profile. A refusal
must be a ``VerifierError`` that is not an internal one ("verifier bug"); any other exception
fails the test. Every accepted program goes through each check in :data:`CHECKS` (hooks
``check(gen, stats)``, ``stats`` the verifier's ``VerifierStats``): by default
:func:`differential`, which loads the program on the built-in backend with the reference and
with the fast engine and runs every frame on both: return value, output frame, metadata,
redirect and trace, and every map's contents after each frame must be identical, and neither
may fault (a fault in an accepted program is a verifier soundness bug). :func:`soundness`
runs the soundness oracle (``offload.soundness``) on a share of the programs set by
``OFFLOAD_ORACLE_SOUNDNESS`` (a fraction, default 0.1).

``OFFLOAD_ORACLE_PROGRAMS`` sets how many accepted programs to check (default 5,000), split
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
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings

import offload.backends.builtin as builtin
from offload.backends.builtin import BuiltinBackend
from offload.caps.profiles import load_profile
from offload.program import ProgType
from offload.verifier import VerifierError, VerifierStats, verify

from .generator import Generated, xdp_programs
from .stats import COUNTS

CAPS = load_profile("full")
HANDLE = 1000
NCPUS = 2
PROGRAMS = int(os.environ.get("OFFLOAD_ORACLE_PROGRAMS", "5000"))
SOUNDNESS_SHARE = float(os.environ.get("OFFLOAD_ORACLE_SOUNDNESS", "0.1"))
SHARDS = max(4, min(200, PROGRAMS // 500))
PER_SHARD = math.ceil(PROGRAMS / SHARDS)

Check = Callable[[Generated, VerifierStats], None]


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


def _observed(backend: BuiltinBackend, out: Any) -> tuple[Any, ...]:
    maps = tuple((h, list(backend.map(h).items())) for h in sorted(backend.maps))
    return (out.retval, out.data, out.meta, out.redirect_ifindex,
            out.redirect_program is None, out.trace, maps)


def differential(gen: Generated, stats: VerifierStats) -> None:
    """The reference and the fast engine agree on every frame, and neither faults."""
    engines = ("reference", "fast")
    backends = [_backend(engine, gen) for engine in engines]
    with _verified(stats):
        for backend in backends:
            backend.load_program(HANDLE, gen.insns, prog_type=ProgType.XDP, name="generated",
                                 license="GPL")
    for frame in gen.frames:
        seen = []
        for engine, backend in zip(engines, backends, strict=True):
            out = backend.run_xdp(HANDLE, frame, rx_queue_index=gen.rx_queue)
            if out.error is not None:
                pytest.fail(f"verifier bug: an accepted program faults on the {engine} engine: "
                            f"{out.error}\n{_describe(gen, frame)}")
            seen.append(_observed(backend, out))
        COUNTS["frames"] += 1
        if seen[0] != seen[1]:
            names = ("retval", "data", "meta", "redirect ifindex", "redirect program",
                     "trace", "maps")
            diffs = [f"  {name}: reference {a!r}\n  {' ' * len(name)}  fast      {b!r}"
                     for name, a, b in zip(names, *seen, strict=True) if a != b]
            pytest.fail("the engines differ after a frame:\n" + "\n".join(diffs) + "\n" +
                        _describe(gen, frame))


def soundness(gen: Generated, stats: VerifierStats) -> None:
    """The soundness oracle on a deterministic share of the programs."""
    if SOUNDNESS_SHARE <= 0 or random.Random(gen.text).random() >= SOUNDNESS_SHARE:
        return
    from offload.soundness import check_program  # the oracle is optional to this module

    check_program(gen.insns, caps=CAPS, maps=gen.maps, frames=gen.frames,
                  rx_queue_index=gen.rx_queue, text=gen.listing())
    COUNTS["soundness"] += 1


#: What every accepted program must pass; append further checks here.
CHECKS: list[Check] = [differential, soundness]


def check_accepted(gen: Generated, stats: VerifierStats) -> None:
    for check in CHECKS:
        check(gen, stats)


def check_generated(gen: Generated) -> None:
    """Verify; a refusal must be a clean VerifierError, an acceptance passes ``CHECKS``."""
    try:
        stats = verify(gen.insns, caps=CAPS, maps=gen.maps)
    except VerifierError as err:
        if err.reason.startswith("verifier bug") or err.errno == errno.EFAULT:
            pytest.fail(f"the verifier failed internally: {err}\n{_describe(gen)}")
        COUNTS["refused_risky" if gen.risky else "refused"] += 1
        reject()
    COUNTS["accepted"] += 1
    check_accepted(gen, stats)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_generated_programs(shard: int) -> None:
    """``PER_SHARD`` accepted programs of one shard (each shard draws other programs)."""

    @settings(max_examples=PER_SHARD, deadline=None, suppress_health_check=list(HealthCheck))
    @given(xdp_programs(salt=shard * 0x9E3779B1))
    def run(gen: Generated) -> None:
        check_generated(gen)

    start = time.perf_counter()
    before = COUNTS["accepted"], COUNTS["refused"] + COUNTS["refused_risky"]
    try:
        run()
    finally:
        seconds = time.perf_counter() - start
        COUNTS["seconds"] += seconds
        accepted = COUNTS["accepted"] - before[0]
        refused = COUNTS["refused"] + COUNTS["refused_risky"] - before[1]
        print(f"shard {shard}: {accepted} accepted, {refused} refused in {seconds:.1f} s "
              f"({1000 * seconds / max(accepted, 1):.1f} ms per accepted program)")
