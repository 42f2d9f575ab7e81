"""``profiles``: the capability profiles a device can be started with."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from offload.caps import list_profiles, load_profile
from offload.caps.profiles import HOST_KERNEL, ProfileError, capabilities_to_mapping
from offload.helpers.prototypes import helper_name

from .exits import Exit
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter


def register(sub: Any) -> None:
    profiles = sub.add_parser(
        "profiles", help="list capability profiles, or show one", formatter_class=RAW,
        description="Capability profiles: ISA version, helpers, map and program types, limits "
                    "and virtio features a device offers. host-kernel is probed from the "
                    "running kernel.",
        epilog="examples:\n  offload-migrate profiles\n  offload-migrate profiles show smartnic\n"
               "  offload-migrate profiles show full --json")
    profiles.add_argument("--json", action="store_true", help="print as JSON")
    psub = profiles.add_subparsers(dest="profiles_command", metavar="COMMAND")
    show = psub.add_parser("show", help="everything one profile offers",
                           epilog="example:\n  offload-migrate profiles show smartnic",
                           formatter_class=RAW)
    show.add_argument("name", help="profile name")
    show.add_argument("--json", action="store_true", help="print as JSON")
    profiles.set_defaults(handler=profiles_command)


def profiles_command(args: argparse.Namespace, out: Output) -> int:
    if args.profiles_command == "show":
        data = capabilities_to_mapping(load_profile(args.name))
        data["helper_names"] = {str(h): helper_name(h) for h in data["helpers"]}
        if args.json:
            out.json(data)
        else:
            out.console.print(profile_view(data))
        return Exit.OK
    rows: list[dict[str, Any]] = []
    for name in list_profiles():
        try:
            caps = load_profile(name)
            rows.append({"name": name, "description": caps.description,
                         "isa_version": caps.isa_version, "helpers": len(caps.helpers),
                         "map_types": len(caps.map_types),
                         "max_map_entries": caps.limits.max_map_entries, "available": True})
        except ProfileError as err:
            rows.append({"name": name, "description": str(err), "available": False})
    if args.json:
        out.json(rows)
        return Exit.OK
    table = Table(title="capability profiles")
    for column in ("name", "ISA", "helpers", "map types", "max entries", "description"):
        table.add_column(column)
    for row in rows:
        if not row["available"]:
            table.add_row(row["name"], "-", "-", "-", "-",
                          Text(row["description"], style="dim"))
            continue
        table.add_row(row["name"], f"v{row['isa_version']}", str(row["helpers"]),
                      str(row["map_types"]), f"{row['max_map_entries']:,}", row["description"])
    out.console.print(table)
    if HOST_KERNEL in (r["name"] for r in rows):
        out.console.print(Text(f"{HOST_KERNEL} is probed from the running kernel.", style="dim"))
    return Exit.OK


def profile_view(data: dict[str, Any]) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("profile", f"{data['name']}: {data['description']}")
    head.add_row("ISA", f"v{data['isa_version']}")
    head.add_row("program types", " ".join(data["prog_types"]))
    head.add_row("map types", " ".join(data["map_types"]))
    head.add_row("helpers", ", ".join(f"{data['helper_names'][str(h)]}#{h}"
                                      for h in data["helpers"]))
    head.add_row("features", " ".join(str(f) for f in data["features"]))
    head.add_row("checks XDP actions", "yes" if data["check_xdp_action"] else "no")
    limits = Table(title="limits", title_justify="left")
    limits.add_column("limit")
    limits.add_column("value", justify="right")
    for key, value in data["limits"].items():
        limits.add_row(key, f"{value:,}")
    return Group(head, limits)
