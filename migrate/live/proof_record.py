"""A proof that found no difference, as a live migration's READY and COMMITTED carry it and
its report shows it (migrate/live/proving.py runs the proofs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..proof import Proof
from ..schema import Fields


@dataclass(frozen=True, slots=True)
class LiveProof:
    """A proof that found no difference, as READY and COMMITTED carry it."""

    program: str
    rewritten: bool
    frames: int
    generated: int
    branches_covered: int
    branches_total: int
    seconds: float

    @classmethod
    def of(cls, proof: Proof, seconds: float) -> LiveProof:
        return cls(proof.program, proof.rewritten, proof.frames, proof.generated,
                   proof.branches_covered, proof.branches_total, seconds)

    def fields(self) -> dict[str, Any]:
        return {"program": self.program, "rewritten": self.rewritten, "frames": self.frames,
                "generated": self.generated, "branches_covered": self.branches_covered,
                "branches_total": self.branches_total, "proof_ns": int(self.seconds * 1e9)}

    @classmethod
    def parse(cls, f: Fields) -> LiveProof:
        proof = cls(f.str("program"), f.bool("rewritten"), f.int("frames", 0, 1 << 20),
                    f.int("generated", 0, 1 << 20), f.int("branches_covered", 0, 1 << 24),
                    f.int("branches_total", 0, 1 << 24), f.int("proof_ns") / 1e9)
        f.done()
        return proof

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "rewritten": self.rewritten, "frames": self.frames,
                "generated": self.generated, "branches_covered": self.branches_covered,
                "branches_total": self.branches_total, "ok": True, "seconds": self.seconds}


def proof_summary(before: LiveProof | None, final: LiveProof | None) -> dict[str, Any] | None:
    """The migration report's ``proof``: the first proof's figures, and the final one's
    under ``final`` (it ran inside the downtime)."""
    if before is None:
        return None
    out = before.as_dict()
    if final is not None:
        out["final"] = {**final.as_dict(), "inside_downtime": True}
    return out
