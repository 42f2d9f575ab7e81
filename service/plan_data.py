"""A compatibility plan as plain data (control socket, ``--json``) and back, so the client
renders the daemon's plan with ``migrate.plan_view`` like a local one."""

from __future__ import annotations

from typing import Any

from migrate.plan_model import Finding, Outcome, Plan, Report


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {"target": plan.target, "outcome": plan.outcome.name.lower(), "ok": plan.ok,
            "reports": [{"kind": r.kind, "name": r.name, "outcome": r.outcome.name.lower(),
                         "findings": [{"outcome": f.outcome.name.lower(), "code": f.code,
                                       "reason": f.reason, "slot": f.slot}
                                      for f in r.findings],
                         "rewritten_insns": None if r.rewritten is None else
                         sum(i.width for i in r.rewritten.instructions)}
                        for r in plan.reports]}


def _outcome(name: Any) -> Outcome:
    try:
        return Outcome[str(name).upper()]
    except KeyError:
        return Outcome.INCOMPATIBLE


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The plan again (without rewritten programs: only their size travels)."""
    reports = []
    for r in data.get("reports", []):
        findings = tuple(Finding(_outcome(f.get("outcome")), str(f.get("code", "")),
                                 str(f.get("reason", "")), f.get("slot"))
                         for f in r.get("findings", []))
        reports.append(Report(str(r.get("kind", "")), str(r.get("name", "")),
                              _outcome(r.get("outcome")), findings))
    return Plan(str(data.get("target", "")), tuple(reports))
