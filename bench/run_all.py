"""Every benchmark in one run on one machine, as one Markdown report (BENCHMARKS.md's tables).

Engines (instructions per second: reference, fast, kernel), the fixtures' packets (ns per
packet on the kernel and both engines, and packets per second over the whole mix), the device
path through the virtqueues (frames per second), the verifier (instructions processed per
second), snapshots (save, load and restore of a large map) and live migration (downtime and
total time under traffic).

    .venv/bin/python bench/run_all.py [--quick] [-o REPORT.md]

``--quick`` shrinks the sizes (100k-entry maps, fewer packets) for a run of a few minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    device_path,
    engines,
    live_migration,  # noqa: E402
    snapshots,
    verifier,
    xdp_packets,
)
from offload.backends.kernel import kernel_available  # noqa: E402


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except (OSError, subprocess.SubprocessError):
        model = platform.processor() or platform.machine()
    return (f"{model}, {os.cpu_count()} CPUs; {platform.system()} {platform.release()} "
            f"{platform.machine()}; Python {platform.python_version()}")


def packet_mix(rows: list[xdp_packets.Row]) -> str:
    """Packets per second over the whole fixture mix (one packet per program, in turn)."""
    def pps(values: list[float]) -> float:
        return len(values) / (sum(values) / 1e9)
    lines = ["| backend | packets/s over the mix | geometric mean ns/packet |",
             "| --- | ---: | ---: |"]
    for name, values in (("kernel", [r.kernel_ns for r in rows]),
                         ("reference", [r.reference_ns for r in rows]),
                         ("fast", [r.fast_ns for r in rows])):
        lines.append(f"| {name} | {pps(values):,.0f} | {statistics.geometric_mean(values):,.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-o", "--output", help="also write the report to this file")
    args = parser.parse_args()
    started = time.time()
    parts = [f"# Benchmark report\n\nMachine: {machine()}.\n\nCommand: "
             f"`.venv/bin/python bench/run_all.py{' --quick' if args.quick else ''}`\n"]

    parts.append("## Engines: eBPF instructions per second\n\n" +
                 engines.markdown(engines.measure(5_000 if args.quick else 20_000)))
    usable, reason = kernel_available()
    if usable:
        rows = xdp_packets.measure(100 if args.quick else 200,
                                   20_000 if args.quick else 100_000)
        parts.append("## XDP fixtures: ns per packet\n\n" + xdp_packets.markdown(rows))
        parts.append("## The fixtures' packet mix\n\n" + packet_mix(rows))
    else:
        parts.append(f"## XDP fixtures\n\nskipped: the host kernel is unavailable ({reason})")
    parts.append("## The device path: frames through the virtqueues\n\n" +
                 device_path.markdown(device_path.measure(frames=5_000 if args.quick
                                                          else 20_000)))
    parts.append("## Verifier\n\n" + verifier.markdown(verifier.measure()))
    entries = 100_000 if args.quick else 1_000_000
    parts.append(f"## Snapshots: one HASH map of {entries:,} entries (seconds, median of 3 "
                 f"(min-max); `bench/snapshots.py` adds the command and the daemon)\n\n" +
                 snapshots.report({entries: snapshots.measure(entries, 3, cli=False)},
                                  markdown=True))
    sizes = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    lines = ["| entries | total (s) | rounds | downtime (ms) | MB sent |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for size in sizes:
        result = live_migration.run(size, 2000.0, 0.02)
        lines.append(f"| {size:,} | {result['total']:.2f} | {result['rounds']} | "
                     f"{result['downtime'] * 1000:.1f} | {result['bytes'] / 1e6:.1f} |")
    parts.append("## Live migration (2,000 frames/s offered, 20 ms downtime target)\n\n" +
                 "\n".join(lines))
    parts.append(f"_Whole run: {time.time() - started:.0f} s._")
    report = "\n\n".join(parts) + "\n"
    print(report)
    if args.output:
        Path(args.output).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
