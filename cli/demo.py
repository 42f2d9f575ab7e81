"""``demo``: the whole story on one screen, self-contained, in a few seconds.

Two devices in this process with different capability profiles (full, and a constrained
target: smartnic by default), the v4 build of the firewall fixture loaded through the guest
driver on the first, a blocklist, synthetic traffic at a steady rate, a checkpoint sealed
(Ed25519 signature and AES-256-GCM, keys made for the occasion) into a temporary file, the
restore onto the target with its compatibility report (the program lowered from ISA v4 to the
target's v3: REWRITABLE), the status view of both, and the same frames through both devices
giving the same verdicts. Exit 0 only when they do.
"""

from __future__ import annotations

import argparse
import ipaddress
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from migrate import store
from migrate.codec import decode, encode
from migrate.compat import Outcome
from migrate.keys import (
    generate_signing_key,
    generate_symmetric_key,
    load_private_key,
    load_public_key,
)
from migrate.plan_view import plan_table
from migrate.seal import Seal, Trust
from service.device_service import DeviceService, PlanRefused
from service.errors import Refused
from service.methods import call
from service.plan_data import plan_from_dict
from service.traffic import Traffic, synthetic_frames

from .cmd_snapshot import describe_seal
from .exits import Exit, UsageError
from .output import Output
from .status_view import status_view

RAW = argparse.RawDescriptionHelpFormatter
#: the demo's object ships inside the package (a copy of fixtures/xdp/xdp_firewall_v4.o, which
#: a test keeps equal), so an installed command finds it from any folder
DEFAULT_OBJECT = Path(__file__).resolve().parent / "demo_objects" / "xdp_firewall_v4.o"
BLOCKED_V4 = ("10.0.0.3", "10.0.1.7", "10.0.2.11", "10.0.3.16")
BLOCKED_V6 = ("2001:db8::0:3", "2001:db8::0:9")
TRAFFIC_RATE = 4000.0  # frames per second while the source runs
TRAFFIC_SECONDS = 0.6
CHECK_FRAMES = 500


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="two devices, a fixture, traffic, save, restore onto a smaller device",
        formatter_class=RAW,
        description="Self-contained tour: a full device and a constrained one in this process, "
                    "the v4 firewall loaded and fed synthetic traffic, a sealed snapshot, the "
                    "restore onto the constrained device with its compatibility report, the "
                    "status view, and the same frames giving the same verdicts on both.",
        epilog="examples:\n  offload-migrate demo\n  offload-migrate demo --source smartnic "
               "--target full\n  offload-migrate demo --target legacy-nic   # refused: the "
               "plan shows why (exit 1)")
    parser.add_argument("--source", default="full", help="source profile (default: full)")
    parser.add_argument("--target", default="smartnic",
                        help="target profile (default: smartnic)")
    parser.add_argument("--object", default=str(DEFAULT_OBJECT),
                        help="XDP object to load (default: the v4 firewall fixture)")
    parser.add_argument("--program", default="xdp_firewall", help="program to attach")
    parser.set_defaults(handler=demo_command)


def _run_traffic(service: DeviceService, seconds: float, rate: float) -> int:
    """Synthetic frames at ``rate`` for ``seconds`` of real time, as the daemon sends them."""
    service.traffic = Traffic("synthetic", synthetic_frames(seed=3), rate)
    deadline = time.monotonic() + seconds
    service.tick()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        service.tick()
    sent = service.traffic.sent
    service.traffic = None
    return sent


def _block(service: DeviceService) -> None:
    for address in BLOCKED_V4:
        call(service, "map.update", {"map": "blocked_v4",
                                     "key": ipaddress.IPv4Address(address).packed,
                                     "value": bytes(8)})
    for address in BLOCKED_V6:
        call(service, "map.update", {"map": "blocked_v6",
                                     "key": ipaddress.IPv6Address(address).packed,
                                     "value": bytes(8)})


def demo_command(args: argparse.Namespace, out: Output) -> int:
    started = time.monotonic()
    console = out.console
    path = Path(args.object)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the demo object {path} ({exc.strerror or exc}); run the "
                         "demo from a checkout of the repository or pass --object.") from None

    console.print(Rule("1. two devices"))
    a = DeviceService("A", args.source, seed=7)
    b = DeviceService("B", args.target, seed=7)
    for service in (a, b):
        caps = service.device.caps
        console.print(f"device [bold]{service.device.name}[/bold]: profile {caps.name} - "
                      f"{caps.description}", highlight=False)

    console.print(Rule(f"2. load {path.name} on A"))
    loaded = call(a, "load", {"object": data, "name": path.name.split(".")[0],
                              "program": args.program, "attach": True})
    _block(a)
    console.print(f"maps {', '.join(loaded['maps'])}; program {args.program} attached; "
                  f"{len(BLOCKED_V4)} IPv4 and {len(BLOCKED_V6)} IPv6 sources blocked",
                  highlight=False)

    console.print(Rule("3. traffic"))
    sent = _run_traffic(a, TRAFFIC_SECONDS, TRAFFIC_RATE)
    console.print(f"{sent:,} synthetic frames (IPv4/IPv6, TCP/UDP/ICMP) through A",
                  highlight=False)

    with tempfile.TemporaryDirectory(prefix="offload-demo-") as tmp:
        console.print(Rule("4. save a sealed snapshot"))
        key, secret = Path(tmp) / "demo.key", Path(tmp) / "demo.aes"
        generate_signing_key(key)
        encryption = generate_symmetric_key(secret)
        snap_path = Path(tmp) / "A.snap"
        payload, stamp = a.checkpoint_bytes()
        info = store.save(snap_path, decode(payload), Seal(
            signing_key=load_private_key(key), encryption_key=encryption), source=stamp)
        console.print(f"{snap_path.name}: {snap_path.stat().st_size:,} bytes, sealed with "
                      f"{describe_seal(info)}", highlight=False)

        console.print(Rule(f"5. restore onto B ({args.target})"))
        trust = Trust((load_public_key(f"{key}.pub"),), decryption_key=encryption,
                      require_signature=True)
        snapshot, opened = store.load(snap_path, trust)
        console.print(f"seal verified: signature by key {opened.auth_key_id}, decrypted",
                      highlight=False)
        try:
            result = b.restore_payload(encode(snapshot), source=opened.source,
                                       authenticated=opened.authenticated, no_rollback=True)
        except PlanRefused as err:  # the plan's table says why, once
            if err.plan is None:
                raise
            console.print(plan_table(plan_from_dict(err.plan)))
            raise Refused(err.errno, f"{args.target} cannot take the snapshot of A (the plan "
                                     "above says why); B stays empty.") from None
    plan = plan_from_dict(result.plan)
    console.print(plan_table(plan))
    rewritten = [r for r in plan.reports if r.outcome == Outcome.REWRITABLE]
    console.print(f"restored {len(result.maps)} maps with {result.entries:,} entries; "
                  f"{result.attached} attached on B", highlight=False)

    console.print(Rule("6. the same frames through both devices"))
    frames = [frame for frame, _ in zip(synthetic_frames(seed=11), range(CHECK_FRAMES))]
    verdicts_a = call(a, "inject", {"frames": frames})["actions"]
    verdicts_b = call(b, "inject", {"frames": frames})["actions"]
    same = verdicts_a == verdicts_b
    table = Table(title=f"verdicts for {len(frames)} frames")
    table.add_column("action")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    count_a, count_b = Counter(verdicts_a), Counter(verdicts_b)
    for action in sorted(set(count_a) | set(count_b)):
        table.add_row(action, str(count_a[action]), str(count_b[action]))
    console.print(table)
    for service in (a, b):
        service.tick()

    console.print(Rule("7. status"))
    console.print(status_view([(s.device.name, call(s, "status"), None) for s in (a, b)]))

    elapsed = time.monotonic() - started
    if same and result.attached:
        kind = ", ".join(f"{r.kind} {r.name} rewritten" for r in rewritten) or "no rewrite"
        console.print(Text(f"same verdicts on A ({args.source}) and B ({args.target}) for every "
                           f"frame ({kind}); demo done in {elapsed:.1f} s", style="bold green"))
        return Exit.OK
    out.error("the devices disagree on some frames" if not same else "nothing was attached "
              "on the target", label="refused")
    return Exit.REFUSED
