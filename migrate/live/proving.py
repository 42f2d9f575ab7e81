"""The proof in a live migration (docs/restore-proof.md, "Live migration").

A restore proves on scratch devices before anything is restored; a live migration's state
is not final until the cut, and the pause should stay short. So the destination proves twice:

1. **Before the pre-copy rounds** (outside the downtime), on the full copy: the snapshot
   restored on two fresh scratch devices - as the source ran it and as this destination will
   run it - with every sampled frame and, for a rewritten program, the frames built from
   them (:func:`migrate.proof.prove`). Then two more scratch copies of the full copy are
   restored, not attached: the *shadows*.
2. **At the cut** (inside the downtime), on the final state: every delta the destination
   applies is applied to both shadows too, so after the final delta they hold the maps as
   the source had them at the pause; FINAL attaches them and the newest ``FINAL_FRAMES``
   sampled frames run through both, untraced (:func:`migrate.proof.prove_restored`). The
   frames built from the sample, and the branch coverage, belong to the first proof; the
   second runs inside the pause, so it is bounded.

A difference, or nothing to prove with, refuses the migration (REFUSE code ``proof``): the
destination rolls back and the source runs on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from offload.device import DevicePair, build_device

from ..errors import SnapshotError
from ..proof import PairFactory, Proof, ProofError, prove, prove_restored
from ..restore import Progress
from ..snapshot import Snapshot
from .errors import DestinationRefused
from .messages import Delta, Final
from .proof_record import LiveProof
from .target import TargetState

#: Sampled frames (the newest) the proof at the cut runs, at most: it runs inside the pause.
FINAL_FRAMES = 32


@dataclass(frozen=True, slots=True)
class ScratchDevices:
    """Where a destination proves: factories of scratch devices as the source ran the state
    (its capabilities, the reference engine), as the destination runs it (its capabilities
    and backend) and, optionally, like the destination on the reference engine (then a
    difference names the instruction where the paths part). ``close`` releases what the
    factories made."""

    source: PairFactory
    target: PairFactory
    reference: PairFactory | None = None
    close: Callable[[], None] = lambda: None


#: The scratch devices for a snapshot; a destination without one cannot prove.
ScratchFactory = Callable[[Snapshot], ScratchDevices]


def builtin_scratch(pair: DevicePair) -> ScratchFactory:
    """Scratch devices on the built-in engines, with ``pair``'s capabilities as the target."""
    caps = pair.device.caps

    def make(snapshot: Snapshot) -> ScratchDevices:
        cpus = snapshot.cpus
        return ScratchDevices(
            lambda: build_device("proof-source", snapshot.capabilities, engine="reference",
                                 ncpus=cpus),
            lambda: build_device("proof-target", caps, ncpus=cpus),
            lambda: build_device("proof-reference", caps, engine="reference", ncpus=cpus))
    return make


def refusal(proof: Proof, when: str) -> DestinationRefused:
    """The refusal of a proof that found a difference, in restore --prove's words."""
    diff = proof.difference
    return DestinationRefused(
        f"the proof failed {when}: {diff.describe() if diff else '?'} ({proof.summary()}); "
        f"nothing was migrated.", code="proof")


class Prover:
    """The destination's two proofs and the shadows between them."""

    def __init__(self, snapshot: Snapshot, scratch: ScratchDevices, allow_fallback: bool) -> None:
        self.snapshot = snapshot
        self.scratch = scratch
        self.allow_fallback = allow_fallback
        self.shadows: tuple[TargetState, TargetState] | None = None

    def before(self, progress: Progress | None = None) -> LiveProof:
        """The proof on the full copy, then the shadows restored from it. ``progress`` hears
        each step (stage ``proof``) and the shadows' restores, so the source's read timeout
        sees a destination at work."""
        step = progress or (lambda stage, done, total: None)
        frames = list(self.snapshot.samples)
        if not frames:
            raise DestinationRefused(
                "there are no frames to prove with: the source sent no sampled frames (start "
                "its daemon with --sample-ring N and let traffic reach it).", code="proof")
        t0 = time.monotonic()
        step("proof", 0, 3)
        try:
            proof = prove(self.snapshot, frames, source=self.scratch.source,
                          target=self.scratch.target, reference=self.scratch.reference)
        except ProofError as err:
            raise DestinationRefused(f"the proof could not be carried out: {err}",
                                     code="proof") from None
        if not proof.ok:
            raise refusal(proof, "on the full copy")
        seconds = time.monotonic() - t0
        step("proof", 1, 3)
        shadows = (TargetState(self.scratch.source()), TargetState(self.scratch.target()))
        try:
            for done, shadow in enumerate(shadows, 2):
                shadow.restore(self.snapshot, allow_fallback=self.allow_fallback,
                               progress=progress)
                step("proof", done, 3)
        except SnapshotError as err:
            raise DestinationRefused(f"the proof could not be carried out: a scratch device "
                                     f"refused the snapshot: {err}", code="proof") from None
        self.shadows = shadows
        return LiveProof.of(proof, seconds)

    def apply(self, delta: Delta) -> None:
        for shadow in self.shadows or ():
            shadow.apply(delta)

    def final(self, final: Final) -> LiveProof:
        """The sampled frames on the shadows, which now hold the final state."""
        if self.shadows is None:
            raise DestinationRefused("the proof on the full copy never ran.", code="proof")
        t0 = time.monotonic()
        sides = []
        for shadow in self.shadows:
            shadow.commit(final)
            if shadow.result is None:
                raise DestinationRefused("a scratch copy was lost before the cut.",
                                         code="proof")
            sides.append((shadow.pair, shadow.result))
        try:
            proof = prove_restored(self.snapshot, self.snapshot.samples[-FINAL_FRAMES:],
                                   sides[0], sides[1], generate=False, trace=False)
        except ProofError as err:
            raise DestinationRefused(f"the proof could not be carried out: {err}",
                                     code="proof") from None
        if not proof.ok:
            raise refusal(proof, "on the final state")
        return LiveProof.of(proof, time.monotonic() - t0)

    def close(self) -> None:
        self.shadows = None
        self.scratch.close()
