"""``device serve``, ``load`` and ``status``: running a device and looking at it."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from service.client import DeviceClient
from service.device_service import BACKENDS, ENGINES, DeviceService
from service.device_state import DeviceState, default_state_dir
from service.errors import ServiceError
from service.traffic import DEFAULT_RATE, parse_traffic

from . import cmd_device_info, device_option, object_options
from .exits import Exit, UsageError
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
LOG_LEVELS = ("debug", "info", "warning", "error")


def register(sub: Any) -> None:
    device = sub.add_parser(
        "device", help="run, stop, list and show device daemons", formatter_class=RAW,
        description="Device daemons: one offload device with its guest driver per process.",
        epilog="examples:\n  offload-migrate device serve --name A --profile full "
               "--socket /tmp/a.sock --traffic synthetic\n"
               "  offload-migrate device list --device /tmp/a.sock --device /tmp/b.sock\n"
               "  offload-migrate device show --device /tmp/a.sock -p")
    dsub = device.add_subparsers(dest="device_command", required=True, metavar="COMMAND")
    serve = dsub.add_parser(
        "serve", help="run a device and answer its control socket", formatter_class=RAW,
        description="Run an offload device and its guest driver, optionally with traffic on its "
                    "receive path, answering msgpack-RPC on a Unix socket "
                    "(docs/control-socket.md). SIGTERM, SIGINT or the 'shutdown' method stop "
                    "it and remove the socket.",
        epilog="examples:\n"
               "  offload-migrate device serve --name A --profile full --socket /tmp/a.sock\n"
               "  offload-migrate device serve --name B --profile smartnic --socket /tmp/b.sock "
               "--traffic pcap:trace.pcap --rate 500\n"
               "  offload-migrate device serve --name K --profile host-kernel --backend kernel "
               "--socket /tmp/k.sock\n"
               "  offload-migrate device serve --name C --profile smartnic --memory-limit 64M "
               "--socket /tmp/c.sock\n"
               "  offload-migrate device serve --name G --socket /tmp/g.sock --vhost-user "
               "/tmp/g.vhost --wire udp:127.0.0.1:5001=127.0.0.1:5002\n"
               "  offload-migrate device serve --name S --socket /tmp/s.sock --vhost-user "
               "/tmp/b.vhost --port c:vhost-user=/tmp/c.vhost,ifindex=2 "
               "--wire udp:127.0.0.1:5002=127.0.0.1:5001")
    serve.add_argument("--name", required=True, help="device name (also the interface name)")
    serve.add_argument("--profile", default="full", help="capability profile (default: full; "
                       "see 'offload-migrate profiles')")
    serve.add_argument("--socket", required=True, metavar="PATH", help="control socket path")
    serve.add_argument("--backend", choices=BACKENDS, default="builtin",
                       help="where programs run: the built-in engines or the host kernel")
    serve.add_argument("--engine", choices=ENGINES, default="fast",
                       help="built-in engine (default: fast)")
    serve.add_argument("--traffic", metavar="synthetic|pcap:FILE",
                       help="frames to send through the device continuously")
    serve.add_argument("--rate", type=float, default=DEFAULT_RATE,
                       help=f"traffic frames per second (default: {DEFAULT_RATE:.0f})")
    serve.add_argument("--seed", type=int, default=None, help="seed for engines and traffic")
    serve.add_argument("--listen", metavar="tcp:HOST:PORT",
                       help="accept incoming live migrations on this address")
    serve.add_argument("--state-dir", metavar="DIR",
                       help="where the device keeps its identity, snapshot generation counter "
                            "and rollback record (default: $XDG_STATE_HOME/offload-migrate/"
                            "devices/NAME, ~/.local/state without XDG_STATE_HOME)")
    serve.add_argument("--memory-limit", type=parse_size, metavar="SIZE",
                       help="map memory of the device instead of the profile's (bytes, or "
                            "with K, M, G, T: 512M, 2G); each map is charged what it may hold "
                            "and MAP_CREATE past it is refused with ENOMEM")
    serve.add_argument("--sample-ring", type=int, default=0, metavar="N",
                       help="keep the last N frames received (1 to 4096) for snapshots that "
                            "carry a sample (save --sample) and restores that prove "
                            "(restore --prove); off by default")
    serve.add_argument("--vhost-user", metavar="SOCKET", action="append", default=[],
                       help="serve a guest-facing port to a QEMU front-end over vhost-user "
                            "(-netdev vhost-user; docs/vhost-user.md); repeat for more ports, "
                            "ifindex 1, 2, ... in order (1 is the device's own: what the "
                            "program passes on the device's wire goes there)")
    serve.add_argument("--port", metavar="NAME:vhost-user=SOCKET[,ifindex=N][,wire=udp:...]",
                       action="append", default=[],
                       help="one more vhost-user port with a name, an ifindex (the lowest "
                            "free one if not given; what a devmap entry names) and its own "
                            "wire (last, as --wire takes it); without one its guest "
                            "transmits on the device's wire; repeatable")
    serve.add_argument("--wire", metavar="udp:LOCAL=REMOTE|tap:NAME",
                       help="the device's wire as a UDP tunnel, one frame per datagram: "
                            "udp:LOCAL_HOST:PORT=REMOTE_HOST:PORT; with ,learn the far end "
                            "follows the peer last heard from (a guest that migrated away); "
                            "or as a tap interface on the host, tap:NAME (needs "
                            "CAP_NET_ADMIN); frames from it enter at ifindex 1")
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="info", type=str.lower,
                       help="what the daemon logs on stderr (default: info: start, stop, "
                            "migrations, refused connections; debug: every request)")
    serve.set_defaults(handler=serve_command)
    stop = dsub.add_parser("stop", help="stop a device daemon (the 'shutdown' method)",
                           epilog="example:\n  offload-migrate device stop --device /tmp/a.sock",
                           formatter_class=RAW)
    device_option.add(stop)
    stop.set_defaults(handler=stop_command)
    cmd_device_info.register_verbs(dsub)

    load = sub.add_parser(
        "load", help="load an ELF object's programs and maps onto a device", formatter_class=RAW,
        description="Create the object's maps and load its programs on the device through the "
                    "guest driver (the device verifies them), optionally attaching one. All "
                    "or none, as bpftool prog loadall: a chosen program the loader or the "
                    "device refuses loads nothing; choose the others with --program or "
                    "--section. Only the maps the chosen programs use (and those no program "
                    "uses) are created.",
        epilog="examples:\n"
               "  offload-migrate load fixtures/xdp/xdp_firewall.o --device /tmp/a.sock --attach\n"
               "  offload-migrate load fixtures/xdp/xdp_pass.o --device /tmp/a.sock "
               "--program xdp_drop_all --attach\n"
               "  offload-migrate load fixtures/xdp/libbpf/xdp_traced.o --device /tmp/a.sock "
               "--program xdp_count_ipv4\n"
               "  offload-migrate load fixtures/xdp/libbpf/xdp_custom_sections.o --device "
               "/tmp/a.sock --type xdp_custom=xdp --program xdp_custom --attach\n"
               "  offload-migrate load fixtures/xdp/libbpf/xdp_sized_maps.o --device "
               "/tmp/a.sock --map-size allowed_ports=1024")
    load.add_argument("object", help="BPF ELF object (.o) built by clang")
    device_option.add(load)
    load.add_argument("--section", help="only programs of this ELF section")
    load.add_argument("--program", action="append", metavar="NAME",
                      help="only this program (repeatable)")
    object_options.add_arguments(load)
    load.add_argument("--attach", action="store_true", help="attach the program (XDP, hw mode)")
    load.set_defaults(handler=load_command)

    status = sub.add_parser(
        "status", help="live view of devices, programs, counters and maps", formatter_class=RAW,
        description="A live view of one or more devices, one at a time on the terminal: "
                    "per program the rate of each verdict (pass, drop, tx, redirect) over "
                    "time as sparklines with its counter, per map its fill over time, and "
                    "while a migration runs its phase, round, dirty entries per round, "
                    "expected downtime and bytes moved. Keys: Tab (Shift-Tab) or 1-9 show "
                    "another device, q (or Ctrl-C) quits. Without a terminal, or with --once, "
                    "every device is printed once in full.",
        epilog="examples:\n"
               "  offload-migrate status --device /tmp/a.sock --device /tmp/b.sock\n"
               "  offload-migrate status --device /tmp/a.sock --once\n"
               "  offload-migrate status --device /tmp/a.sock --json")
    device_option.add(status, several=True)
    status.add_argument("--once", action="store_true", help="render once and exit")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--interval", type=float, default=1.0,
                        help="seconds between refreshes, one sparkline column each "
                             "(default: 1)")
    status.set_defaults(handler=status_command)


# ---------------------------------------------------------------------------------- serve
_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(text: str) -> int:
    """``--memory-limit``: bytes, or a whole number with K, M, G or T (powers of 1024)."""
    from offload.caps.profiles import MAX_MEMORY, MIN_MEMORY

    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = raw[-1:] if raw[-1:] in _UNITS and raw[-1:] else ""
    digits = raw[:-1] if unit else raw
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give bytes or a number "
                                         "with K, M, G or T (512M, 2G).")
    size = int(digits) << _UNITS[unit]
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise argparse.ArgumentTypeError(f"{text!r} is outside {MIN_MEMORY} bytes to "
                                         f"{MAX_MEMORY >> 40} TiB.")
    return size


def serve_command(args: argparse.Namespace, out: Output) -> int:
    from service.daemon import Daemon
    from service.ports import Ports

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    log = logging.getLogger("offload_migrate.daemon")
    traffic = parse_traffic(args.traffic, args.rate, args.seed if args.seed is not None else 1)
    state = DeviceState.open(args.state_dir or default_state_dir(args.name), args.name)
    try:
        service = DeviceService(args.name, args.profile, backend=args.backend,
                                engine=args.engine, seed=args.seed, traffic=traffic, state=state,
                                memory_limit=args.memory_limit)

        if args.sample_ring:
            if not 0 < args.sample_ring <= 4096:
                raise UsageError(f"--sample-ring {args.sample_ring}: a sample ring holds 1 to "
                                 f"4096 frames.")
            service.device.sample(args.sample_ring)
        ports = Ports.open(service, vhost_user=args.vhost_user, wire=args.wire,
                           ports=args.port)

        def ready() -> None:
            log.info("device %s (profile %s) serving %s", args.name, args.profile, args.socket)
            extra = f" and {args.listen} (migrations)" if args.listen else ""
            print(f"device {args.name} (profile {args.profile}, backend {args.backend}) "
                  f"listening on {args.socket}{extra}; state in {state.directory} "
                  f"(generation {state.generation})", flush=True)
            for note in ports.notes:
                print(f"device {args.name}: {note}", flush=True)

        try:
            Daemon(service, args.socket, listen=args.listen).serve(ready)
        finally:
            ports.close()
    finally:
        state.close()
    log.info("device %s stopped", args.name)
    print(f"device {args.name} stopped", flush=True)
    return Exit.OK


def stop_command(args: argparse.Namespace, out: Output) -> int:
    with DeviceClient(args.device) as client:
        name = client.call("shutdown")["stopping"]
    out.console.print(f"device {name} is stopping", highlight=False)
    return Exit.OK


# ---------------------------------------------------------------------------------- load
def load_command(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.object)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}.") from None
    every, per_program = object_options.parse_types(args.type)
    sizes = object_options.parse_map_sizes(args.map_size)
    with DeviceClient(args.device) as client:
        result = client.call("load", object=data, name=path.name.split(".")[0],
                             section=args.section, program=args.program, attach=args.attach,
                             type=every, types=per_program or None, map_sizes=sizes or None)
    from rich.table import Table

    table = Table(title=f"loaded {path.name}")
    table.add_column("object")
    table.add_column("id", justify="right")
    table.add_column("verifier")
    for name, prog in result["programs"].items():
        attached = " (attached)" if result["attached"] == name else ""
        table.add_row(f"program {name}{attached}", str(prog["id"]),
                      f"{prog['insns_processed']} insns processed, {prog['states']} states")
    for name, handle in result["maps"].items():
        table.add_row(f"map {name}", str(handle), "")
    out.console.print(table)
    for name, refusal in (result.get("refused") or {}).items():
        out.console.print(f"not chosen, refused by the loader: {name} (section "
                          f"{refusal['section']}): {refusal['reason']}", style="dim",
                          highlight=False)
    return Exit.OK


# ---------------------------------------------------------------------------------- status
def fetch(paths: list[str]) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    entries: list[tuple[str, dict[str, Any] | None, str | None]] = []
    for path in paths:
        try:
            with DeviceClient(path, timeout=5.0) as client:
                entries.append((path, client.call("status"), None))
        except ServiceError as err:
            entries.append((path, None, str(err)))
    return entries


def status_command(args: argparse.Namespace, out: Output) -> int:
    from .status_view import status_json, status_view  # rich: not in a daemon's start-up

    if args.interval <= 0:
        raise UsageError("--interval must be positive.")
    entries = fetch(args.device)
    failed = any(status is None for _, status, _ in entries)
    if args.json:
        out.json([status_json(status) if status is not None else
                  {"socket": path, "error": error} for path, status, error in entries])
        return Exit.REFUSED if failed else Exit.OK
    if args.once or not out.console.is_terminal:
        out.console.print(status_view(entries))
        return Exit.REFUSED if failed else Exit.OK
    try:
        live_status(args.device, args.interval, out.console, entries)
    except KeyboardInterrupt:
        pass
    return Exit.OK


def live_status(paths: list[str], interval: float, console: Any,
                entries: list[tuple[str, dict[str, Any] | None, str | None]]) -> None:
    """The dashboard on the terminal's alternate screen until q: refreshed every
    ``interval`` seconds and at once on a key."""
    from rich.live import Live

    from .keyboard import cbreak_keys
    from .status_dashboard import dashboard
    from .status_history import History

    history = History()
    selected = 0
    with cbreak_keys() as read_key, Live(console=console, screen=True, auto_refresh=False,
                                         vertical_overflow="crop") as live:
        while True:
            for path, status, _ in entries:
                if status is not None:
                    history.record(path, status)
            deadline = time.monotonic() + interval
            while True:
                live.update(dashboard(entries, history, selected, console.size.height),
                            refresh=True)
                key = read_key(deadline - time.monotonic())
                if key is None:
                    break
                if key in ("q", "Q"):
                    return
                selected = next_device(key, selected, len(entries))
            entries = fetch(paths)


def next_device(key: str, selected: int, count: int) -> int:
    """The device a key shows: Tab the next, Shift-Tab the previous, a digit that one."""
    if key == "\t":
        return (selected + 1) % count
    if key == "\x1b[Z":
        return (selected - 1) % count
    if key.isdigit() and 1 <= int(key) <= count:
        return int(key) - 1
    return selected
