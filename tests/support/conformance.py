"""Reading the conformance suites' ``.data`` files (format: ../shared/conformance/README.md).

Sections start with ``-- NAME``; ``asm`` (or ``asm @ FILE``) holds assembler text, ``raw``
64-bit words, ``mem`` (or ``mem @ FILE``) hex input bytes, ``result`` the expected r0,
``error``/``error pattern`` an expected refusal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def conformance_root() -> Path | None:
    """Where the external suites live: $OFFLOAD_CONFORMANCE_DIR or ../shared/conformance."""
    candidates = [os.environ.get("OFFLOAD_CONFORMANCE_DIR"), REPO.parent / "shared" / "conformance"]
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
        root = conformance_root()
        return str(self.path.relative_to(root)) if root else self.path.name


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


def all_cases() -> list[Path]:
    root = conformance_root()
    if root is None:
        return []
    files = sorted((root / "bpf_conformance" / "tests").glob("*.data"))
    files += sorted((root / "ubpf" / "tests").rglob("*.data"))
    return files
