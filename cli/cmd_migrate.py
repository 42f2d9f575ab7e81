"""``migrate``: live migration from one daemon's device to another's while traffic runs.

The source daemon streams a full copy, then rounds of dirty map entries until the rest fits
the downtime target, pauses, sends the last delta and hands over (migrate.live). This command
starts it and follows the progress in the source's status; exit 0 when the destination
committed, 1 when it refused or the migration failed (the source then runs on, unchanged).
Ctrl-C cancels it (migrate.cancel) unless it is past the cut: the source runs on with its
state, the destination rolls back, and the command waits for both to say so (exit 1).
"""

from __future__ import annotations

import argparse
import errno
import os
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from migrate.proof_words import checked_in
from offload.device.sampler import MAX_SAMPLES
from service.client import DeviceClient
from service.migration import FINISHED
from service.protocol import RemoteError

from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
POLL = 0.1
LIMIT = 600.0  # seconds to follow a migration before giving up watching
CANCEL_WAIT = 30.0  # seconds to wait for a cancelled migration to end on both daemons
ROUNDS_SHOWN = 8  # rounds whose entry counts the report lists; the others are summed


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
               "--downtime-ms 20 --json\n"
               "  offload-migrate migrate --from /tmp/a.sock --to /tmp/smartnic.sock --prove\n\n"
               "--prove: the destination runs the source's sampled frames (device serve "
               "--sample-ring N) through the program as the source ran it and as it will run it, "
               "on the full copy and again on the final state inside the pause; a difference "
               "refuses the migration (exit 1), the source runs on and the destination is "
               "emptied (docs/restore-proof.md).\n"
               "Ctrl-C cancels the migration before the cut: the source keeps running with "
               "its state and the destination is emptied (exit 1).")
    parser.add_argument("--from", dest="source", required=True, metavar="PATH",
                        help="control socket of the source daemon")
    parser.add_argument("--to", required=True, metavar="PATH|tcp:HOST:PORT",
                        help="destination: control socket, tcp:HOST:PORT or unix:PATH")
    parser.add_argument("--downtime-ms", type=float, default=50.0,
                        help="pause the source only once the rest fits this (default: 50)")
    parser.add_argument("--max-rounds", type=int, default=30,
                        help="pre-copy rounds at most before pausing anyway (default: 30)")
    parser.add_argument("--prove", action="store_true",
                        help="prove the migrated program behaves as the source's on its "
                             "sampled frames, before the rounds and at the cut")
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="with --prove: the newest N sampled frames (default: all the "
                             "source's ring holds)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rounds-detail", action="store_true",
                        help="with --json: every round's entry count (entries_per_round) "
                             "besides the bounded summary (rounds_summary)")
    parser.set_defaults(handler=migrate_command)


def check_sample(sample: int) -> None:
    """``--sample N`` of ``migrate`` and ``vm-migrate``: no more frames than a ring keeps."""
    if not 0 <= sample <= MAX_SAMPLES:
        raise UsageError(f"--sample takes 0 to {MAX_SAMPLES} frames.")


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
    check_sample(args.sample)
    to = destination(args.to)
    if not to.startswith("tcp:") and os.path.realpath(to.removeprefix("unix:")) == \
            os.path.realpath(args.source):
        raise UsageError(f"--from and --to name the same daemon ({args.source}); migrate "
                         "to another device's socket.")
    with DeviceClient(args.source) as client:
        prove = {"prove": True, "samples": args.sample} if args.prove else {}
        client.call("migrate.start", to=to, downtime_target=args.downtime_ms / 1000,
                    max_rounds=args.max_rounds, **prove)
        try:
            picture = follow(client, out, LIMIT, show=not args.json)
        except KeyboardInterrupt:
            picture = None
    if picture is None:  # Ctrl-C: cancel on a fresh connection (the other may be mid-call)
        return cancel(args, out, to)
    state = picture.get("state", "unknown")
    report = picture.get("report") or {}
    if state == "completed" and not to.startswith(("tcp:", "unix:")):
        _wait_idle(to)  # exit 0 means the destination's status already shows the state
    if args.json:
        out.json({"state": state, "reason": picture.get("reason", ""),
                  "report": rounds_json(report, detail=args.rounds_detail)})
    else:
        out.console.print(report_table(state, report, picture))
    if state != "completed":
        out.error(picture.get("reason") or f"the migration did not finish ({state}).",
                  label="refused")
        return Exit.REFUSED
    return Exit.OK


def follow(client: DeviceClient, out: Output, limit: float,
           show: bool = True) -> dict[str, Any]:
    """Poll the source's status until the migration ends (or ``limit`` seconds pass)."""
    deadline = time.monotonic() + limit
    with out.transfer("migrate", 0, show=show) as bar:
        while True:
            picture: dict[str, Any] = client.call("status")["migration"] or {}
            bar.update(picture.get("done", 0), total=None,
                       description=f"migrate ({picture.get('state', '?')})")
            if picture.get("state") in FINISHED or time.monotonic() > deadline:
                return picture
            time.sleep(POLL)


def cancel(args: argparse.Namespace, out: Output, to: str) -> int:
    """Ctrl-C: cancel the migration, wait until the source and (when it is a daemon's
    socket) the destination no longer migrate, and say where the state is."""
    out.err.print("interrupted: cancelling the migration...", highlight=False)
    with DeviceClient(args.source) as client:
        try:
            client.call("migrate.cancel")
        except RemoteError as err:  # it ended meanwhile (ENOENT): its status says how
            if err.errno != errno.ENOENT:
                raise
        picture = follow(client, out, CANCEL_WAIT, show=not args.json)
    state = picture.get("state", "unknown")
    if not to.startswith(("tcp:", "unix:")):
        _wait_idle(to)
    if state == "completed":  # it was past the cut: the destination runs the state now
        out.console.print(report_table(state, picture.get("report") or {}, picture))
        out.error("the migration was past the cut and completed: the destination runs the "
                  "state now.", label="refused")
        return Exit.REFUSED
    out.error(f"migration {state}: {args.source} runs on with its state; the destination "
              "was emptied.", label="cancelled")
    return Exit.REFUSED


def _wait_idle(socket_path: str) -> None:
    """Until the destination daemon's migration has ended (it rolls back on an abort, and
    after a commit lets go of the device, so its status is current)."""
    deadline = time.monotonic() + CANCEL_WAIT
    with DeviceClient(socket_path) as client:
        while time.monotonic() < deadline:
            picture = client.call("status")["migration"] or {}
            if picture.get("state") in FINISHED or not picture:
                return
            time.sleep(POLL)


def rounds_text(counts: list[int]) -> str:
    """Entry counts per round: all of a few rounds, else the first and last ones and how
    many were between (a long migration has thousands)."""
    if len(counts) <= ROUNDS_SHOWN:
        return ", ".join(str(c) for c in counts) or "-"
    head, tail = counts[:ROUNDS_SHOWN // 2], counts[-ROUNDS_SHOWN // 2:]
    middle = counts[ROUNDS_SHOWN // 2:-ROUNDS_SHOWN // 2]
    return (f"{', '.join(map(str, head))}, ... {len(middle)} rounds, {sum(middle):,} entries "
            f"..., {', '.join(map(str, tail))}")


def rounds_summary(counts: list[int]) -> dict[str, Any]:
    """Entry counts per round, bounded: how many transfers (the full copy, the rounds, the
    final delta), the first and last few, the total and the largest."""
    edge = ROUNDS_SHOWN // 2
    return {"count": len(counts), "first": counts[:edge],
            "last": counts[max(edge, len(counts) - edge):], "total": sum(counts),
            "max": max(counts, default=0)}


def rounds_json(report: dict[str, Any], *, detail: bool) -> dict[str, Any]:
    """A migration report for ``--json``: ``rounds_summary`` always, the full
    ``entries_per_round`` only with ``detail`` (``--rounds-detail``)."""
    if not report:
        return report
    counts = [int(c) for c in report.get("entries_per_round") or []]
    out = {k: v for k, v in report.items() if k != "entries_per_round"}
    out["rounds_summary"] = rounds_summary(counts)
    if detail:
        out["entries_per_round"] = counts
    return out


def proof_text(proof: dict[str, Any]) -> str:
    """The migration's proofs in one line: frames, coverage, time, and the final one's time
    inside the downtime."""
    text = f"{checked_in(proof)} on the full copy ({proof['seconds'] * 1000:.1f} ms)"
    final = proof.get("final")
    if final:
        text += (f"; {final['frames']} frames on the final state "
                 f"({final['seconds'] * 1000:.1f} ms of the downtime)")
    return text + f": {proof['program']} behaves as on the source"


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
                                f"{rounds_text(list(report.get('entries_per_round', [])))}")
        table.add_row("bytes", f"{report.get('bytes_sent', 0):,} sent, "
                               f"{report.get('bytes_received', 0):,} received")
        table.add_row("time", f"{report.get('total_time', 0):.3f} s in all")
        if downtime is not None:
            table.add_row("downtime", f"{downtime * 1000:.1f} ms"
                          + (f" (target {target * 1000:.0f} ms)" if target else ""))
        if report.get("proof"):
            table.add_row("proof", proof_text(report["proof"]))
    return table
