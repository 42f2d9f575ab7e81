"""Start-up of the commands: ``offload-migrate --help`` and one ``offload-bpf-plugin`` call
against a bare ``python -c "import rich.console"`` and ``python -c pass``, side by side.

Each command runs as a fresh process, the variants interleaved round by round so a busy
machine slows them alike; wall time per process, median with min-max.

    .venv/bin/python bench/startup.py [--runs N] [--before CHECKOUT]

``--before`` also runs both commands from another checkout (an older commit) in the same
rounds, for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00\n"  # r0 = 42; exit

VARIANTS: tuple[tuple[str, list[str], str], ...] = (
    ("python -c pass", ["-c", "pass"], ""),
    ('python -c "import rich.console"', ["-c", "import rich.console"], ""),
    ("offload-migrate --help", ["-c", "import sys; from cli.main import main; "
                                      "sys.exit(main(['--help']))"], ""),
    ("offload-bpf-plugin (one program)", ["-c", "import sys; from cli.bpf_plugin import main; "
                                                "sys.exit(main([]))"], PROGRAM),
)


def once(args: list[str], stdin: str, root: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(root))
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], input=stdin, text=True, env=env, cwd=root,
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(runs: int = 21, before: Path | None = None) -> dict[str, list[float]]:
    variants = [(name, args, stdin, ROOT) for name, args, stdin in VARIANTS]
    if before is not None:
        variants += [(f"{name}, before", args, stdin, before)
                     for name, args, stdin in VARIANTS[2:]]
    times: dict[str, list[float]] = {name: [] for name, _, _, _ in variants}
    for _, args, stdin, root in variants:  # warm the page cache and .pyc files
        once(args, stdin, root)
    for _ in range(runs):
        for name, args, stdin, root in variants:
            times[name].append(once(args, stdin, root))
    return times


def markdown(times: dict[str, list[float]]) -> str:
    base = statistics.median(times['python -c "import rich.console"'])
    lines = ["| process | median ms | min-max ms | x `import rich.console` |",
             "| --- | ---: | ---: | ---: |"]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| `{name}` | {median * 1000:.0f} | {min(values) * 1000:.0f}-"
                     f"{max(values) * 1000:.0f} | {median / base:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--before", type=Path, metavar="CHECKOUT")
    args = parser.parse_args()
    print(markdown(measure(args.runs, args.before)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
