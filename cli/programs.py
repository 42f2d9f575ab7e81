"""Reading, writing and running bare programs for the ``asm``, ``disasm`` and ``run`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrate.atomic_file import write_atomic
from offload.conformance.helpers import CONFORMANCE_HELPERS
from offload.engine import Interpreter
from offload.engine.harness import run_on_memory
from offload.isa import Instruction, assemble, decode, encode, encode_words, listing
from service.errors import UsageError

from .bpf_plugin import PluginInputError, parse_hex

BYTECODE_SUFFIXES = {".bin", ".bpf"}
HEX_SUFFIXES = {".hex"}


class ProgramFileError(UsageError):
    """A program file that is neither bytecode nor text (a usage error: exit 2)."""


def read_text(path: Path) -> str:
    """A text file (assembler or hex), or a clear refusal for anything else."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ProgramFileError(f"{path} is not text: give assembler text, hex (.hex) or raw "
                               "bytecode (.bin, .bpf)") from None


def read_program(path: Path) -> list[Instruction]:
    """Bytecode by suffix (.bin/.bpf raw bytes, .hex hex text); other text is hex if it
    reads as hex, else assembler text - what ``asm`` writes and reads, every command takes."""
    if path.suffix in BYTECODE_SUFFIXES:
        return decode(path.read_bytes())
    text = read_text(path)
    if path.suffix in HEX_SUFFIXES:
        return decode(parse_hex(text, "program"))
    try:
        data = parse_hex(text, "program")
    except PluginInputError:
        return assemble(text)
    return decode(data)


def assemble_file(source: Path, output: Path) -> int:
    data = encode(assemble(read_text(source)))
    write_atomic(output, data)
    return len(data)


def listing_text(insns: list[Instruction], *, raw: bool) -> str:
    return listing(insns, raw=raw)


def instructions_json(insns: list[Instruction]) -> list[dict[str, Any]]:
    out = []
    slot = 0
    for insn in insns:
        out.append({"slot": slot, "text": str(insn),
                    "words": [f"{word:#018x}" for word in encode_words([insn])]})
        slot += insn.width
    return out


def run_program(insns: list[Instruction], memory_hex: str) -> dict[str, Any]:
    memory = parse_hex(memory_hex, "input memory")
    result, after = run_on_memory(Interpreter(insns, CONFORMANCE_HELPERS), memory)
    return {"r0": result.r0, "steps": result.steps, "memory": after.hex()}
