"""``conformance``, ``asm``, ``disasm`` and ``run``: the ISA layer and the reference engine on
their own, without a device."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from offload.conformance.suite import all_cases, conformance_root, judge, parse_case

from . import conformance, programs
from .exits import Exit
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter


def register(sub: Any) -> None:
    conf = sub.add_parser(
        "conformance", help="judge the engine with the eBPF conformance suites",
        description="Run every program of the bpf_conformance and uBPF suites through the "
                    "assembler and the reference interpreter and compare with their results.",
        epilog="example:\n  offload-migrate conformance tests/conformance_data --json",
        formatter_class=RAW)
    conf.add_argument("directory", nargs="?",
                      help="folder holding bpf_conformance/ and ubpf/ (default: "
                           "$OFFLOAD_CONFORMANCE_DIR or the source tree's tests/conformance_data)")
    conf.add_argument("--json", action="store_true", help="print verdicts as JSON")
    conf.set_defaults(handler=conformance_command)

    asm = sub.add_parser("asm", help="assemble text into bytecode",
                         epilog="example:\n  offload-migrate asm prog.s -o prog.bin",
                         formatter_class=RAW)
    asm.add_argument("source", help="assembler text (bpf_conformance syntax)")
    asm.add_argument("-o", "--output", required=True, help="bytecode file to write")
    asm.set_defaults(handler=asm_command)

    dis = sub.add_parser("disasm", help="list the instructions of bytecode or assembler text",
                         epilog="example:\n  offload-migrate disasm prog.bin --raw",
                         formatter_class=RAW)
    dis.add_argument("program", help="bytecode (.bin), hex text (.hex) or assembler text")
    dis.add_argument("--raw", action="store_true", help="show each slot's 64-bit word")
    dis.add_argument("--json", action="store_true", help="print instructions as JSON")
    dis.set_defaults(handler=disasm_command)

    run = sub.add_parser("run", help="run a program on input memory (r1=address, r2=length)",
                         epilog="example:\n  offload-migrate run prog.s --mem '01 02 03 04'",
                         formatter_class=RAW)
    run.add_argument("program", help="bytecode (.bin), hex text (.hex) or assembler text")
    run.add_argument("--mem", default="", help="input memory as hex bytes")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(handler=run_command)


def asm_command(args: argparse.Namespace, out: Output) -> int:
    size = programs.assemble_file(Path(args.source), Path(args.output))
    out.console.print(f"wrote {size} bytes to {args.output}")
    return Exit.OK


def disasm_command(args: argparse.Namespace, out: Output) -> int:
    insns = programs.read_program(Path(args.program))
    if args.json:
        print(json.dumps(programs.instructions_json(insns), indent=2))
    else:
        out.console.print(programs.listing_text(insns, raw=args.raw), highlight=False)
    return Exit.OK


def run_command(args: argparse.Namespace, out: Output) -> int:
    insns = programs.read_program(Path(args.program))
    result = programs.run_program(insns, args.mem)
    if args.json:
        print(json.dumps(result))
    else:
        out.console.print(f"r0 = {result['r0']:#x} ({result['steps']} instructions)")
    return Exit.OK


def conformance_command(args: argparse.Namespace, out: Output) -> int:
    root = conformance_root(args.directory)
    if root is None:
        out.error("no conformance suites found; give the folder that holds bpf_conformance/ "
                  "and ubpf/")
        return Exit.USAGE
    verdicts = [judge(parse_case(path)) for path in all_cases(root)]
    failed = any(v.status == "fail" for v in verdicts)
    if args.json:
        print(json.dumps([{"case": v.case.name, "status": v.status, "detail": v.detail}
                          for v in verdicts], indent=2))
    else:
        out.console.print(conformance.summary_table(verdicts))
        out.console.print(conformance.failures_table(verdicts))
    return Exit.REFUSED if failed else Exit.OK
