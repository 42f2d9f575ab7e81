"""The eBPF conformance suites' case format, and the judge of the reference engine against it.

Sections start with ``-- NAME``; ``asm`` (or ``asm @ FILE``) holds assembler text, ``raw``
64-bit words, ``mem`` (or ``mem @ FILE``) hex input bytes, ``result`` the expected r0,
``error``/``error pattern`` an expected refusal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..engine import Interpreter
from ..engine.harness import run_on_memory
from ..errors import OffloadError
from ..isa import Instruction, assemble, decode, encode_words, words_to_bytes
from .helpers import CONFORMANCE_HELPERS

REPO = Path(__file__).resolve().parents[2]


def conformance_root(explicit: str | Path | None = None) -> Path | None:
    """Where the suites live: the given directory, $OFFLOAD_CONFORMANCE_DIR, or the copy the
    source tree carries in tests/conformance_data (an installed package has none)."""
    candidates = [explicit, os.environ.get("OFFLOAD_CONFORMANCE_DIR"),
                  REPO / "tests" / "conformance_data"]
    for candidate in candidates:
        if candidate and Path(candidate, "bpf_conformance", "tests").is_dir():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class ConformanceCase:
    path: Path
    asm: str | None
    raw: list[int] | None
    memory: bytes
    result: int | None
    error: str | None

    @property
    def name(self) -> str:
        """The path below the suites' root, e.g. ``ubpf/tests/errors/err-jmp-out.data``."""
        parts = self.path.parts
        for anchor in ("bpf_conformance", "ubpf"):
            if anchor in parts:
                return "/".join(parts[parts.index(anchor):])
        return self.path.name


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0]


def _hex_line(line: str) -> str:
    """One line of hex bytes; a tcpdump-style ``0x0010:`` offset prefix is dropped."""
    line = _strip_comment(line).strip()
    if line.startswith("0x") and ":" in line:
        line = line.split(":", 1)[1]
    return line


def parse_case(path: Path) -> ConformanceCase:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("-- "):
            current = line[3:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    asm = raw = None
    memory = b""
    result = error = None
    for key, lines in sections.items():
        head, _, ref = key.partition("@")
        head, ref = head.strip(), ref.strip()
        body = (path.parent / ref).read_text() if ref else "\n".join(lines)
        if head == "asm":
            asm = body
        elif head == "raw":
            raw = [int(word, 16) for line in body.splitlines()
                   for word in _strip_comment(line).split()]
        elif head == "mem":
            memory = bytes.fromhex("".join(_hex_line(line) for line in body.splitlines()))
        elif head == "result":
            words = [w for line in body.splitlines() for w in _strip_comment(line).split()]
            result = int(words[0], 16) if words else None
        elif head in ("error", "error pattern"):
            error = body.strip() or "error"
    return ConformanceCase(path, asm, raw, memory, result, error)


def all_cases(root: Path | None = None) -> list[Path]:
    root = root or conformance_root()
    if root is None:
        return []
    files = sorted((root / "bpf_conformance" / "tests").glob("*.data"))
    files += sorted((root / "ubpf" / "tests").rglob("*.data"))
    return files


#: Cases where this engine deliberately differs from a suite, with the reason (README.md
#: lists the same table).
EXCEPTIONS = {
    "ubpf/tests/errors/err-unknown-opcode.data":
        "0x06 is gotol (JMP32 | JA), defined by ISA v4 (RFC 9669) and exercised by "
        "bpf_conformance's ja32 tests; uBPF predates it",
    "ubpf/tests/errors/err-too-many-instructions.data":
        "the program size limit is the kernel's 1,000,000 slots, not uBPF's 65,536",
    "ubpf/tests/reload.data":
        "tests uBPF's VM object API (loading code twice into one VM), which has no "
        "counterpart here",
}


def case_program(case: ConformanceCase) -> list[Instruction]:
    if case.asm is not None:
        return assemble(case.asm)
    return decode(words_to_bytes(case.raw or []))


def outcome(case: ConformanceCase) -> tuple[str, int | str]:
    """("result", r0) when the program runs to its end, ("error", message) when refused."""
    try:
        program = Interpreter(case_program(case), CONFORMANCE_HELPERS)
        result, _ = run_on_memory(program, case.memory)
    except OffloadError as err:
        return "error", str(err)
    return "result", result.r0


@dataclass(frozen=True)
class Verdict:
    case: ConformanceCase
    status: str  # "pass", "fail" or "exception"
    detail: str


def judge(case: ConformanceCase) -> Verdict:
    """Compare the engine (and for assembler-only cases, the assembler) with the suite."""
    if case.name in EXCEPTIONS:
        return Verdict(case, "exception", EXCEPTIONS[case.name])
    if case.result is None and case.error is None:
        try:
            words = encode_words(assemble(case.asm or ""))
        except OffloadError as err:
            return Verdict(case, "fail", f"does not assemble: {err}")
        if words != case.raw:
            return Verdict(case, "fail", "assembles to different words")
        return Verdict(case, "pass", "assembles to the given words")
    kind, value = outcome(case)
    if case.error is not None:
        if kind == "error":
            return Verdict(case, "pass", f"refused: {value}")
        return Verdict(case, "fail", f"expected a refusal ({case.error}), got r0={value:#x}")
    if kind == "error":
        return Verdict(case, "fail", f"expected r0={case.result:#x}, got: {value}")
    if value != case.result:
        return Verdict(case, "fail", f"r0={value:#x}, expected {case.result:#x}")
    return Verdict(case, "pass", f"r0={value:#x}")
