"""Nanoseconds per packet for every fixture program: host kernel, reference and fast engines.

Each program is installed on the three backends with the maps the differential tests use
(service/fixture_traffic.py) and fed one representative frame. The kernel's
figure is BPF_PROG_TEST_RUN's own mean over ``--kernel-repeat`` runs in one syscall (so it
excludes the syscall); the engines' is wall time over ``--engine-runs`` calls of
``Backend.run_xdp`` (so it includes setting up the frame and context, as a device pays per
packet). All three are measured in one process, one program after the other.

The kernel does not restore the frame between the runs of one BPF_PROG_TEST_RUN: a program
that rewrites, moves or trims the frame (the load balancer's new destination, the tunnel's
pushed or stripped header, the trimmed tail) sees its own output on the next run and may take
another path. Such rows are marked
``*``: their kernel figure is the mean over that sequence, not over the first path alone. The
engines always start from the original frame.

    .venv/bin/python bench/xdp_packets.py [--markdown] [--engine-runs N] [--kernel-repeat N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from offload.backends.install import install, new_backend  # noqa: E402
from offload.backends.kernel import KernelBackend, kernel_available  # noqa: E402
from offload.loader import load_object  # noqa: E402
from service.fixture_traffic import FRAMES, populate  # noqa: E402

XDP_OBJECTS = sorted((ROOT / "fixtures" / "xdp").glob("*.o"))

#: The frame each program is measured on: one that takes its main path.
FRAME_FOR = {
    "xdp_firewall": "tcp-blocked", "xdp_prefix_filter": "tcp-allowed",
    "xdp_load_balancer": "tcp-vip", "xdp_ipip_encap": "to-tunnel",
    "xdp_ipip_decap": "ipip-local", "xdp_trim_tail": "big-udp",
    "xdp_redirect_by_mac": "to-port-mac", "xdp_dispatch": "udp-blocked-port",
    "xdp_handle_udp": "udp-blocked-port", "xdp_handle_icmp": "icmp",
    "xdp_ipv6_exthdrs": "ipv6-ext", "xdp_configured_filter": "tcp-telnet",
    "xdp_tenant_filter": "tcp-blocked", "xdp_flow_mark": "tcp-ack",
}


@dataclass(frozen=True)
class Row:
    object: str
    program: str
    frame: str
    kernel_ns: float
    reference_ns: float
    fast_ns: float
    actions: tuple[int, int, int]  # first run on each: kernel, reference, fast
    rewrites: bool  # the program changed the frame, so repeated kernel runs saw another one

    @property
    def note(self) -> str:
        """Rows whose repeated kernel runs started from a changed frame (module docstring)."""
        return "*" if self.rewrites else ""


def engine_ns(kind: str, path: Path, program: str, frame: bytes, runs: int) -> tuple[float, int]:
    """Median of five rounds of ``runs`` packets, in ns per packet; and the action."""
    backend = new_backend(kind)
    obj = install(backend, path)
    populate(obj)
    handle = obj.programs[program]
    action = backend.run_xdp(handle, frame).retval  # warm up (the fast engine compiles once)
    rounds = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(runs):
            backend.run_xdp(handle, frame)
        rounds.append((time.perf_counter_ns() - start) / runs)
    return statistics.median(rounds), action


def kernel_ns(path: Path, program: str, frame: bytes, repeat: int) -> tuple[float, int, bool]:
    """Median of five BPF_PROG_TEST_RUN calls of ``repeat`` runs, in ns per packet; the
    action of one single run, and whether that run changed the frame."""
    with KernelBackend() as backend:
        obj = install(backend, path)
        populate(obj)
        handle = obj.programs[program]
        first = backend.test_run(handle, frame)
        results = [backend.test_run(handle, frame, repeat=repeat) for _ in range(5)]
    changed = first.data != frame or bool(first.meta)
    return statistics.median(r.duration_ns for r in results), first.retval, changed


def measure(engine_runs: int, kernel_repeat: int) -> list[Row]:
    rows = []
    for path in XDP_OBJECTS:
        for program in load_object(path).programs:
            name = FRAME_FOR.get(program, "tcp-allowed")
            frame = FRAMES[name]
            k, k_action, rewrites = kernel_ns(path, program, frame, kernel_repeat)
            r, r_action = engine_ns("builtin-reference", path, program, frame, engine_runs)
            f, f_action = engine_ns("builtin-fast", path, program, frame, engine_runs)
            rows.append(Row(path.stem, program, name, k, r, f, (k_action, r_action, f_action),
                            rewrites))
    return rows


def table(rows: list[Row]) -> Table:
    out = Table(title="XDP: ns per packet (lower is better)")
    for column in ("object", "program", "frame", "kernel", "reference", "fast",
                   "reference/kernel", "fast/kernel", "reference/fast"):
        out.add_column(column, justify="left" if column in ("object", "program", "frame")
                       else "right")
    for row in rows:
        out.add_row(row.object, row.program, row.frame, f"{row.kernel_ns:,.0f}{row.note}",
                    f"{row.reference_ns:,.0f}", f"{row.fast_ns:,.0f}",
                    f"{row.reference_ns / row.kernel_ns:,.0f}x",
                    f"{row.fast_ns / row.kernel_ns:,.0f}x",
                    f"{row.reference_ns / row.fast_ns:,.1f}x")
    return out


def markdown(rows: list[Row]) -> str:
    lines = ["| object | program | frame | kernel ns | reference ns | fast ns | reference/kernel "
             "| fast/kernel | reference/fast |", "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for row in rows:
        lines.append(f"| {row.object} | {row.program} | {row.frame} | "
                     f"{row.kernel_ns:,.0f}{row.note} | "
                     f"{row.reference_ns:,.0f} | {row.fast_ns:,.0f} | "
                     f"{row.reference_ns / row.kernel_ns:,.0f}x | "
                     f"{row.fast_ns / row.kernel_ns:,.0f}x | "
                     f"{row.reference_ns / row.fast_ns:,.1f}x |")
    geo = statistics.geometric_mean
    lines.append(f"| **geometric mean** | | | {geo([r.kernel_ns for r in rows]):,.0f} | "
                 f"{geo([r.reference_ns for r in rows]):,.0f} | "
                 f"{geo([r.fast_ns for r in rows]):,.0f} | "
                 f"{geo([r.reference_ns / r.kernel_ns for r in rows]):,.0f}x | "
                 f"{geo([r.fast_ns / r.kernel_ns for r in rows]):,.0f}x | "
                 f"{geo([r.reference_ns / r.fast_ns for r in rows]):,.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine-runs", type=int, default=200,
                        help="packets per timing round on each built-in engine")
    parser.add_argument("--kernel-repeat", type=int, default=100_000,
                        help="BPF_PROG_TEST_RUN repeat count per timing round")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    usable, reason = kernel_available()
    if not usable:
        print(f"cannot benchmark against the host kernel: {reason}", file=sys.stderr)
        return 2
    rows = measure(args.engine_runs, args.kernel_repeat)
    console = Console()
    console.print(f"{platform.node()}: Linux {platform.release()} ({platform.machine()}), "
                  f"Python {platform.python_version()}")
    console.print(table(rows))
    mismatched = sorted({r.program for r in rows if len(set(r.actions)) != 1})
    if mismatched:
        console.print(f"first-run actions differ between backends for: {', '.join(mismatched)}")
    if any(r.note for r in rows):
        console.print("* the kernel's repeated runs saw the frame as the previous run left it")
    if args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
