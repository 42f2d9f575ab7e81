"""Live-migration downtime and total time for maps of 10k to 1M entries under traffic.

A source device runs the firewall fixture with its ``blocked_v4`` hash map enlarged to the
given size and filled with that many blocked addresses; a traffic thread sends frames from
blocked sources (each one dirties the entry it hits) for the whole migration, under the
migration's lock. The destination - a second device of the ``full`` profile - serves on a TCP
loopback socket in another thread. Reported per size: total time, rounds, entries per round,
bytes sent, the measured downtime (pause to the destination's acknowledgement) against the
50 ms target, and the frames the source processed during the migration.

    .venv/bin/python bench/live_migration.py [--sizes 10000,100000,1000000] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.live import MigrationDestination, MigrationSource, connect, listen  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.device import build_device  # noqa: E402
from offload.loader import load_object  # noqa: E402
from service.frames import tcp, v4_frame  # noqa: E402

FIREWALL = ROOT / "fixtures" / "xdp" / "xdp_firewall.o"


def address(i: int) -> bytes:
    return bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])


def source_device(entries: int):  # noqa: ANN201
    pair = build_device("source", load_profile("full"), seed=7)
    obj = load_object(FIREWALL)
    specs = dict(obj.maps)
    specs["blocked_v4"] = replace(specs["blocked_v4"], max_entries=max(entries, 1))
    maps = {name: pair.driver.map_create(spec) for name, spec in specs.items()}
    live = pair.device.backend.map(maps["blocked_v4"])
    zero = bytes(8)
    live.import_entries((address(i), zero) for i in range(entries))
    prog = pair.driver.prog_load(obj.programs["xdp_firewall"], maps=maps)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rate", type=float, default=2000.0, help="frames/s offered")
    parser.add_argument("--target", type=float, default=0.05, help="downtime target (s)")
    args = parser.parse_args(argv)
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print("| entries | total (s) | rounds | entries per round (copy, rounds.., final) | "
          "MB sent | downtime (ms) | frames processed |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        r = run(size, args.rate, args.target)
        per = ", ".join(str(n) for n in r["per_round"])  # type: ignore[union-attr]
        print(f"| {size:,} | {r['total']:.2f} | {r['rounds']} | {per} | "
              f"{r['bytes'] / 1e6:.1f} | {r['downtime'] * 1000:.1f} | {r['frames']:,} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
