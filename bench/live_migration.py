"""Live-migration downtime and total time for maps of 10k to 1M entries under traffic.

A source device runs a flow counter: an XDP program that looks up the frame's IPv4 source
and destination (8 bytes) in a HASH map of 16-byte values and counts the frame in place
through the value pointer. The map holds the given number of flows; a traffic thread sends
frames of known flows (each one dirties the entry it hits, through the program's pointer) for
the whole migration, under the migration's lock. The destination - a second device of the
``full`` profile - serves on a TCP loopback socket in another thread. Reported per size, as
the median (min-max) of ``--runs`` migrations: total time, the measured downtime (pause to
the destination's acknowledgement) against the target, rounds, entries per round and bytes
sent (of the median run), and the frames the source processed during the migration.

    .venv/bin/python bench/live_migration.py [--sizes 10000,100000,1000000] [--rate 2000]
                                             [--target 0.02] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.live import MigrationDestination, MigrationSource, connect, listen  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.device import build_device  # noqa: E402
from offload.isa.asm import assemble  # noqa: E402
from offload.maps.spec import MapSpec  # noqa: E402
from offload.program import MapReference, ProgramSpec  # noqa: E402
from offload.uapi import MapType, ProgType  # noqa: E402
from service.frames import tcp, v4_frame  # noqa: E402

#: Count the frame in flows[saddr, daddr]: 16-byte values, packets then bytes.
FLOW_COUNTER = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 34
jgt %r4, %r3, +14
ldxdw %r5, [%r2+26]
stxdw [%r10-8], %r5
lddw %r1, map_fd(0)
mov %r2, %r10
add %r2, -8
call 1
jeq %r0, 0, +6
ldxdw %r1, [%r0+0]
add %r1, 1
stxdw [%r0+0], %r1
ldxdw %r1, [%r0+8]
add %r1, 60
stxdw [%r0+8], %r1
mov %r0, 2
exit
"""
DEST = bytes([10, 200, 0, 1])


def address(i: int) -> bytes:
    return bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])


def source_device(entries: int):  # noqa: ANN201
    pair = build_device("source", load_profile("full"), seed=7)
    flows = pair.driver.map_create(MapSpec("flows", MapType.HASH, 8, 16, max(entries, 1)))
    live = pair.device.backend.map(flows)
    if hasattr(live, "import_chunk"):
        from offload.maps.base import Chunk
        for first in range(0, entries, 65536):
            n = min(65536, entries - first)
            keys = b"".join([address(i) + DEST for i in range(first, first + n)])
            live.import_chunk(Chunk(n, keys, bytes(16 * n)))
    else:  # a tree from before packed chunks, for comparison
        live.import_entries((address(i) + DEST, bytes(16)) for i in range(entries))
    spec = ProgramSpec("flow_counter", ProgType.XDP, tuple(assemble(FLOW_COUNTER)), "GPL",
                       map_refs=(MapReference(7, "flows"),))
    prog = pair.driver.prog_load(spec, maps={"flows": flows})
    pair.driver.xdp_attach(prog)
    return pair


def run(entries: int, rate: float, target: float) -> dict[str, object]:
    source = source_device(entries)
    dest = build_device("dest", load_profile("full"))
    frames = [v4_frame(".".join(map(str, address(i * 7919 % max(entries, 1)))), "10.200.0.1",
                       tcp(1000 + i % 50000, 80)) for i in range(4096)]
    server = listen("tcp:127.0.0.1:0")
    port = server.getsockname()[1]
    outcome: dict[str, object] = {}

    def serve() -> None:
        conn, _ = server.accept()
        server.close()
        outcome["dest"] = MigrationDestination(dest, timeout=120).serve(conn)

    migration = MigrationSource(source.device, downtime_target=target, timeout=120)
    stop = threading.Event()
    processed = [0]

    def traffic() -> None:
        n = 0
        interval = 1.0 / rate
        while not stop.is_set():
            with migration.lock:
                if not source.device.paused and source.device.attached is not None:
                    source.device.receive(frames[n % len(frames)])
                    processed[0] += 1
            n += 1
            time.sleep(interval)

    side = threading.Thread(target=serve)
    side.start()
    pump = threading.Thread(target=traffic, daemon=True)
    pump.start()
    time.sleep(0.2)
    report = migration.run(connect(f"tcp:127.0.0.1:{port}"))
    stop.set()
    pump.join()
    side.join()
    return {"entries": entries, "total": report.total_time, "downtime": report.downtime,
            "rounds": report.rounds, "per_round": report.entries_per_round,
            "bytes": report.bytes_sent, "frames": processed[0]}


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    return (f"{statistics.median(values) * scale:.{digits}f} "
            f"({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rate", type=float, default=2000.0, help="frames/s offered")
    parser.add_argument("--target", type=float, default=0.02, help="downtime target (s)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; median (min-max) of {args.runs} runs")
    print("| entries | total (s) | downtime (ms) | rounds | entries per round (copy, rounds.., "
          "final) | MB sent | frames processed |")
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        runs = [run(size, args.rate, args.target) for _ in range(args.runs)]
        runs.sort(key=lambda r: r["total"])  # type: ignore[arg-type,return-value]
        mid = runs[len(runs) // 2]
        per = " / ".join(f"{n:,}" for n in mid["per_round"])  # type: ignore[attr-defined]
        print(f"| {size:,} | {spread([r['total'] for r in runs])} | "  # type: ignore[misc]
              f"{spread([r['downtime'] for r in runs], 1000, 1)} | {mid['rounds']} | {per} | "
              f"{mid['bytes'] / 1e6:.1f} | {mid['frames']:,} |", flush=True)  # type: ignore[operator]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
