"""``capture``: frames at a device's edges into a pcap file tcpdump and Wireshark read.

The daemon records (capture.start, offload/device/capture.py); this command reads the records
as they come and appends them to a temporary file beside the output, which takes the
output's name only when the capture ends - after ``--count`` frames, ``--duration`` seconds,
or Ctrl-C (SIGINT or SIGTERM: what was captured is read out and written). A device that goes
away mid-capture (its daemon stopped or killed) ends it too: the frames read so far are
written, and the command says so and exits 1. Memory stays that of one read whatever the
capture's length.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.text import Text

from . import device_option
from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
INTERVAL = 0.05  # seconds between reads while nothing waits
READ_MAX = 1000  # frames per read


def register(sub: Any) -> None:
    capture = sub.add_parser(
        "capture", help="record frames at a device into a pcap file (rx, tx, drops)",
        formatter_class=RAW,
        description="Record the frames a device receives (rx, with the program's verdict), "
                    "sends out on the wire (tx: XDP_TX and the guest's frames) or drops "
                    "(drop: XDP_DROP and XDP_ABORTED) into a classic pcap file, written "
                    "atomically when the capture ends: after --count frames, --duration "
                    "seconds or Ctrl-C. Frames the device could not hold for a slow reader "
                    "are counted as lost.",
        epilog="examples:\n"
               "  offload-migrate capture --device /tmp/a.sock --output rx.pcap --count 100\n"
               "  offload-migrate capture --device /tmp/a.sock -o drops.pcap --what drop "
               "--duration 10\n"
               "  offload-migrate capture -o all.pcap --what all   # until Ctrl-C\n"
               "  tcpdump -nr drops.pcap")
    device_option.add(capture)
    capture.add_argument("--output", "-o", required=True, metavar="FILE.pcap",
                         help="the pcap file to write")
    capture.add_argument("--what", choices=("rx", "tx", "drop", "all"), default="rx",
                         help="frames arriving, leaving, dropped, or all of them "
                              "(default: rx)")
    capture.add_argument("--count", type=int, metavar="N", help="stop after N frames")
    capture.add_argument("--duration", type=float, metavar="SECONDS",
                         help="stop after this many seconds")
    capture.add_argument("--snaplen", type=int, default=65535, metavar="BYTES",
                         help="bytes kept of each frame (default: 65535)")
    capture.add_argument("--json", action="store_true", help="print the summary as JSON")
    capture.set_defaults(handler=capture_command)


@contextmanager
def stop_requests() -> Iterator[list[int]]:
    """SIGINT and SIGTERM ask the capture to stop (the list gets the signal) instead of
    raising in the middle of a read; the previous handlers come back after."""
    asked: list[int] = []

    def ask(signum: int, frame: Any) -> None:
        asked.append(signum)

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def capture_command(args: argparse.Namespace, out: Output) -> int:
    if args.count is not None and args.count <= 0:
        raise UsageError("--count must be positive.")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive.")
    if not 0 < args.snaplen <= 65535:
        raise UsageError("--snaplen must be 1 to 65535.")
    from migrate.atomic_file import atomic_output
    from service.client import DaemonUnreachable, DeviceClient
    from service.pcap import PcapWriter

    directions: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    lost = 0
    gone: DaemonUnreachable | None = None  # the device went away mid-capture
    with DeviceClient(args.device, timeout=10.0) as client, stop_requests() as asked:
        started = client.call("capture.start", what=args.what, count=args.count,
                              snaplen=args.snaplen)
        ident = started["capture"]
        deadline = None if args.duration is None else time.monotonic() + args.duration
        out.err.print(f"capturing {', '.join(started['what'])} at {args.device} into "
                      f"{args.output} (Ctrl-C stops)", highlight=False, markup=False,
                      soft_wrap=True)
        with atomic_output(args.output, 0o644) as handle:
            writer = PcapWriter(handle, args.snaplen)
            while True:
                last = bool(asked)  # a stop asked before this read: it is the last one
                try:
                    answer = client.call("capture.read", capture=ident, max=READ_MAX)
                except DaemonUnreachable as err:
                    gone = err  # what was read so far is the capture
                    break
                for frame in answer["frames"]:
                    writer.write(frame["data"], frame["time"], frame["length"])
                    directions[frame["direction"]] += 1
                    verdicts[f"{frame['direction']} {frame['verdict']}"] += 1
                lost = answer["lost"]
                if answer["full"] or (last and len(answer["frames"]) < READ_MAX) or (
                        args.count is not None and writer.frames >= args.count):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not answer["frames"]:
                    time.sleep(INTERVAL if deadline is None
                               else max(0.0, min(INTERVAL, deadline - time.monotonic())))
        if gone is None:
            client.call("capture.stop", capture=ident)
    drops = sum(n for k, n in verdicts.items() if k in ("rx drop", "rx aborted"))
    summary = {"output": args.output, "what": started["what"], "frames": writer.frames,
               "rx": directions["rx"], "tx": directions["tx"], "drop": drops, "lost": lost,
               "verdicts": dict(sorted(verdicts.items()))}
    if gone is not None:
        summary["ended"] = f"the device went away: {gone}"
        out.error(f"the capture ended early, the device went away ({gone}); "
                  f"{writer.frames:,} frames read before are in {args.output}")
    code = Exit.OK if gone is None else Exit.REFUSED
    if args.json:
        out.json(summary)
        return code
    text = Text(f"{writer.frames:,} frames to {args.output}", style="bold")
    text.append(f"  (rx {directions['rx']:,}, tx {directions['tx']:,}, drop {drops:,})")
    if lost:
        text.append(f"  {lost:,} lost: the device's buffer was full", style="yellow")
    out.console.print(text, highlight=False)
    return code
