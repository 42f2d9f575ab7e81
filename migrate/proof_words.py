"""How every view words what a proof checked - the restore's and migration's reports, the plan
table's proof column, a refusal - so they read alike: "46 frames (40 generated), 16/30
branches covered" (migrate/proof.py runs the proofs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def checked(frames: int, generated: int, covered: int, total: int) -> str:
    """Frames run (``generated`` of them built from the samples) and branch edges taken."""
    made = f" ({generated} generated)" if generated else ""
    return f"{frames + generated} frames{made}, {covered}/{total} branches covered"


def checked_in(proof: Mapping[str, Any]) -> str:
    """The same, from a proof as ``Proof.as_dict`` or a live migration's report gives it."""
    return checked(proof["frames"], proof["generated"], proof["branches_covered"],
                   proof["branches_total"])
