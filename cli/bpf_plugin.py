"""``offload-bpf-plugin``: this engine behind the bpf_conformance plugin protocol.

Protocol (as the public conformance runner drives the kernel, uBPF and rbpf): the program's
bytes arrive as hex on stdin (whitespace anywhere), or with ``--elf`` the bytes of an ELF
object; the first argument, when it is not an option, holds the input memory as hex (r1
points at a copy, r2 holds its length). On success r0 is printed in hex on stdout and the exit
status is 0; on any refusal or fault the message goes to stderr and the status is 1
(2 for a usage error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from offload.conformance.helpers import CONFORMANCE_HELPERS
from offload.engine import DEFAULT_MAX_STEPS, Interpreter
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.isa import Instruction, decode

EXAMPLES = """examples:
  echo 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' | offload-bpf-plugin
  echo '79 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00' | offload-bpf-plugin '01 02 03 04 05 06 07 08'
"""


class PluginInputError(OffloadError):
    """Input that is not hex, or an ELF object without a program."""


def parse_hex(text: str, what: str) -> bytes:
    """Bytes from hex text; whitespace (and an optional 0x per byte group) is ignored."""
    cleaned = "".join(part[2:] if part.lower().startswith("0x") else part
                      for part in text.split())
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise PluginInputError(f"the {what} is not hex: {text.strip()[:40]!r}") from None


def program_from_elf(data: bytes) -> list[Instruction]:
    """The program of an ELF object as the conformance runner writes it: function ``main``
    in ``.text`` (or ``xdp`` with its XDP prolog), else the object's only program."""
    from offload.loader import LoaderError, load_object  # local: only --elf needs it
    from offload.uapi import ProgType

    try:
        obj = load_object(data, entry_sections={".text": ProgType.XDP})
    except LoaderError as err:
        raise PluginInputError(f"cannot load the ELF object: {err}") from None
    if "main" in obj.programs:
        program = obj.programs["main"]
    elif len(obj.programs) == 1:
        (program,) = obj.programs.values()
    else:
        raise PluginInputError(f"the ELF object holds {len(obj.programs)} programs and none "
                               "is named main; the plugin runs exactly one")
    if program.map_refs:
        raise PluginInputError("the program uses maps, which the plugin does not provide")
    return list(program.instructions)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-bpf-plugin",
        description="Run one eBPF program on the reference interpreter, speaking the "
                    "bpf_conformance plugin protocol.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("memory", nargs="?", default="",
                        help="input memory as hex bytes (r1 points at it, r2 is its length)")
    parser.add_argument("--elf", action="store_true",
                        help="stdin holds an ELF object (as hex) instead of raw bytecode")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                        help="instruction budget before the run is stopped (default %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help exits 0, a usage error 2
        return 0 if not exit_.code else 2
    try:
        memory = parse_hex(args.memory, "input memory")
        code = parse_hex(sys.stdin.read(), "program")
        insns = program_from_elf(code) if args.elf else decode(code)
        program = Interpreter(insns, CONFORMANCE_HELPERS, max_steps=args.max_steps)
        result, _ = run_on_memory(program, memory)
    except OffloadError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"{result.r0:x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
