"""``offload-migrate``: the command people type.

Exit codes: 0 ok, 1 refused or incompatible (a program rejected, a conformance case that
differs), 2 usage error, 3 integrity failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from offload.errors import OffloadError

from . import conformance, programs

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3

EXAMPLES = """examples:
  offload-migrate conformance ../shared/conformance
  offload-migrate asm prog.s -o prog.bin
  offload-migrate disasm prog.bin
  offload-migrate run prog.s --mem '01 02 03 04'
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-migrate",
        description="Offload XDP/eBPF programs over virtio and migrate them between devices.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    conf = sub.add_parser(
        "conformance", help="judge the engine with the eBPF conformance suites",
        description="Run every program of the bpf_conformance and uBPF suites through the "
                    "assembler and the reference interpreter and compare with their results.",
        epilog="example:\n  offload-migrate conformance ../shared/conformance --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    conf.add_argument("directory", nargs="?",
                      help="folder holding bpf_conformance/ and ubpf/ (default: "
                           "$OFFLOAD_CONFORMANCE_DIR or ../shared/conformance)")
    conf.add_argument("--json", action="store_true", help="print verdicts as JSON")

    asm = sub.add_parser("asm", help="assemble text into bytecode",
                         epilog="example:\n  offload-migrate asm prog.s -o prog.bin",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    asm.add_argument("source", help="assembler text (bpf_conformance syntax)")
    asm.add_argument("-o", "--output", required=True, help="bytecode file to write")

    dis = sub.add_parser("disasm", help="list the instructions of bytecode or assembler text",
                         epilog="example:\n  offload-migrate disasm prog.bin --raw",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    dis.add_argument("program", help="bytecode (.bin), hex text (.hex) or assembler text")
    dis.add_argument("--raw", action="store_true", help="show each slot's 64-bit word")
    dis.add_argument("--json", action="store_true", help="print instructions as JSON")

    run = sub.add_parser("run", help="run a program on input memory (r1=address, r2=length)",
                         epilog="example:\n  offload-migrate run prog.s --mem '01 02 03 04'",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("program", help="bytecode (.bin), hex text (.hex) or assembler text")
    run.add_argument("--mem", default="", help="input memory as hex bytes")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    console = console or Console()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help exits 0, a usage error 2
        return EXIT_OK if not exit_.code else EXIT_USAGE
    try:
        if args.command == "conformance":
            return _conformance(args, console)
        if args.command == "asm":
            size = programs.assemble_file(Path(args.source), Path(args.output))
            console.print(f"wrote {size} bytes to {args.output}")
            return EXIT_OK
        if args.command == "disasm":
            insns = programs.read_program(Path(args.program))
            if args.json:
                print(json.dumps(programs.instructions_json(insns), indent=2))
            else:
                console.print(programs.listing_text(insns, raw=args.raw), highlight=False)
            return EXIT_OK
        if args.command == "run":
            insns = programs.read_program(Path(args.program))
            result = programs.run_program(insns, args.mem)
            if args.json:
                print(json.dumps(result))
            else:
                console.print(f"r0 = {result['r0']:#x} ({result['steps']} instructions)")
            return EXIT_OK
    except OSError as err:
        console.print(f"[red]error:[/red] {err.strerror}: {err.filename}")
        return EXIT_USAGE
    except OffloadError as err:
        console.print(f"[red]refused:[/red] {err}", highlight=False)
        return EXIT_REFUSED
    return EXIT_USAGE


def _conformance(args: argparse.Namespace, console: Console) -> int:
    root = conformance.conformance_root(args.directory)
    if root is None:
        console.print("[red]error:[/red] no conformance suites found; give the folder that "
                      "holds bpf_conformance/ and ubpf/")
        return EXIT_USAGE
    verdicts = [conformance.judge(conformance.parse_case(path))
                for path in conformance.all_cases(root)]
    failed = any(v.status == "fail" for v in verdicts)
    if args.json:
        print(json.dumps([{"case": v.case.name, "status": v.status, "detail": v.detail}
                          for v in verdicts], indent=2))
    else:
        console.print(conformance.summary_table(verdicts))
        console.print(conformance.failures_table(verdicts))
    return EXIT_REFUSED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
