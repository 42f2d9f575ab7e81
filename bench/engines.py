"""eBPF instructions per second: the reference interpreter, the fast engine and the kernel.

The same XDP programs run everywhere: loops of ALU work, of branches, a call-heavy loop, and
a memory loop over the stack, each iterating ``--iterations`` times (bounded so the kernel's
verifier accepts them). The engines run them through ``Interpreter.execute`` (which counts
instructions exactly); the fast engine gets the verifier's facts, as on a device; the kernel
runs them through BPF_PROG_TEST_RUN with ``repeat``, its duration divided by the same
instruction count. One process, one run, ratios side by side.

    .venv/bin/python bench/engines.py [--iterations N] [--markdown]
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
from offload.engine import Interpreter, Memory  # noqa: E402
from offload.engine.fast import FastInterpreter  # noqa: E402
from offload.isa import Instruction, assemble  # noqa: E402
from offload.verifier import verify  # noqa: E402

WORKLOADS = {
    "alu loop": """
        mov %r0, 0
        mov %r1, 0
    loop:
        add %r0, %r1
        xor %r0, 0x55
        lsh %r0, 3
        rsh %r0, 1
        mul %r0, 3
        and %r0, 0xffffff
        add %r1, 1
        jlt %r1, {n}, loop
        mov %r0, 2
        exit
    """,
    "branch loop": """
        mov %r0, 0
        mov %r1, 0
    loop:
        mov %r2, %r1
        and %r2, 3
        jeq %r2, 0, zero
        jeq %r2, 1, one
        add %r0, 2
        ja next
    zero:
        add %r0, 5
        ja next
    one:
        sub %r0, 1
    next:
        add %r1, 1
        jlt %r1, {n}, loop
        mov %r0, 2
        exit
    """,
    "call loop": """
        mov %r6, 0
        mov %r7, 0
    loop:
        mov %r1, %r6
        call local square
        add %r7, %r0
        add %r6, 1
        jlt %r6, {n}, loop
        mov %r0, 2
        exit
    square:
        mov %r0, %r1
        mul %r0, %r1
        exit
    """,
    "stack loop": """
        mov %r1, 0
        stdw [%r10-8], 0
    loop:
        ldxdw %r2, [%r10-8]
        add %r2, %r1
        stxdw [%r10-8], %r2
        stxw [%r10-16], %r1
        ldxw %r3, [%r10-16]
        add %r1, 1
        jlt %r1, {n}, loop
        mov %r0, 2
        exit
    """,
}


@dataclass(frozen=True)
class Row:
    workload: str
    insns: int
    reference: float  # instructions per second
    fast: float
    kernel: float | None


def engine_rate(cls: type[Interpreter], insns: list[Instruction], rounds: int,
                **options: object) -> tuple[float, int]:
    program = cls(insns, **options)
    best = 0.0
    steps = 0
    for _ in range(rounds):
        start = time.perf_counter()
        result = program.execute(Memory())
        elapsed = time.perf_counter() - start
        steps = result.steps
        best = max(best, steps / elapsed)
    return best, steps


def kernel_rate(insns: list[Instruction], steps: int, repeat: int) -> float | None:
    try:
        from offload.backends.kernel import kernel_available, load_program, run_xdp
    except ImportError:
        return None
    ok, _ = kernel_available()
    if not ok:
        return None
    program = load_program(insns, name="bench")
    try:
        result = run_xdp(program, bytes(64), repeat=repeat)
    finally:
        program.close()
    return steps / (result.duration_ns / 1e9) if result.duration_ns else None


def measure(iterations: int, rounds: int = 3) -> list[Row]:
    rows = []
    for name, text in WORKLOADS.items():
        insns = assemble(text.format(n=iterations))
        reference, steps = engine_rate(Interpreter, insns, rounds)
        facts = verify(insns, caps=load_profile("full")).engine_facts()
        fast, _ = engine_rate(FastInterpreter, insns, rounds, facts=facts)
        kernel = kernel_rate(insns, steps, repeat=50)
        rows.append(Row(name, steps, reference, fast, kernel))
    return rows


def table(rows: list[Row]) -> Table:
    out = Table(title="eBPF instructions per second (higher is better)")
    for column in ("workload", "insns/run", "reference", "fast", "kernel", "fast/ref",
                   "kernel/fast"):
        out.add_column(column, justify="left" if column == "workload" else "right")
    for row in rows:
        out.add_row(row.workload, f"{row.insns:,}", f"{row.reference / 1e6:.2f} M",
                    f"{row.fast / 1e6:.2f} M",
                    f"{row.kernel / 1e6:,.0f} M" if row.kernel else "n/a",
                    f"{row.fast / row.reference:.1f}x",
                    f"{row.kernel / row.fast:.0f}x" if row.kernel else "n/a")
    return out


def markdown(rows: list[Row]) -> str:
    lines = ["| workload | insns/run | reference | fast | kernel | fast/ref | kernel/fast |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        kernel = f"{row.kernel / 1e6:,.0f} M/s" if row.kernel else "n/a"
        ratio = f"{row.kernel / row.fast:.0f}x" if row.kernel else "n/a"
        lines.append(f"| {row.workload} | {row.insns:,} | {row.reference / 1e6:.2f} M/s | "
                     f"{row.fast / 1e6:.2f} M/s | {kernel} | "
                     f"{row.fast / row.reference:.1f}x | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = measure(args.iterations)
    if args.markdown:
        print(markdown(rows))
    else:
        Console().print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
