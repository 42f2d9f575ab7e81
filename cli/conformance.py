"""The eBPF conformance suites as a command's tables; the suite itself is
:mod:`offload.conformance.suite`."""

from __future__ import annotations

from rich.table import Table

from offload.conformance.suite import Verdict


def summary_table(verdicts: list[Verdict]) -> Table:
    """Counts per suite: passed, failed, listed exceptions."""
    table = Table(title="eBPF conformance (reference interpreter)")
    table.add_column("suite")
    table.add_column("cases", justify="right")
    table.add_column("pass", justify="right", style="green")
    table.add_column("fail", justify="right", style="red")
    table.add_column("listed exceptions", justify="right", style="yellow")
    for suite in ("bpf_conformance", "ubpf"):
        mine = [v for v in verdicts if v.case.name.startswith(suite)]
        table.add_row(suite, str(len(mine)),
                      *(str(sum(v.status == status for v in mine))
                        for status in ("pass", "fail", "exception")))
    return table


def failures_table(verdicts: list[Verdict]) -> Table:
    table = Table(title="cases that differ")
    table.add_column("case", overflow="fold")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for verdict in verdicts:
        if verdict.status != "pass":
            table.add_row(verdict.case.name, verdict.status, verdict.detail)
    return table
