"""Save and restore of a large hash map: time, peak memory, bytes on disk per entry.

A device holds one HASH map (8-byte keys, 16-byte values) with ``--entries`` elements. Save:
checkpoint streamed straight into a sealed file (plain, then signed and encrypted). Load: the
file verified and decoded. Restore: the decoded snapshot recreated on a second device through
its guest driver and control queue (batched updates, as a migration does). Peak memory is
Python's allocation peak (tracemalloc) during each step.

    .venv/bin/python bench/snapshots.py [--entries N] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from migrate.checkpoint import checkpoint  # noqa: E402
from migrate.restore import restore  # noqa: E402
from migrate.seal import Seal, Trust  # noqa: E402
from migrate.store import load, save  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.device import build_device  # noqa: E402
from offload.maps.spec import MapSpec  # noqa: E402
from offload.uapi import MapType  # noqa: E402


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    peak_mib: float
    entries: int
    file_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


def _measure(name: str, entries: int, action) -> tuple[Step, object]:  # noqa: ANN001
    tracemalloc.start()
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Step(name, seconds, peak / 2**20, entries), result


def source_device(entries: int):  # noqa: ANN201
    pair = build_device("source", load_profile("full"))
    handle = pair.driver.map_create(MapSpec("flows", MapType.HASH, 8, 16, entries))
    live = pair.device.backend.map(handle)
    live.import_entries((n.to_bytes(8, "little"), (n * 3).to_bytes(16, "little"))
                        for n in range(entries))
    return pair


def measure(entries: int) -> list[Step]:
    steps = []
    source = source_device(entries)
    with tempfile.TemporaryDirectory() as folder:
        sign = Ed25519PrivateKey.generate()
        key = os.urandom(32)
        for label, seal, trust in (
                ("plain", Seal(), Trust()),
                ("signed+encrypted", Seal(signing_key=sign, encryption_key=key),
                 Trust(trusted_keys=(sign.public_key(),), decryption_key=key))):
            path = Path(folder, f"{label}.snap")
            step, _ = _measure(f"save ({label})", entries,
                               lambda: save(path, checkpoint(source.device, stream=True), seal))
            steps.append(Step(step.name, step.seconds, step.peak_mib, entries,
                              os.path.getsize(path)))
            step, (snapshot, _) = _measure(f"load ({label})", entries,
                                           lambda: load(path, trust))
            steps.append(step)
        target = build_device("target", load_profile("full"))
        step, _ = _measure("restore through the driver", entries,
                           lambda: restore(snapshot, target.driver))
        steps.append(step)
    return steps


def table(steps: list[Step]) -> Table:
    out = Table(title="snapshot of one HASH map (8-byte keys, 16-byte values)")
    for column in ("step", "entries", "seconds", "entries/s", "peak MiB", "bytes/entry"):
        out.add_column(column, justify="left" if column == "step" else "right")
    for s in steps:
        per = f"{s.file_bytes / s.entries:.2f}" if s.file_bytes else ""
        out.add_row(s.name, f"{s.entries:,}", f"{s.seconds:.2f}", f"{s.rate:,.0f}",
                    f"{s.peak_mib:.1f}", per)
    return out


def markdown(steps: list[Step]) -> str:
    lines = ["| step | entries | seconds | entries/s | peak MiB | bytes/entry |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for s in steps:
        per = f"{s.file_bytes / s.entries:.2f}" if s.file_bytes else ""
        lines.append(f"| {s.name} | {s.entries:,} | {s.seconds:.2f} | {s.rate:,.0f} | "
                     f"{s.peak_mib:.1f} | {per} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    steps = measure(args.entries)
    if args.markdown:
        print(markdown(steps))
    else:
        Console().print(table(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
