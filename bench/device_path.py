"""Frames per second through the whole device path: virtqueues, device and guest driver.

Receive: ``Device.receive`` runs the attached program (a trivial XDP_PASS one) and writes the
frame into a buffer the guest posted on the receive queue; ``Driver.received`` collects it and
re-posts the buffer, once per ``--burst`` frames. Transmit: ``Driver.transmit`` puts one frame
on the transmit queue, the device pops it and sends it to the wire. Both run for a device on
the reference engine, on the fast engine, and with no program attached. The program's own cost
(``Backend.run_xdp`` alone) is shown beside them, so what the virtqueues add is visible.

    .venv/bin/python bench/device_path.py [--frames N] [--burst N] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from offload.caps import Capabilities  # noqa: E402
from offload.device import build_device  # noqa: E402
from offload.device.pair import DevicePair  # noqa: E402
from offload.helpers.prototypes import HelperId  # noqa: E402
from offload.isa import assemble  # noqa: E402
from offload.uapi import MapType, XdpAction  # noqa: E402

CAPS = Capabilities("bench-full", helpers=frozenset(int(h) for h in HelperId),
                    map_types=frozenset(MapType))
PASS_PROGRAM = "mov %r0, 2\nexit"
#: A 64-byte Ethernet/IPv4/UDP frame (its contents do not matter to the path).
FRAME = bytes.fromhex("020000000002020000000001080045000032000140004011"
                      "0000 0a000001 0a000009 04d2 0035 001e 0000".replace(" ", "")) + bytes(22)
SETUPS = ("reference", "fast", "no program")


@dataclass(frozen=True)
class Row:
    setup: str  # engine name, or "no program"
    rx: float  # frames per second, wire -> XDP_PASS -> guest, collected by the driver
    tx: float  # frames per second, guest -> wire
    program_us: float | None  # run_xdp alone, microseconds per frame

    @property
    def rx_us(self) -> float:
        return 1e6 / self.rx

    @property
    def tx_us(self) -> float:
        return 1e6 / self.tx


def make_pair(setup: str) -> tuple[DevicePair, int | None]:
    pair = build_device("bench", CAPS, engine="fast" if setup == "no program" else setup, seed=1)
    if setup == "no program":
        return pair, None
    handle = pair.driver.prog_load(assemble(PASS_PROGRAM), name="bench_pass")
    pair.driver.xdp_attach(handle)
    return pair, handle


def rx_rate(pair: DevicePair, frames: int, burst: int) -> float:
    device, driver = pair.device, pair.driver
    for _ in range(burst):  # warm up, and check the frames really arrive
        assert device.receive(FRAME) == XdpAction.PASS
    assert driver.received() == [FRAME] * burst
    rounds = max(1, frames // burst)
    start = time.perf_counter()
    for _ in range(rounds):
        for _ in range(burst):
            device.receive(FRAME)
        driver.received()
    elapsed = time.perf_counter() - start
    if device.ports.rx_no_buffer:
        raise RuntimeError("the guest ran out of receive buffers: lower --burst")
    return rounds * burst / elapsed


def tx_rate(pair: DevicePair, frames: int) -> float:
    device, driver = pair.device, pair.driver
    driver.transmit(FRAME)
    assert device.wire.pop() == FRAME
    start = time.perf_counter()
    for _ in range(frames):
        driver.transmit(FRAME)
    elapsed = time.perf_counter() - start
    return frames / elapsed


def program_us(pair: DevicePair, handle: int, frames: int) -> float:
    backend = pair.device.backend
    backend.run_xdp(handle, FRAME)
    start = time.perf_counter()
    for _ in range(frames):
        backend.run_xdp(handle, FRAME)
    return (time.perf_counter() - start) / frames * 1e6


def measure(frames: int = 20_000, burst: int = 16, rounds: int = 3) -> list[Row]:
    """The best of ``rounds`` runs of ``frames`` frames each way, for every set-up."""
    rows = []
    for setup in SETUPS:
        pair, handle = make_pair(setup)
        rx = max(rx_rate(pair, frames, burst) for _ in range(rounds))
        tx = max(tx_rate(pair, frames) for _ in range(rounds))
        prog = None if handle is None else min(program_us(pair, handle, frames)
                                               for _ in range(rounds))
        if not pair.device.transport.live:
            raise RuntimeError(f"the device broke: {pair.device.transport.reset_reason}")
        rows.append(Row(setup, rx, tx, prog))
    return rows


def table(rows: list[Row]) -> Table:
    out = Table(title="Frames per second through the device path (higher is better)")
    for column in ("set-up", "rx frames/s", "rx us/frame", "tx frames/s", "tx us/frame",
                   "program alone us/frame"):
        out.add_column(column, justify="left" if column == "set-up" else "right")
    for row in rows:
        out.add_row(row.setup, f"{row.rx:,.0f}", f"{row.rx_us:.1f}", f"{row.tx:,.0f}",
                    f"{row.tx_us:.1f}",
                    "n/a" if row.program_us is None else f"{row.program_us:.1f}")
    return out


def markdown(rows: list[Row]) -> str:
    lines = ["| set-up | rx frames/s | rx us/frame | tx frames/s | tx us/frame | "
             "program alone us/frame |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        prog = "n/a" if row.program_us is None else f"{row.program_us:.1f}"
        lines.append(f"| {row.setup} | {row.rx:,.0f} | {row.rx_us:.1f} | {row.tx:,.0f} | "
                     f"{row.tx_us:.1f} | {prog} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=16,
                        help="frames received before the driver collects them (at most 64)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = measure(args.frames, args.burst)
    if args.markdown:
        print(markdown(rows))
    else:
        Console().print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
