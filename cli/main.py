"""``offload-migrate``: the command people type.

Exit codes (cli/exits.py): 0 ok, 1 refused or incompatible (a program rejected, a target that
cannot take a snapshot, a daemon that does not answer, a conformance case that differs),
2 usage error, 3 integrity failure (a snapshot whose seal does not verify).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from service.protocol import RemoteError

from . import (
    cmd_device,
    cmd_events,
    cmd_migrate,
    cmd_profiles,
    cmd_programs,
    cmd_snapshot,
    cmd_verify,
    cmd_vm_migrate,
    demo,
)
from .exits import Exit, classify
from .output import Output

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
  offload-migrate keygen --type ed25519 -o ops.key
  offload-migrate save --device /tmp/a.sock -o a.snap --sign ops.key
  offload-migrate restore a.snap --device /tmp/b.sock --trust ops.key.pub --dry-run
  offload-migrate inspect a.snap
  offload-migrate migrate --from /tmp/a.sock --to /tmp/b.sock
  offload-migrate verify fixtures/xdp/xdp_firewall.o --profile smartnic

exit codes: 0 ok, 1 refused or incompatible, 2 usage, 3 integrity failure
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-migrate",
        description="Offload XDP/eBPF programs over virtio and migrate them between devices.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.register(sub)
    cmd_device.register(sub)
    cmd_events.register(sub)
    cmd_snapshot.register(sub)
    cmd_migrate.register(sub)
    cmd_vm_migrate.register(sub)
    cmd_verify.register(sub)
    cmd_profiles.register(sub)
    cmd_programs.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None,
         err_console: Console | None = None) -> int:
    """Run one command; ``console`` (and ``err_console``, by default the same one when a
    console is given, else stderr) let tests record what a person would see."""
    out = Output(console or Console(),
                 err_console or console or Console(stderr=True))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help exits 0, a usage error 2
        return Exit.OK if not exit_.code else Exit.USAGE
    try:
        return int(args.handler(args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return Exit.REFUSED
    except Exception as err:  # every failure ends as a message and an exit code
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
        if log:
            out.err.print(log, highlight=False)
        return exit_code


if __name__ == "__main__":
    sys.exit(main())
