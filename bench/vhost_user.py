"""Guest to guest through two devices over vhost-user: latency and packets per second.

Two device daemons (``device serve --vhost-user ... --wire udp:...``) joined by a UDP tunnel,
a QEMU guest (TCG) on each. Guest A pings guest B: ``ping -A`` sends the next echo as soon as
the reply is back, so echoes per second measure the round trip through both devices, both
vhost-user back-ends and both guests' stacks (4 frames cross a device per echo: request and
reply, each through both). Measured with no program on B's device and with the port filter
(``fixtures/xdp/xdp_port_filter.o``) attached, side by side in one run; each figure is the
median of ``--runs`` runs with the min-max.

    .venv/bin/python bench/vhost_user.py [--count 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.client import DeviceClient  # noqa: E402
from service.guest import Guest, guest_image  # noqa: E402

FIXTURE = ROOT / "fixtures" / "xdp" / "xdp_port_filter.o"
SUMMARY = re.compile(r"round-trip min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+) ms")


def start_daemon(work: Path, name: str, *extra: str) -> subprocess.Popen:
    """``device serve`` in its own process, returned once its control socket answers."""
    sock = work / f"{name}.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "device", "serve", "--name", name, "--socket",
         str(sock), "--state-dir", str(work / name), *extra],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(sock))
            return process
        except OSError:
            time.sleep(0.05)
        finally:
            probe.close()
    process.kill()
    raise RuntimeError(f"daemon {name} did not start")


def free_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def spread(values: list[float], unit: str, digits: int = 1) -> str:
    unit = f" {unit}" if unit else ""
    return (f"{statistics.median(values):.{digits}f}{unit} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="echoes per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    image = guest_image()
    if isinstance(image, str):
        print(f"skipped: {image}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="vhost-bench-"))
    pa, pb = free_port(), free_port()
    daemons, guests = [], []
    try:
        for name, local, remote in (("a", pa, pb), ("b", pb, pa)):
            daemons.append(start_daemon(
                work, name, "--vhost-user", str(work / f"{name}.vhost"),
                "--wire", f"udp:127.0.0.1:{local}=127.0.0.1:{remote}"))
        for name, ip in (("a", "10.0.0.1/24"), ("b", "10.0.0.2/24")):
            guests.append(Guest(name, image, str(work / f"{name}.vhost"),
                                mac=f"52:54:00:00:00:0{name}", ip=ip, workdir=work))
        boots = [threading.Thread(target=g.boot) for g in guests]
        for t in boots:
            t.start()
        for t in boots:
            t.join()
        a = guests[0]
        a.run("ping -c 3 -W 3 10.0.0.2 >/dev/null")  # ARP resolved before timing
        client = DeviceClient(str(work / "b.sock"))
        loaded = client.call("load", object=FIXTURE.read_bytes(), name="xdp_port_filter",
                             program="xdp_port_filter")
        program = loaded["programs"]["xdp_port_filter"]["id"]
        results: dict[str, dict[str, list[float]]] = {"no program": {}, "port filter": {}}
        for _ in range(args.runs):
            for label in results:  # alternating, so both see the same machine
                if label == "port filter":
                    client.call("attach", program=program)
                elif any(p["attach"] for p in client.call("status")["programs"]):
                    client.call("detach")
                out = a.run(f"time ping -A -q -c {args.count} 10.0.0.2 2>&1", timeout=600)
                rtt = SUMMARY.search(out)
                real = re.search(r"real\s+(?:(\d+)m\s*)?([\d.]+)s", out)
                if rtt is None or real is None:
                    raise RuntimeError(f"unexpected ping output:\n{out}")
                seconds = int(real.group(1) or 0) * 60 + float(real.group(2))
                row = results[label]
                row.setdefault("rtt", []).append(float(rtt.group(2)))
                row.setdefault("pps", []).append(4 * args.count / seconds)
        print("| B's device | round trip (avg of each run) | frames/s through the devices |")
        print("| --- | ---: | ---: |")
        for label, row in results.items():
            print(f"| {label} | {spread(row['rtt'], 'ms', 2)} | {spread(row['pps'], '', 0)} |")
        return 0
    finally:
        for g in guests:
            g.close()
        for d in daemons:
            d.terminate()
            d.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
