"""``vm-migrate``: a QEMU guest's live migration together with its device's offloaded state.

Parsing and rendering only; service/vm_migration.py does the work. Exit 0 when both the VM
and the offloaded state moved; 1 when the destination device cannot take the state (nothing
moved) or a failure rolled both back (the source VM and device run on); 2 for bad options.
``--recover`` finishes what a ``vm-migrate`` that died midway left (exit 0 when every step
of the way out succeeded or nothing was migrating, 1 otherwise).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from service.vm_migration import VmMigration

from .cmd_migrate import check_sample, proof_text, rounds_json, rounds_text
from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "vm-migrate", help="live-migrate a QEMU guest together with its offloaded XDP state",
        formatter_class=RAW,
        description="QEMU migrates the guest while the device daemons migrate its offloaded "
                    "programs and maps; the device's final round runs while QEMU waits at "
                    "pre-switchover. The destination QEMU must be waiting (-incoming URI) "
                    "with its NIC on the destination device (docs/live-migration.md).",
        epilog="examples:\n"
               "  offload-migrate vm-migrate --qmp-from /tmp/src.qmp --qmp-to /tmp/dst.qmp "
               "--from /tmp/b1.sock --to /tmp/b2.sock --uri tcp:127.0.0.1:4444\n"
               "  offload-migrate vm-migrate --recover --qmp-from /tmp/src.qmp "
               "--from /tmp/b1.sock --to /tmp/b2.sock")
    parser.add_argument("--qmp-from", required=True, metavar="SOCK",
                        help="QMP socket of the source QEMU")
    parser.add_argument("--qmp-to", metavar="SOCK",
                        help="QMP socket of the destination QEMU (started with -incoming)")
    parser.add_argument("--from", dest="source", required=True, metavar="DEVICE",
                        help="control socket of the source device daemon")
    parser.add_argument("--to", required=True, metavar="DEVICE",
                        help="control socket of the destination device daemon")
    parser.add_argument("--uri", metavar="tcp:HOST:PORT",
                        help="where the destination QEMU listens (its -incoming)")
    parser.add_argument("--recover", action="store_true",
                        help="after a vm-migrate that died midway (the source device may be "
                             "paused at its commit): if the source QEMU completed, the source "
                             "device lets its state go; otherwise QEMU's migration is "
                             "cancelled, the source device resumes and the destination device "
                             "removes its copy (needs --qmp-from, --from, --to)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds for the whole migration before rolling back "
                             "(default: 600)")
    parser.add_argument("--prove", action="store_true",
                        help="the destination device proves the offloaded state with the "
                             "source's sampled frames (device serve --sample-ring) before QEMU "
                             "moves RAM and again at the switchover; a difference rolls both "
                             "back (docs/restore-proof.md)")
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="with --prove: prove with the newest N sampled frames (default: "
                             "all the ring holds)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rounds-detail", action="store_true",
                        help="with --json: every round's entry count (device.entries_per_round) "
                             "besides the summary")
    parser.set_defaults(handler=vm_migrate_command)


def vm_migrate_command(args: argparse.Namespace, out: Output) -> int:
    if args.recover:
        return recover(args, out)
    if args.qmp_to is None or args.uri is None:
        raise UsageError("--qmp-to and --uri are needed to migrate (only --recover goes "
                         "without them).")
    if not args.uri.startswith(("tcp:", "unix:")):
        raise UsageError(f"--uri {args.uri!r}: expected tcp:HOST:PORT or unix:PATH, as the "
                         "destination's -incoming.")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive.")
    check_sample(args.sample)

    def step(name: str) -> None:
        if not args.json:
            out.console.print(f"[dim]{name}[/dim]")

    report = VmMigration(args.qmp_from, args.qmp_to, args.source, args.to, args.uri,
                         timeout=args.timeout, progress=step, prove=args.prove,
                         samples=args.sample).run()
    if args.json:
        data = report.as_dict()
        data["device"] = rounds_json(data["device"], detail=args.rounds_detail)
        out.json({"state": "completed", **data})
        return Exit.OK
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("vm migration", "[green]completed[/green]")
    table.add_row("plan", report.plan)
    table.add_row("QEMU", f"{report.qemu_total:.3f} s in all, downtime "
                          f"{report.qemu_downtime * 1000:.0f} ms, "
                          f"{report.ram_transferred:,} bytes of RAM sent")
    table.add_row("offload", f"{report.offload_total:.3f} s in all, final round "
                             f"{report.offload_downtime * 1000:.1f} ms "
                             f"({report.offload_share:.0%} of the downtime)")
    rounds = report.device.get("entries_per_round", [])
    table.add_row("rounds", f"entries per round {rounds_text(list(rounds))}")
    if report.proof is not None:
        table.add_row("proof", proof_text(report.proof))
    out.console.print(table)
    return Exit.OK


def recover(args: argparse.Namespace, out: Output) -> int:
    migration = VmMigration(args.qmp_from, args.qmp_to, args.source, args.to, args.uri)
    done = migration.recover()
    if args.json:
        out.json({"recovered": bool(done), "steps": done, "problems": migration.problems})
    elif not done:
        out.console.print(f"nothing to recover: {args.source} is not migrating a VM's state "
                          "out.", highlight=False)
    else:
        out.console.print("recovered: " + "; ".join(done) + ".", highlight=False)
    return Exit.REFUSED if migration.problems else Exit.OK
