"""``save`` and ``restore`` through a device daemon, as an operator runs them, against the
floor: what any client of such a file must at least spend.

For each size, a HASH map of N entries (8-byte keys, 16-byte values) sealed into a file
with the Python API; then, per round, a fresh ``device serve`` daemon, and side by side:

- restore: ``offload-migrate restore FILE --device SOCK`` (the map recreated on the daemon's
  device through its guest driver),
- save: ``offload-migrate save --device SOCK -o OUT`` (checkpoint, transfer, seal),
- floor: a Python process that imports msgpack and cryptography, reads the saved file and
  takes its SHA-256, and packs and unpacks its bytes as one msgpack blob.

Wall time of each client process; RSS as the peak resident set of the client process (GNU
time's %M), the daemon's peak resident set over the command (VmHWM, reset before each), and
how far that peak rose above the daemon's resident set before the command (VmRSS): what the
command cost the daemon at its worst. With ``--before``, the daemon and the clients of each
round run from that checkout too. Medians over the rounds, with min-max.

    .venv/bin/python bench/snapshot_daemon.py [--sizes 10000,100000,1000000] [--runs 5]
                                              [--before CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate import store  # noqa: E402
from migrate.entries import EntryChunk, MapEntries  # noqa: E402
from migrate.snapshot import MapState, Snapshot  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.maps.spec import MapSpec  # noqa: E402
from offload.uapi import MapType  # noqa: E402

TIME = "/usr/bin/time"  # GNU time, for the peak RSS of each client process
FLOOR = """
import hashlib, sys
import msgpack
import cryptography.hazmat.primitives.asymmetric.ed25519
import cryptography.hazmat.primitives.ciphers
with open(sys.argv[1], "rb") as f:
    data = f.read()
hashlib.sha256(data).digest()
msgpack.unpackb(msgpack.packb(data, use_bin_type=True))
"""


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    client_mib: list[float] = field(default_factory=list)
    daemon_mib: list[float] = field(default_factory=list)
    growth_mib: list[float] = field(default_factory=list)


def snapshot_file(path: Path, entries: int) -> None:
    keys = b"".join(n.to_bytes(8, "little") for n in range(entries))
    values = b"".join((n * 3).to_bytes(16, "little") for n in range(entries))
    spec = MapSpec("flows", MapType.HASH, 8, 16, entries)
    snap = Snapshot("bench", load_profile("full"), 0, created_ns=time.time_ns(),
                    maps=(MapState(spec, MapEntries(8, 16, 1, (EntryChunk(entries, keys,
                                                                          values),))),))
    store.save(path, snap)


def env(root: Path = ROOT) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(root), COLUMNS="100")


def run(args: list[str], root: Path = ROOT) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one client process. The RSS comes from
    /usr/bin/time: a child's ru_maxrss as this process would read it also counts the memory
    of the process it was forked from, this benchmark's."""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        result = subprocess.run([TIME, "-f", "%M", "-o", rss.name, sys.executable, *args],
                                cwd=root, env=env(root), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if result.returncode:
            raise RuntimeError(f"{' '.join(args[:4])} failed: {result.stderr}")
        return seconds, int(rss.read().split()[-1]) / 1024


class Daemon:
    def __init__(self, folder: Path, root: Path = ROOT) -> None:
        self.socket = folder / "a.sock"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "device", "serve", "--name", "bench",
             "--profile", "full", "--socket", str(self.socket), "--memory-limit", "8G",
             "--state-dir", str(folder / "state")],
            cwd=root, env=env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.05)

    def _answers(self) -> bool:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def _status_mib(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def peak_mib(self) -> float:
        return self._status_mib("VmHWM")

    def rss_mib(self) -> float:
        return self._status_mib("VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def add(results: dict[tuple[int, str], Samples], key: tuple[int, str], seconds: float,
        rss: float, daemon: float | None = None, growth: float | None = None) -> None:
    samples = results.setdefault(key, Samples())
    samples.seconds.append(seconds)
    samples.client_mib.append(rss)
    if daemon is not None:
        samples.daemon_mib.append(daemon)
    if growth is not None:
        samples.growth_mib.append(growth)


def measure(sizes: tuple[int, ...], runs: int,
            before: Path | None = None) -> dict[tuple[int, str], Samples]:
    results: dict[tuple[int, str], Samples] = {}
    for entries in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source, saved = folder / "source.snap", folder / "saved.snap"
            snapshot_file(source, entries)
            clients = [("", ROOT)] + ([(", before", before)] if before is not None else [])
            for _ in range(runs):
                for suffix, root in clients:  # a fresh daemon each: restore needs one empty
                    daemon = Daemon(folder, root)
                    try:
                        for step, args in (
                                ("restore", ["-m", "cli.main", "restore", str(source),
                                             "--device", str(daemon.socket)]),
                                ("save", ["-m", "cli.main", "save", "--device",
                                          str(daemon.socket), "-o", str(saved)])):
                            daemon.reset_peak()
                            resident = daemon.rss_mib()
                            seconds, rss = run(args, root)
                            peak = daemon.peak_mib()
                            add(results, (entries, step + suffix), seconds, rss, peak,
                                peak - resident)
                    finally:
                        daemon.stop()
                add(results, (entries, "floor"), *run(["-c", FLOOR, str(saved)]))
    return results


def _spread(values: list[float], fmt: str) -> str:
    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
            if values else "-")


def markdown(results: dict[tuple[int, str], Samples]) -> str:
    lines = ["| entries | step | seconds | client RSS MiB | daemon peak RSS MiB | "
             "daemon peak growth MiB |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for (entries, step), s in sorted(results.items(), key=lambda kv: kv[0][0]):
        lines.append(f"| {entries:,} | {step} | {_spread(s.seconds, '.2f')} | "
                     f"{_spread(s.client_mib, '.0f')} | {_spread(s.daemon_mib, '.0f')} | "
                     f"{_spread(s.growth_mib, '.0f')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="also run the daemon, restore and save from this checkout (an older "
                             "commit), in the same rounds")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(markdown(measure(sizes, args.runs, args.before)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
