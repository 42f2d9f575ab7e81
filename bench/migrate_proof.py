"""What a proof costs a live migration: downtime and total time with and without ``prove``.

A ``full`` source device runs the ISA v4 firewall (a blocked-address map and a verdict
counter) with a sample ring of ``--samples`` frames filled by traffic that keeps flowing
through the migration; the destination, a ``smartnic`` device (the program is lowered to ISA
v3), serves on a socket pair in another thread. Runs alternate without and with the proof,
side by side; reported per mode as the median (min-max) of ``--runs``: downtime (pause to
the destination's acknowledgement), total time, and with the proof the first proof (on the
full copy, outside the downtime) and the final proof (inside the downtime), wall-clock, and
the final proof's CPU time on the destination's thread (time.thread_time: the machine's
load does not inflate it).

    .venv/bin/python bench/migrate_proof.py [--samples 16,256] [--runs 7]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.live import MigrationDestination, MigrationSource  # noqa: E402
from migrate.live.proving import Prover, builtin_scratch  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.device import build_device  # noqa: E402
from service.api import LoadParams, MapUpdateParams  # noqa: E402
from service.device_service import DeviceService  # noqa: E402
from service.frames import frame  # noqa: E402

FIXTURE = ROOT / "fixtures" / "xdp" / "xdp_firewall_v4.o"
CPU: dict[str, float] = {}


def _cpu_timed(name: str, method):  # type: ignore[no-untyped-def]
    """The destination thread's CPU time in one of the Prover's proofs."""
    def timed(self, *args):  # type: ignore[no-untyped-def]
        t0 = time.thread_time()
        try:
            return method(self, *args)
        finally:
            CPU[name] = time.thread_time() - t0
    return timed


Prover.before = _cpu_timed("proof", Prover.before)  # type: ignore[method-assign]
Prover.final = _cpu_timed("final", Prover.final)  # type: ignore[method-assign]

FRAMES = [frame(f"10.0.{i % 4}.{i}", "10.0.9.9", (6, 17)[i % 2]) for i in range(1, 64)]


def one(samples: int, prove: bool) -> dict[str, float]:
    src = DeviceService("src", "full")
    src.device.sample(samples)
    src.load(LoadParams(object=FIXTURE.read_bytes(), name="fw", attach=True))
    for i in range(0, 64, 3):
        src.map_update(MapUpdateParams(map="blocked_v4", key=bytes((10, 0, i % 4, i)),
                                       value=bytes(8)))
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            with src.lock:
                if not src.device.paused and src.device.attached is not None:
                    src.device.receive(FRAMES[n % len(FRAMES)])
                    n += 1
            time.sleep(0.0005)

    for f in FRAMES * (samples // len(FRAMES) + 1):
        src.device.receive(f)
    feeder = threading.Thread(target=traffic, daemon=True)
    feeder.start()
    dst = build_device("dst", load_profile("smartnic"))
    a, b = socket.socketpair()
    server = threading.Thread(target=lambda: MigrationDestination(
        dst, scratch=builtin_scratch(dst)).serve(b), daemon=True)
    server.start()
    try:
        report = MigrationSource(src.device, lock=src.lock, prove=prove,
                                 samples=samples).run(a)
    finally:
        stop.set()
        feeder.join()
        server.join(30)
    out = {"downtime": report.downtime or 0.0, "total": report.total_time}
    if report.proof is not None:
        out["proof"] = report.proof["seconds"]
        out["final"] = report.proof["final"]["seconds"]
        out["final_cpu"] = CPU["final"]
    return out


def show(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="16,256")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print("| sampled frames | proof | downtime ms | total ms | first proof ms (outside) | "
          "final proof ms (inside the downtime) | final proof CPU ms |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for samples in (int(s) for s in args.samples.split(",")):
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.runs):
            for prove in (False, True):  # side by side, alternating
                runs[prove].append(one(samples, prove))
        for prove in (False, True):
            got = runs[prove]
            first = show([r["proof"] for r in got]) if prove else "-"
            final = show([r["final"] for r in got]) if prove else "-"
            cpu = show([r["final_cpu"] for r in got]) if prove else "-"
            print(f"| {samples} | {'on' if prove else 'off'} | "
                  f"{show([r['downtime'] for r in got])} | {show([r['total'] for r in got])} "
                  f"| {first} | {final} | {cpu} |")


if __name__ == "__main__":
    main()
