"""Save and restore of one HASH map (8-byte keys, 16-byte values): time, RSS, the floor.

For each size (10k, 100k, 1M entries; 10M with ``--slow``), every step is run ``--runs``
times and reported as the median with the min-max spread:

* ``device save`` / ``device restore`` - in one process: the checkpoint streamed into a
  snapshot file, and the file read and restored onto a fresh device through its guest
  driver and control queue (the device-side path alone);
* ``cli restore`` / ``cli save`` - the ``offload-migrate`` command against a device daemon
  (a fresh daemon per run): the whole user-visible path, process start-up included;
* ``floor`` - a process that only reads the snapshot file, hashes it (SHA-256) and
  msgpack-packs its bytes in the RPC's 1 MiB pieces: what any save or restore must at
  least do. ``x floor`` is the CLI step over it.

Daemon memory is RSS (``VmRSS``) after start-up and after the restore, read from /proc; no
profiler or allocation tracer runs while anything is timed.

    .venv/bin/python bench/snapshots.py [--sizes 10000,100000,1000000] [--runs 5] [--slow]
                                        [--markdown] [--no-cli]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.checkpoint import checkpoint  # noqa: E402
from migrate.codec import read_snapshot, write_snapshot  # noqa: E402
from migrate.restore import restore  # noqa: E402
from migrate.seal import Seal  # noqa: E402
from migrate.store import save as save_sealed  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.device import build_device  # noqa: E402

try:
    from offload.maps.base import Chunk  # noqa: E402
except ImportError:  # a tree from before packed chunks, for comparison
    Chunk = None  # type: ignore[assignment,misc]
from offload.maps.spec import MapSpec  # noqa: E402
from offload.uapi import MapType  # noqa: E402

FLOOR = """
import hashlib, sys, msgpack
data = open(sys.argv[1], "rb").read()
digest = hashlib.sha256(data).digest()
view = memoryview(data)
packed = [msgpack.packb({"data": bytes(view[i:i + (1 << 20)])}) for i in range(0, len(data), 1 << 20)]
"""


def fill(live, entries: int) -> None:  # noqa: ANN001
    """``entries`` keys 0..n-1 with 16-byte values (n*3, 0), imported chunk by chunk."""
    if not hasattr(live, "import_chunk"):  # a tree from before packed chunks, for comparison
        live.import_entries((n.to_bytes(8, "little"), (n * 3).to_bytes(16, "little"))
                            for n in range(entries))
        return
    for first in range(0, entries, 65536):
        n = min(65536, entries - first)
        keys = array("Q", range(first, first + n))
        values = array("Q", bytes(16 * n))
        values[0::2] = array("Q", range(3 * first, 3 * (first + n), 3))
        live.import_chunk(Chunk(n, keys.tobytes(), values.tobytes()))


def source_device(entries: int):  # noqa: ANN201
    pair = build_device("source", load_profile("full"))
    handle = pair.driver.map_create(MapSpec("flows", MapType.HASH, 8, 16, entries))
    fill(pair.device.backend.map(handle), entries)
    return pair


def timed(action) -> float:  # noqa: ANN001
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _daemon(sock: Path, folder: Path, memory: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "device", "serve", "--name", "B", "--profile", "full",
         "--socket", str(sock), "--state-dir", str(folder / "state"), "--memory-limit", memory],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock))
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the daemon did not start")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def measure(entries: int, runs: int, cli: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    held = {"source": source_device(entries)}  # dropped before the daemons run
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = folder / "a.snap"

        def save() -> None:
            with open(path, "wb") as file:
                write_snapshot(file, checkpoint(held["source"].device, stream=True))

        def device_restore() -> None:
            target = build_device("target", load_profile("full"))
            with open(path, "rb") as file:
                restore(read_snapshot(file), target.driver)

        for _ in range(runs):
            out.setdefault("device save", []).append(timed(save))
            out.setdefault("device restore", []).append(timed(device_restore))
        sealed = folder / "sealed.snap"
        save_sealed(sealed, checkpoint(held["source"].device, stream=True), Seal())
        held.clear()
        gc.collect()
        if not cli:
            return out
        memory = f"{max(64, entries * 200 >> 20)}M"
        for run in range(runs):
            sock = folder / f"b{run}.sock"
            daemon = _daemon(sock, folder, memory)
            try:
                before = rss_mib(daemon.pid)
                restore_plain = _cli("restore", str(sealed), "--device", str(sock))
                after = rss_mib(daemon.pid)
                save_time = _cli("save", "--device", str(sock), "-o", str(folder / "out.snap"))
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
            out.setdefault("cli restore", []).append(restore_plain)
            out.setdefault("cli save", []).append(save_time)
            out.setdefault("daemon RSS growth MiB", []).append(after - before)
            out.setdefault("daemon RSS bytes/entry", []).append(
                (after - before) * 2**20 / max(entries, 1))
            out.setdefault("floor", []).append(timed(lambda: subprocess.run(
                [sys.executable, "-c", FLOOR, str(sealed)], check=True)))
    return out


def report(results: dict[int, dict[str, list[float]]], markdown: bool) -> str:
    steps = ["device save", "device restore", "cli save", "cli restore", "floor",
             "daemon RSS growth MiB", "daemon RSS bytes/entry"]
    lines = []
    header = ["entries", *steps, "save x floor", "restore x floor"]
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join(["---:"] * len(header)) + " |")
    for entries, out in results.items():
        row = [f"{entries:,}"] + [spread(out[s]) if s in out else "" for s in steps]
        if "floor" in out:
            floor = statistics.median(out["floor"])
            row += [f"{statistics.median(out['cli save']) / floor:.1f}x",
                    f"{statistics.median(out['cli restore']) / floor:.1f}x"]
        else:
            row += ["", ""]
        lines.append("| " + " | ".join(row) + " |" if markdown else "  ".join(row))
    if not markdown:
        lines.insert(0, "  ".join(header))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slow", action="store_true", help="add 10,000,000 entries")
    parser.add_argument("--no-cli", action="store_true", help="the device path only")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.slow:
        sizes.append(10_000_000)
    results = {n: measure(n, args.runs, not args.no_cli) for n in sizes}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; median (min-max) of {args.runs} runs, seconds")
    print(report(results, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
