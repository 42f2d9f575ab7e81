"""``offload-migrate``: the command people type.

Exit codes (cli/exits.py): 0 ok, 1 refused or incompatible (a program rejected, a target that
cannot take a snapshot, a daemon that does not answer, a conformance case that differs),
2 usage error, 3 integrity failure (a snapshot whose seal does not verify).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .exits import Exit
from .global_options import split_globals
from .output import Output

if TYPE_CHECKING:
    from rich.console import Console

#: Each command module (relative to this package, which installs as ``offload_migrate_cli``)
#: and the commands its ``register`` adds, with their one-line help, in the order ``--help``
#: lists them. The parser lists every command from this table and
#: imports only the module of the command being run (start-up stays that of argparse and
#: rich); tests/cli/test_main.py checks the table against what each module registers.
COMMANDS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (".demo", (
        ("demo", "two devices, a fixture, traffic, save, restore onto a smaller device"),)),
    (".cmd_device", (
        ("device", "run, stop, list and show device daemons"),
        ("load", "load an ELF object's programs and maps onto a device"),
        ("status", "live view of devices, programs, counters and maps"))),
    (".cmd_events", (
        ("events", "print the event streams of a device (perf event arrays, ring buffers)"),)),
    (".cmd_capture", (
        ("capture", "record frames at a device into a pcap file (rx, tx, drops)"),)),
    (".cmd_snapshot", (
        ("save", "checkpoint a device into a sealed snapshot file"),
        ("restore", "restore a snapshot onto a device (or dry-run its plan)"),
        ("inspect", "show a snapshot file: seal, features, programs, maps"),
        ("diff", "compare two snapshots"),
        ("keygen", "generate a signing, MAC or encryption key"))),
    (".cmd_migrate", (
        ("migrate", "live-migrate a device's offloaded state to another device"),)),
    (".cmd_vm_migrate", (
        ("vm-migrate", "live-migrate a QEMU guest together with its offloaded XDP state"),)),
    (".cmd_verify", (
        ("verify", "verify programs for a device profile"),)),
    (".cmd_profiles", (
        ("profiles", "list capability profiles, or show one"),)),
    (".cmd_programs", (
        ("conformance", "judge the engine with the eBPF conformance suites"),
        ("asm", "assemble text into bytecode"),
        ("disasm", "list the instructions of bytecode or assembler text"),
        ("run", "run a program on input memory (r1=address, r2=length)"))),
    (".cmd_prog", (
        ("prog", "a device's programs, as bpftool prog (show, dump, run, attach...)"),)),
    (".cmd_map", (
        ("map", "a device's maps, as bpftool map (show, dump, lookup, update...)"),)),
)

EXIT_OK = Exit.OK
EXIT_REFUSED = Exit.REFUSED
EXIT_USAGE = Exit.USAGE
EXIT_INTEGRITY = Exit.INTEGRITY

EXAMPLES = """examples:
  offload-migrate demo
  offload-migrate device serve --name A --profile full --socket /tmp/a.sock --traffic synthetic
  offload-migrate device serve --name B --profile smartnic --socket /tmp/b.sock
  offload-migrate load fixtures/xdp/xdp_firewall_v4.o --device /tmp/a.sock --attach
  offload-migrate status --device /tmp/a.sock --device /tmp/b.sock
  offload-migrate events --device /tmp/a.sock --follow
  offload-migrate capture --device /tmp/a.sock -o drops.pcap --what drop --count 100
  offload-migrate keygen --type ed25519 -o ops.key
  offload-migrate save --device /tmp/a.sock -o a.snap --sign ops.key
  offload-migrate restore a.snap --device /tmp/b.sock --trust ops.key.pub --dry-run
  offload-migrate inspect a.snap
  offload-migrate migrate --from /tmp/a.sock --to /tmp/b.sock
  offload-migrate verify fixtures/xdp/xdp_firewall.o --profile smartnic
  export OFFLOAD_MIGRATE_DEVICE=/tmp/a.sock     # the default --device
  offload-migrate prog show; offload-migrate -p map dump name verdicts
  offload-migrate map update blocked_v4 key 10 0 0 2 value 1 0 0 0 0 0 0 0
  offload-migrate prog run xdp_firewall --data-in frame.bin

exit codes: 0 ok, 1 refused or incompatible, 2 usage, 3 integrity failure
"""


def build_parser(argv: Sequence[str] | None = (), *, every: bool = False
                 ) -> argparse.ArgumentParser:
    """The parser for ``argv``: the chosen command (its first word) with all its options,
    every other command as its name and help only; ``every`` registers them all."""
    parser = argparse.ArgumentParser(
        prog="offload-migrate",
        description="Offload XDP/eBPF programs over virtio and migrate them between devices.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in (sys.argv[1:] if argv is None else argv)
                   if not arg.startswith("-")), None)
    for module, commands in COMMANDS:
        if every or any(name == chosen for name, _ in commands):
            importlib.import_module(module, __package__).register(sub)
        else:
            for name, summary in commands:
                sub.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None,
         err_console: Console | None = None) -> int:
    """Run one command; ``console`` (and ``err_console``, by default the same one when a
    console is given, else stderr) let tests record what a person would see."""
    out = Output(console, err_console or console)
    words, options = split_globals(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(words).parse_args(words)
    except SystemExit as exit_:  # --help exits 0, a usage error 2
        return Exit.OK if not exit_.code else Exit.USAGE
    if options.json:  # -j/-p anywhere on the line, as bpftool's global options
        args.json = True
    args.pretty = options.pretty
    try:
        from . import device_option

        device_option.resolve(args)
        return int(args.handler(args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return Exit.REFUSED
    except Exception as err:  # every failure ends as a message and an exit code
        from service.protocol import RemoteError

        from .exits import classify

        code, exit_code = classify(err)
        if type(err).__module__.split(".")[0] not in ("offload", "migrate", "service", "cli") \
                and not isinstance(err, OSError):
            raise
        label = {Exit.INTEGRITY: "integrity", Exit.USAGE: "error"}.get(exit_code, "refused")
        if isinstance(err, OSError):
            out.error(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "), label)
        else:
            out.error(str(err), label)
        log = err.data.get("log") if isinstance(err, RemoteError) else None
        if log and log.strip() not in str(err):  # a verifier log, not the reason again
            out.err.print(log, highlight=False)
        return exit_code


if __name__ == "__main__":
    sys.exit(main())
