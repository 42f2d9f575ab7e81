"""A compatibility plan as a rich ``Table``: one row per object, its outcome and reasons."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .plan_model import Outcome, Plan

STYLES = {Outcome.COMPATIBLE: "green", Outcome.REWRITABLE: "cyan",
          Outcome.FALLBACK: "yellow", Outcome.INCOMPATIBLE: "bold red"}


def plan_table(plan: Plan) -> Table:
    table = Table(title=f"Compatibility with {plan.target}: {plan.outcome.name.lower()}")
    table.add_column("object")
    table.add_column("outcome")
    table.add_column("reasons")
    for report in plan.reports:
        reasons = "\n".join(f.reason for f in report.findings) or "-"
        table.add_row(f"{report.kind} {report.name}",
                      Text(report.outcome.name.lower(), style=STYLES[report.outcome]), reasons)
    return table
