"""Verifier speed: instructions processed per second on every fixture program and on counted
loops, as the kernel reports ``processed N insns``.

    .venv/bin/python bench/verifier.py [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from offload.caps import load_profile  # noqa: E402
from offload.isa import assemble  # noqa: E402
from offload.loader import load_object  # noqa: E402
from offload.program import resolve_map_references  # noqa: E402
from offload.uapi import ProgType  # noqa: E402
from offload.verifier import verify  # noqa: E402

FIXTURES = ROOT / "fixtures" / "xdp"
LOOP = """
    mov %r1, 0
    mov %r0, 0
loop:
    add %r0, %r1
    add %r1, 1
    jlt %r1, {n}, loop
    mov %r0, 2
    exit
"""


@dataclass(frozen=True)
class Row:
    program: str
    slots: int
    processed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0


def _time(insns, maps) -> tuple[int, float]:
    caps = load_profile("full")
    best = None
    processed = 0
    for _ in range(3):
        start = time.perf_counter()
        stats = verify(insns, prog_type=ProgType.XDP, caps=caps, maps=maps)
        elapsed = time.perf_counter() - start
        processed = stats.insns_processed
        best = elapsed if best is None else min(best, elapsed)
    return processed, best or 0.0


def measure() -> list[Row]:
    rows = []
    for path in sorted(FIXTURES.glob("*.o")):
        obj = load_object(path)
        handles = {name: number + 1 for number, name in enumerate(obj.maps)}
        specs = {handles[name]: spec for name, spec in obj.maps.items()}
        for name, program in obj.programs.items():
            insns = resolve_map_references(program.instructions, program.map_refs, handles)
            processed, seconds = _time(insns, specs)
            rows.append(Row(f"{path.stem}:{name}", len(insns), processed, seconds))
    for n in (1_000, 10_000):
        insns = assemble(LOOP.format(n=n))
        processed, seconds = _time(insns, {})
        rows.append(Row(f"counted loop x{n}", len(insns), processed, seconds))
    return rows


def table(rows: list[Row]) -> Table:
    out = Table(title="verifier: instructions processed per second")
    for column in ("program", "insns", "processed", "ms", "processed/s"):
        out.add_column(column, justify="left" if column == "program" else "right")
    for row in rows:
        out.add_row(row.program, str(row.slots), f"{row.processed:,}",
                    f"{row.seconds * 1e3:.1f}", f"{row.rate:,.0f}")
    return out


def markdown(rows: list[Row]) -> str:
    lines = ["| program | insns | processed | ms | processed/s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r.program} | {r.slots} | {r.processed:,} | {r.seconds * 1e3:.1f} | "
              f"{r.rate:,.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = measure()
    if args.markdown:
        print(markdown(rows))
    else:
        Console().print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
