"""A compatibility plan as a rich ``Table``: one row per object, its outcome and reasons, and,
when the restore or migration was proven (migrate/proof.py), the proof on the program's row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from .plan_model import Outcome, Plan
from .proof_words import checked_in

STYLES = {Outcome.COMPATIBLE: "green", Outcome.REWRITABLE: "cyan",
          Outcome.FALLBACK: "yellow", Outcome.INCOMPATIBLE: "bold red"}


def proof_cell(proof: Mapping[str, Any]) -> Text:
    """Frames checked, branches covered and the result, as ``Proof.as_dict`` gives them."""
    if proof.get("ok", True):
        final = proof.get("final")
        again = f"; {final['frames']} again on the final state" if final else ""
        return Text(f"identical: {checked_in(proof)}{again}", style="green")
    difference = proof.get("difference") or {}
    kind = "generated frame" if difference.get("generated") else "frame"
    return Text(f"DIFFERENT at {kind} {difference.get('frame', '?')}: "
                f"{difference.get('what', '?')} ({checked_in(proof)})", style="bold red")


def plan_table(plan: Plan, proof: Mapping[str, Any] | None = None) -> Table:
    table = Table(title=f"Compatibility with {plan.target}: {plan.outcome.name.lower()}")
    table.add_column("object")
    table.add_column("outcome")
    table.add_column("reasons")
    if proof is not None:
        table.add_column("proof")
    for report in plan.reports:
        reasons = "\n".join(f.reason for f in report.findings) or "-"
        row: list[str | Text] = [f"{report.kind} {report.name}",
                                 Text(report.outcome.name.lower(), style=STYLES[report.outcome]),
                                 reasons]
        if proof is not None:
            proven = report.kind == "program" and report.name == proof.get("program")
            row.append(proof_cell(proof) if proven else "-")
        table.add_row(*row)
    return table
