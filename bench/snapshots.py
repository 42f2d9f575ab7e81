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

Daemon memory is RSS (``VmRSS``) before and after the restore, read from /proc; "before" is
after the daemon restored an empty snapshot, so what it loads on first use (the restore's own
code) is not counted as memory of the entries. No profiler or allocation tracer runs while
anything is timed. Beside wall time, the CLI steps
and the floor report CPU seconds (``cpu``: the client process's user and system time, plus,
for the CLI steps, the daemon's over the command, from /proc): on a shared machine they move
less than wall time. ``--before CHECKOUT`` runs the CLI steps and the floor from that checkout
too (its own daemon and client), alternating with this tree's in every round, as rows
``before``.

    .venv/bin/python bench/snapshots.py [--sizes 10000,100000,1000000] [--runs 5] [--slow]
                                        [--markdown] [--no-cli] [--before CHECKOUT]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
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


def _env(root: Path = ROOT) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(root))


def _cpu_of(pid: int) -> float:
    """A running process's user and system CPU seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], root: Path, daemon: int | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one process (and of ``daemon`` meanwhile)."""
    cpu = _children_cpu() + (_cpu_of(daemon) if daemon else 0.0)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=root, env=_env(root), check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, _children_cpu() + (_cpu_of(daemon) if daemon else 0.0) - cpu


def _cli(*args: str, root: Path = ROOT, daemon: int | None = None) -> tuple[float, float]:
    return _run(["-m", "cli.main", *args], root, daemon)


def _daemon(sock: Path, folder: Path, memory: str, root: Path = ROOT) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "device", "serve", "--name", "B", "--profile", "full",
         "--socket", str(sock), "--state-dir", str(folder / "state"), "--memory-limit", memory],
        cwd=root, env=_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def measure(entries: int, runs: int, cli: bool,
            before: Path | None = None) -> dict[str, dict[str, list[float]]]:
    """Samples by tree ("this tree", and "before" with a checkout) and step."""
    out: dict[str, list[float]] = {}
    results = {"this tree": out}
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
        empty = folder / "empty.snap"  # a daemon's first restore, before RSS is read
        save_sealed(empty, checkpoint(build_device("empty", load_profile("full")).device), Seal())
        held.clear()
        gc.collect()
        if not cli:
            return results
        memory = f"{max(64, entries * 200 >> 20)}M"
        trees = [("this tree", ROOT)] + ([("before", before)] if before is not None else [])
        for run in range(runs):
            for tree, root in trees:  # alternating, so both see the same machine
                samples = results.setdefault(tree, {})
                sock = folder / f"b{run}.sock"
                daemon = _daemon(sock, folder, memory, root)
                try:
                    _cli("restore", str(empty), "--device", str(sock), root=root)
                    rss_before = rss_mib(daemon.pid)
                    restore_wall, restore_cpu = _cli("restore", str(sealed), "--device",
                                                     str(sock), root=root, daemon=daemon.pid)
                    rss_after = rss_mib(daemon.pid)
                    save_wall, save_cpu = _cli("save", "--device", str(sock), "-o",
                                               str(folder / "out.snap"), root=root,
                                               daemon=daemon.pid)
                finally:
                    daemon.send_signal(signal.SIGTERM)
                    daemon.wait(timeout=30)
                floor_wall, floor_cpu = _run(["-c", FLOOR, str(sealed)], root)
                for step, value in (("cli restore", restore_wall), ("cli save", save_wall),
                                    ("cli restore cpu", restore_cpu),
                                    ("cli save cpu", save_cpu),
                                    ("daemon RSS growth MiB", rss_after - rss_before),
                                    ("daemon RSS bytes/entry",
                                     (rss_after - rss_before) * 2**20 / max(entries, 1)),
                                    ("floor", floor_wall), ("floor cpu", floor_cpu)):
                    samples.setdefault(step, []).append(value)
    return results


def _ratio(out: dict[str, list[float]], step: str, floor: str) -> str:
    if step not in out or floor not in out:
        return ""
    return f"{statistics.median(out[step]) / statistics.median(out[floor]):.1f}x"


def report(results: dict[int, dict[str, dict[str, list[float]]]], markdown: bool) -> str:
    steps = ["device save", "device restore", "cli save", "cli restore", "floor",
             "cli save cpu", "cli restore cpu", "floor cpu",
             "daemon RSS growth MiB", "daemon RSS bytes/entry"]
    lines = []
    header = ["tree", "entries", *steps, "save x floor", "restore x floor",
              "save x floor (cpu)", "restore x floor (cpu)"]
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join(["---:"] * len(header)) + " |")
    for entries, trees in results.items():
        for tree, out in trees.items():
            row = [tree, f"{entries:,}"] + [spread(out[s]) if s in out else "" for s in steps]
            row += [_ratio(out, "cli save", "floor"), _ratio(out, "cli restore", "floor"),
                    _ratio(out, "cli save cpu", "floor cpu"),
                    _ratio(out, "cli restore cpu", "floor cpu")]
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
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="also run the CLI steps and the floor from this checkout, "
                             "alternating with this tree's")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.slow:
        sizes.append(10_000_000)
    results = {n: measure(n, args.runs, not args.no_cli, args.before) for n in sizes}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; median (min-max) of {args.runs} runs, seconds")
    print(report(results, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
