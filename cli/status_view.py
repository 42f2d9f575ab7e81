"""The status view: devices, negotiated features, programs with per-action counters and rates,
maps with fill levels (event streams: records waiting and lost), migration progress - rich
renderables built from ``status`` data (the control socket's answer), so a live display, a
single render and tests draw the same thing."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

ACTIONS = ("pass", "drop", "tx", "redirect", "aborted")
ACTION_STYLES = {"pass": "green", "drop": "red", "tx": "cyan", "redirect": "magenta",
                 "aborted": "bold red"}
BAR_WIDTH = 16


def _count(counters: dict[str, int], rates: dict[str, float], action: str) -> Text:
    text = Text(f"{counters.get(action, 0):,}", style=ACTION_STYLES[action])
    rate = rates.get(action)
    if rate:
        text.append(f"\n{rate:,.0f}/s", style="dim")
    return text


def programs_table(status: dict[str, Any]) -> Table:
    table = Table(title="programs", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("id", justify="right")
    table.add_column("program")
    for action in ACTIONS:
        table.add_column(action, justify="right")
    for prog in status.get("programs", []):
        counters, rates = prog.get("counters", {}), prog.get("rates", {})
        label = Text(prog["name"], style="bold")
        label.append(f"\n{prog['type']}, {prog.get('insns', '?')} insns", style="dim")
        if prog.get("attach"):
            label.append(f"\n{prog['attach']}", style="dim")
        table.add_row(str(prog["id"]), label,
                      *(_count(counters, rates, action) for action in ACTIONS))
    if not status.get("programs"):
        table.add_row("-", Text("no program loaded", style="dim"), *[""] * len(ACTIONS))
    return table


def fill_bar(entries: int, max_entries: int) -> RenderableType:
    table = Table.grid(padding=(0, 1))
    table.add_row(ProgressBar(total=max(max_entries, 1), completed=min(entries, max_entries),
                              width=BAR_WIDTH),
                  Text(f"{100 * entries / max(max_entries, 1):5.1f}%"))
    return table


def maps_table(status: dict[str, Any]) -> Table:
    table = Table(title="maps", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("id", justify="right")
    table.add_column("name")
    table.add_column("type")
    table.add_column("entries", justify="right")
    table.add_column("max", justify="right")
    table.add_column("fill")
    for m in status.get("maps", []):
        events = m.get("events")
        if events:  # an event stream: records waiting (and lost), bytes held of its size
            waiting = Text(f"{events['pending']:,} events")
            if events.get("lost"):
                waiting.append(f"\n{events['lost']:,} lost", style="red")
            table.add_row(str(m["id"]), m["name"], m["type"], waiting,
                          f"{events['size']:,} B", fill_bar(events["bytes"], events["size"]))
            continue
        table.add_row(str(m["id"]), m["name"], m["type"], f"{m['entries']:,}",
                      f"{m['max_entries']:,}", fill_bar(m["entries"], m["max_entries"]))
    if not status.get("maps"):
        table.add_row("-", Text("no map", style="dim"), "", "", "", "")
    return table


def migration_line(migration: dict[str, Any] | None) -> RenderableType | None:
    """The migration's state; a bar when its total is known, its byte count otherwise."""
    if not migration:
        return None
    state = migration.get("state", "")
    style = {"completed": "bold green", "failed": "bold red", "refused": "bold red"}.get(
        state, "bold yellow")
    arrow = "->" if migration.get("role", "source") == "source" else "<-"
    grid = Table.grid(padding=(0, 1))
    label = Text(f"migration {state}", style=style)
    label.append(f" {arrow} {migration.get('peer', '')}".rstrip(), style="")
    done = int(migration.get("done", 0) or 0)
    unit = migration.get("unit", "bytes")
    detail = f"round {migration.get('round', 0)} · "
    if migration.get("total"):
        total = max(int(migration["total"]), 1)
        grid.add_row(label, ProgressBar(total=total, completed=min(done, total), width=24),
                     Text(f"{detail}{min(done, total):,}/{total:,} {unit}"))
        return grid
    report = migration.get("report") or {}
    text = f"{detail}{done:,} {unit}, {migration.get('elapsed', 0):.1f} s"
    if report.get("downtime") is not None:
        text += f", downtime {report['downtime'] * 1000:.1f} ms"
    if migration.get("reason"):
        text += f" - {migration['reason']}"
    grid.add_row(label, Text(text))
    return grid


def header(status: dict[str, Any]) -> Text:
    text = Text()
    text.append(status["name"], style="bold")
    text.append(f"  profile {status['profile']} (ISA v{status.get('isa_version', '?')})")
    text.append(f"  backend {status['backend']}")
    if status.get("engine") not in (None, status["backend"]):
        text.append(f"/{status['engine']}")
    text.append(f"  up {status.get('uptime', 0):.0f}s", style="dim")
    traffic = status.get("traffic")
    if traffic:
        text.append(f"  traffic {traffic['kind']} {traffic['rate']:.0f}/s, {traffic['sent']:,} "
                    "sent", style="dim")
    return text


def features_text(status: dict[str, Any]) -> Text:
    text = Text("features ", style="bold")
    text.append(" ".join(status.get("features", [])) or "none negotiated", style="cyan")
    return text


def device_panel(status: dict[str, Any]) -> Panel:
    parts: list[RenderableType] = [header(status), features_text(status),
                                   programs_table(status), maps_table(status)]
    migration = migration_line(status.get("migration"))
    if migration is not None:
        parts.append(migration)
    ports = status.get("ports") or {}
    if ports:
        parts.append(Text("ports " + "  ".join(f"{k} {v:,}" for k, v in ports.items()),
                          style="dim"))
    for port in status.get("interfaces") or []:
        link = "up" if port.get("connected") else "down"
        counters = "  ".join(f"{k} {v:,}" for k, v in (port.get("counters") or {}).items())
        parts.append(Text(f"port {port['ifindex']} {port['name']} ({link}) {counters}",
                          style="dim"))
    return Panel(Group(*parts), title=f"device {status['name']}", title_align="left")


def unreachable_panel(path: str, reason: str) -> Panel:
    return Panel(Text(reason, style="red"), title=f"device at {path}", title_align="left",
                 border_style="red")


def status_view(entries: list[tuple[str, dict[str, Any] | None, str | None]]) -> Group:
    """One panel per (path, status or None, error or None)."""
    return Group(*(device_panel(status) if status is not None
                   else unreachable_panel(path, error or "no answer")
                   for path, status, error in entries))


def status_json(status: dict[str, Any]) -> dict[str, Any]:
    """What ``status --json`` promises per device (the daemon's status, counters trimmed)."""
    return {
        "name": status["name"], "profile": status["profile"], "backend": status["backend"],
        "engine": status.get("engine"), "features": status.get("features", []),
        "programs": [{"id": p["id"], "name": p["name"], "type": p["type"],
                      "attach": p.get("attach"),
                      "counters": {a: p["counters"].get(a, 0) for a in ACTIONS},
                      "bytes": p["counters"].get("bytes", 0), "rates": p.get("rates", {})}
                     for p in status.get("programs", [])],
        "maps": [{k: m[k] for k in ("id", "name", "type", "entries", "max_entries", "events")
                  if k in m} for m in status.get("maps", [])],
        "ports": status.get("ports", {}), "traffic": status.get("traffic"),
        "migration": status.get("migration"), "interfaces": status.get("interfaces", []),
    }
