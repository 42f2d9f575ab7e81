"""``migrate``: live migration from one daemon's device to another's while traffic runs.

The source daemon streams a full copy, then rounds of dirty map entries until the rest fits
the downtime target, pauses, sends the last delta and hands over (migrate.live). This command
starts it and follows the progress in the source's status; exit 0 when the destination
committed, 1 when it refused or the migration failed (the source then runs on, unchanged).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from service.client import DeviceClient
from service.migration import FINISHED

from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
POLL = 0.1
LIMIT = 600.0  # seconds to follow a migration before giving up watching


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate", help="live-migrate a device's offloaded state to another device",
        formatter_class=RAW,
        description="Pre-copy live migration between device daemons: the source keeps "
                    "forwarding traffic while its state streams, then pauses for the last "
                    "delta. --to is the destination daemon's control socket, or an address "
                    "it listens on for migrations (device serve --listen).",
        epilog="examples:\n"
               "  offload-migrate migrate --from /tmp/a.sock --to /tmp/b.sock\n"
               "  offload-migrate migrate --from /tmp/a.sock --to tcp:127.0.0.1:7400 "
               "--downtime-ms 20 --json")
    parser.add_argument("--from", dest="source", required=True, metavar="PATH",
                        help="control socket of the source daemon")
    parser.add_argument("--to", required=True, metavar="PATH|tcp:HOST:PORT",
                        help="destination: control socket, tcp:HOST:PORT or unix:PATH")
    parser.add_argument("--downtime-ms", type=float, default=50.0,
                        help="pause the source only once the rest fits this (default: 50)")
    parser.add_argument("--max-rounds", type=int, default=30,
                        help="pre-copy rounds at most before pausing anyway (default: 30)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=migrate_command)


def destination(to: str) -> str:
    """Paths as the daemon (another working directory) must see them: absolute."""
    if to.startswith("tcp:"):
        return to
    if to.startswith("unix:"):
        return "unix:" + os.path.abspath(to[5:])
    return os.path.abspath(to)


def migrate_command(args: argparse.Namespace, out: Output) -> int:
    if args.downtime_ms <= 0 or args.max_rounds < 0:
        raise UsageError("--downtime-ms must be positive and --max-rounds at least 0.")
    with DeviceClient(args.source) as client:
        client.call("migrate.start", to=destination(args.to),
                    downtime_target=args.downtime_ms / 1000, max_rounds=args.max_rounds)
        deadline = time.monotonic() + LIMIT
        with out.transfer("migrate", 0, show=not args.json) as bar:
            while True:
                picture = client.call("status")["migration"] or {}
                bar.update(picture.get("done", 0), total=None,
                           description=f"migrate ({picture.get('state', '?')})")
                if picture.get("state") in FINISHED or time.monotonic() > deadline:
                    break
                time.sleep(POLL)
    state = picture.get("state", "unknown")
    report = picture.get("report") or {}
    if args.json:
        out.json({"state": state, "reason": picture.get("reason", ""), "report": report})
    else:
        out.console.print(report_table(state, report, picture))
    if state != "completed":
        out.error(picture.get("reason") or f"the migration did not finish ({state}).",
                  label="refused")
        return Exit.REFUSED
    return Exit.OK


def report_table(state: str, report: dict[str, Any], picture: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    style = "green" if state == "completed" else "bold red"
    table.add_row("migration", Text(f"{state} -> {picture.get('peer', '')}", style=style))
    if report:
        downtime = report.get("downtime")
        target = report.get("downtime_target")
        table.add_row("rounds", f"{report.get('rounds', 0)} pre-copy rounds; entries per round "
                                f"{report.get('entries_per_round', [])}")
        table.add_row("bytes", f"{report.get('bytes_sent', 0):,} sent, "
                               f"{report.get('bytes_received', 0):,} received")
        table.add_row("time", f"{report.get('total_time', 0):.3f} s in all")
        if downtime is not None:
            table.add_row("downtime", f"{downtime * 1000:.1f} ms"
                          + (f" (target {target * 1000:.0f} ms)" if target else ""))
    return table
