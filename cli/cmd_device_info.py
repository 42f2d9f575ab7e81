"""``device list`` and ``device show``: which daemons answer, and what one device is."""

from __future__ import annotations

import argparse
from typing import Any

from service.client import DeviceClient
from service.errors import ServiceError

from . import device_option
from .bpf_words import print_json
from .exits import Exit
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter


def register_verbs(dsub: Any) -> None:
    """``list`` and ``show`` under ``device`` (cmd_device registers the command)."""
    listing = dsub.add_parser(
        "list", help="the devices behind control sockets: name, profile, objects",
        formatter_class=RAW,
        description="Ask each daemon for its name, profile, programs, maps and migration "
                    "state; a socket nobody answers is listed with why (exit 1).",
        epilog="examples:\n"
               "  offload-migrate device list --device /tmp/a.sock --device /tmp/b.sock\n"
               "  OFFLOAD_MIGRATE_DEVICE=/tmp/a.sock offload-migrate device list -j")
    device_option.add(listing, several=True)
    listing.add_argument("--json", action="store_true", help="print JSON (also -j, -p)")
    listing.set_defaults(handler=list_command)
    show = dsub.add_parser(
        "show", help="one device: profile, engine, features, memory, identity, ports",
        formatter_class=RAW, description="What one device is and holds.",
        epilog="examples:\n  offload-migrate device show --device /tmp/a.sock\n"
               "  offload-migrate device show -p")
    device_option.add(show)
    show.add_argument("--json", action="store_true", help="print JSON (also -j, -p)")
    show.set_defaults(handler=show_command)


def _summary(socket: str, status: dict[str, Any]) -> dict[str, Any]:
    attached = [p["name"] for p in status.get("programs", []) if p.get("attach")]
    migration = status.get("migration")
    return {"socket": socket, "name": status["name"], "profile": status["profile"],
            "backend": status["backend"], "programs": len(status.get("programs", [])),
            "maps": len(status.get("maps", [])), "attached": attached[0] if attached else None,
            "migration": None if migration is None else migration.get("state")}


def list_command(args: argparse.Namespace, out: Output) -> int:
    rows: list[dict[str, Any]] = []
    for socket in args.device:
        try:
            with DeviceClient(socket, timeout=5.0) as client:
                rows.append(_summary(socket, client.call("status")))
        except ServiceError as err:
            rows.append({"socket": socket, "error": str(err)})
    failed = any("error" in row for row in rows)
    if args.json:
        print_json(rows, args.pretty)
    else:
        for row in rows:
            if "error" in row:
                out.console.print(f"{row['socket']}: {row['error']}", highlight=False,
                                  markup=False, soft_wrap=True)
                continue
            attached = f"  attached {row['attached']}" if row["attached"] else ""
            migrating = f"  migration {row['migration']}" if row["migration"] else ""
            out.console.print(f"{row['name']}  profile {row['profile']}  socket {row['socket']}"
                              f"  programs {row['programs']}  maps {row['maps']}{attached}"
                              f"{migrating}", highlight=False, markup=False, soft_wrap=True)
    return Exit.REFUSED if failed else Exit.OK


def show_command(args: argparse.Namespace, out: Output) -> int:
    with DeviceClient(args.device, timeout=5.0) as client:
        status = client.call("status")
    shown = {key: status[key] for key in ("name", "profile", "description", "backend",
                                          "engine", "isa_version", "features", "uptime",
                                          "memory", "identity", "ports")}
    shown["interfaces"] = status.get("interfaces") or []
    shown["socket"] = args.device
    shown["programs"] = [{"id": p["id"], "name": p["name"], "attached": p.get("attach")}
                         for p in status.get("programs", [])]
    shown["maps"] = [{"id": m["id"], "name": m["name"], "type": m["type"].lower()}
                     for m in status.get("maps", [])]
    if args.json:
        print_json(shown, args.pretty)
        return Exit.OK
    for key, value in shown.items():
        if key == "interfaces":
            for port in value:
                counters = "  ".join(f"{k} {v}" for k, v in port["counters"].items())
                link = "up" if port["connected"] else "down"
                out.console.print(f"{'port':<12} {port['ifindex']} {port['name']} ({link}, "
                                  f"{port['served']}, wire {port['wire']})  {counters}",
                                  highlight=False, markup=False, soft_wrap=True)
            continue
        if isinstance(value, list):
            value = ", ".join(v.get("name", str(v)) if isinstance(v, dict) else str(v)
                              for v in value) or "-"
        elif isinstance(value, dict):
            value = "  ".join(f"{k} {v}" for k, v in value.items())
        out.console.print(f"{key:<12} {value}", highlight=False, markup=False, soft_wrap=True)
    return Exit.OK
