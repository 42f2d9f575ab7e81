"""``events``: what programs on a device wrote to perf event arrays and ring buffers.

The device holds each stream as a bounded buffer (records that do not fit are counted as
lost); reading takes the records, which frees their room. One reader per device: two readers
would each get part of the stream.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rich.text import Text

from service.client import DeviceClient

from . import device_option
from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
SHOWN_BYTES = 32  # bytes of a record the text view shows (--json has them all)
MAX_READS = 100  # reads one run without --follow makes (traffic may keep the backlog up)


def register(sub: Any) -> None:
    events = sub.add_parser(
        "events", help="print the event streams of a device (perf event arrays, ring buffers)",
        formatter_class=RAW,
        description="Take the records programs wrote with bpf_perf_event_output and "
                    "bpf_ringbuf_output from a device, oldest first, and print them: time, "
                    "map, stream (the CPU of a perf event array), sequence number, size and "
                    "the first bytes. Taking records frees their room on the device. Lost "
                    "records (a stream that was full) are counted per map.",
        epilog="examples:\n"
               "  offload-migrate events --device /tmp/a.sock\n"
               "  offload-migrate events --device /tmp/a.sock --json\n"
               "  offload-migrate events --device /tmp/a.sock --follow")
    device_option.add(events)
    events.add_argument("--json", action="store_true",
                        help="print JSON: one object, or with --follow one line per record")
    events.add_argument("--follow", action="store_true",
                        help="keep reading until interrupted (Ctrl-C)")
    events.add_argument("--interval", type=float, default=0.2,
                        help="seconds between reads with --follow (default: 0.2)")
    events.add_argument("--max", type=int, default=1000, metavar="N",
                        help="records per read (default: 1000)")
    events.set_defaults(handler=events_command)


def event_line(event: dict[str, Any]) -> Text:
    """``time  map  perf cpu 0  #seq  size B  hex...``."""
    data = bytes.fromhex(event["data"])
    shown = data[:SHOWN_BYTES].hex(" ")
    more = f" (+{len(data) - SHOWN_BYTES} B)" if len(data) > SHOWN_BYTES else ""
    where = f"cpu {event['stream']}" if event["kind"] == "perf" else f"cpu {event['cpu']}"
    text = Text(f"{event['time_ns']:>16}  ", style="dim")
    text.append(f"{event['map']}", style="bold")
    text.append(f"  {event['kind']} {where}  #{event['seq']}  {event['size']} B  ")
    text.append(shown + more, style="cyan")
    return text


def streams_line(answer: dict[str, Any]) -> Text | None:
    parts = [f"{s['map']}: {s['pending']} waiting, {s['lost']} lost"
             for s in answer.get("streams", [])]
    if answer.get("lost"):
        parts.append(f"device backlog: {answer['lost']} lost")
    return Text("streams  " + "; ".join(parts), style="dim") if parts else None


def events_command(args: argparse.Namespace, out: Output) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be positive.")
    if not 0 < args.max <= 10_000:
        raise UsageError("--max must be 1 to 10000.")
    with DeviceClient(args.device) as client:
        if not args.follow:
            answer = _read_all(client, args.max)
            if args.json:
                out.json(answer)
                return Exit.OK
            for event in answer["events"]:
                out.console.print(event_line(event), highlight=False)
            if not answer["events"]:
                out.console.print(Text(f"no events on {answer['device']}", style="dim"))
            line = streams_line(answer)
            if line is not None:
                out.console.print(line)
            return Exit.OK
        try:
            while True:
                answer = client.call("events.read", max=args.max)
                for event in answer["events"]:
                    if args.json:
                        sys.stdout.write(json.dumps(event) + "\n")
                    else:
                        out.console.print(event_line(event), highlight=False)
                sys.stdout.flush()
                if len(answer["events"]) < args.max:
                    time.sleep(args.interval)
        except KeyboardInterrupt:
            pass
    return Exit.OK


def _read_all(client: DeviceClient, most: int) -> dict[str, Any]:
    """The records waiting now, in reads of ``most`` (at most MAX_READS of them); the last
    answer's stream counts."""
    answer = client.call("events.read", max=most)
    events = list(answer["events"])
    for _ in range(MAX_READS):
        if not answer["backlog"]:
            break
        answer = client.call("events.read", max=most)
        events.extend(answer["events"])
        if not answer["events"]:
            break
    answer["events"] = events
    return answer
