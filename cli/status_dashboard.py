"""The live status view: one device at a time on a terminal as small as 80x24, the others a
key away - per program the rate of each verdict over time as sparklines, per map its fill
over time, and while a migration runs its phase, round, dirty entries per round, expected
downtime and bytes moved.

Every part is a list of one-line ``Text``s (no wrapping: a long line ends in an ellipsis), so
the view can count its rows and cut what does not fit; :func:`dashboard` puts them together
for a given height. The data are ``status`` answers and the series cli/status_history.py
keeps; nothing here talks to a daemon.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Group
from rich.text import Text

from .sparkline import rate_text, size_text, sparkline
from .status_history import DeviceHistory, History
from .status_view import ACTION_STYLES

SPARK = 36  # columns of a rate sparkline (80 columns: label, sparkline, rate, counter)
FILL_SPARK = 20
SHOWN_ACTIONS = ("pass", "drop", "tx", "redirect")  # always; aborted once it happened
KEYS = "Tab/1-9 device  q quit"

Entry = tuple[str, "dict[str, Any] | None", "str | None"]


def line(*parts: tuple[str, str] | str) -> Text:
    """One row that never wraps."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        else:
            text.append(*part)
    return text


def tabs(entries: list[Entry], selected: int) -> Text:
    """The devices, the shown one highlighted, and the keys."""
    row = line()
    for n, (path, status, _) in enumerate(entries):
        name = status["name"] if status is not None else os.path.basename(path) or path
        style = "reverse bold" if n == selected else "bold" if status is not None else "red"
        row.append(f" {n + 1} {name} ", style=style)
        row.append(" ")
    row.append(f" {KEYS}", style="dim")
    return row


def device_header(status: dict[str, Any]) -> list[Text]:
    engine = status.get("engine")
    backend = status["backend"] + (f"/{engine}" if engine not in (None, status["backend"])
                                   else "")
    head = line((status["name"], "bold"),
                f"  {status['profile']} (ISA v{status.get('isa_version', '?')})  {backend}",
                (f"  up {status.get('uptime', 0):.0f}s", "dim"))
    traffic = status.get("traffic")
    if traffic:
        head.append(f"  traffic {traffic['kind']} {traffic['rate']:.0f}/s", style="dim")
    features = [f.removeprefix("VIRTIO_NET_F_").removeprefix("VIRTIO_F_")
                for f in status.get("features", [])]
    rows = [head, line(("features ", "bold"), (" ".join(features) or "none negotiated",
                                               "cyan"))]
    ports = port_row(status.get("interfaces") or [])
    return rows + ([ports] if ports is not None else [])


def port_row(interfaces: list[dict[str, Any]]) -> Text | None:
    """The device's ports on one row: ifindex, name, link, frames into and out of the guest."""
    if not interfaces:
        return None
    row = line(("ports", "bold"))
    for port in interfaces:
        counters = port.get("counters", {})
        up = port.get("connected")
        row.append(f"  {port['ifindex']}:{port['name']} ")
        row.append("up" if up else "down", style="green" if up else "red")
        row.append(f" rx {counters.get('rx_to_guest', 0):,} tx {counters.get('tx_from_guest', 0):,}",
                   style="dim")
    row.truncate(80, overflow="ellipsis")
    return row


def program_rows(prog: dict[str, Any], history: DeviceHistory) -> list[Text]:
    """The program's name line, then one row per verdict: sparkline, last rate, count."""
    title = line((f"{prog['name']}", "bold"), (f" #{prog['id']} {prog['type']}", "dim"))
    if prog.get("attach"):
        title.append(f"  {prog['attach']}", style="green")
    rows = [title]
    counters = prog.get("counters", {})
    series = history.rates.get(int(prog["id"]), {})
    for action in (*SHOWN_ACTIONS, "aborted"):
        values = list(series.get(action, ()))
        if action == "aborted" and not counters.get(action) and not any(values):
            continue
        style = ACTION_STYLES[action]
        rows.append(line(f"  {action:<9}", (sparkline(values, SPARK), style),
                         f" {rate_text(values[-1] if values else 0.0):>7}",
                         (f" {counters.get(action, 0):>13,}", "dim")))
    return rows


def map_row(entry: dict[str, Any], history: DeviceHistory) -> Text:
    fill = list(history.fill.get(int(entry["id"]), ()))
    events = entry.get("events")
    if events:
        amount = f"{events['pending']:,} events"
        of = f"{size_text(events['bytes'])}/{size_text(events['size'])}"
    else:
        amount = f"{entry['entries']:,}"
        of = f"/{entry['max_entries']:,}"
    percent = 100 * fill[-1] if fill else 0.0
    return line(f"  {entry['name'][:16]:<16} {entry['type'][:13]:<13} ",
                (sparkline(fill, FILL_SPARK, top=1.0), "blue"),
                f" {percent:5.1f}%  ", (f"{amount}{of}", "dim"))


def migration_rows(migration: dict[str, Any] | None) -> list[Text]:
    """Phase and round, expected downtime, bytes moved; the dirty entries of each round after
    the full copy as a small chart (their figures beside it)."""
    if not migration:
        return []
    state = migration.get("state", "")
    style = {"completed": "bold green", "failed": "bold red", "refused": "bold red",
             "cancelled": "bold red", "aborted": "bold red", "undone": "bold red"}.get(
                 state, "bold yellow")
    arrow = "->" if migration.get("role", "source") == "source" else "<-"
    head = line((f"migration {state}", style), f" {arrow} {migration.get('peer', '')}")
    if migration.get("phase"):
        head.append(f"  {migration['phase']}")
    head.append(f"  round {migration.get('round', 0)}")
    detail = line("  ")
    report = migration.get("report") or {}
    downtime = report.get("downtime")
    if downtime is not None:
        detail.append(f"downtime {downtime * 1000:.1f} ms  ")
    elif migration.get("estimate") is not None:
        detail.append(f"expected downtime {migration['estimate'] * 1000:.1f} ms  ")
    detail.append(f"moved {size_text(float(migration.get('done', 0) or 0))} in "
                  f"{migration.get('elapsed', 0):.1f}s", style="dim")
    rows = [head, detail]
    rounds = migration.get("rounds") or []
    if rounds:
        dirty = [int(r[1]) for r in rounds if r[0] > 0]
        copy = next((int(r[1]) for r in rounds if r[0] == 0), None)
        chart = line("  dirty/round ", (sparkline(dirty, 16) if dirty else "-", "yellow"),
                     (" " + " ".join(f"{d:,}" for d in dirty[-8:]), "dim"))
        if copy is not None:
            chart.append(f"  full copy {copy:,}", style="dim")
        rows.append(chart)
    if migration.get("reason"):
        rows.append(line(("  " + str(migration["reason"]), "red")))
    return rows


def device_rows(status: dict[str, Any], history: DeviceHistory, budget: int) -> list[Text]:
    """One device in at most ``budget`` rows: header, migration, programs, maps; what does
    not fit is counted on a last row."""
    fixed = device_header(status) + migration_rows(status.get("migration"))
    room = budget - len(fixed)
    programs = [program_rows(p, history) for p in status.get("programs", [])]
    maps = [map_row(m, history) for m in status.get("maps", [])]
    body: list[Text] = []
    if not programs:
        body.append(line(("no program loaded", "dim")))
    maps_room = min(len(maps) + 1, max(2, room // 3)) if maps else 0
    shown_programs = 0
    for rows in programs:
        more = len(programs) - shown_programs - 1
        if len(body) + len(rows) + (1 if more else 0) > room - maps_room:
            break
        body.extend(rows)
        shown_programs += 1
    if shown_programs < len(programs):
        body.append(line((f"... {len(programs) - shown_programs} more program(s)", "dim")))
    left = room - len(body)
    if maps and left >= 2:
        body.append(line(("maps", "bold"), ("  name             type          fill over time",
                                            "dim")))
        if len(maps) <= left - 1:
            body.extend(maps)
        else:
            body.extend(maps[:left - 2])
            body.append(line((f"  ... {len(maps) - (left - 2)} more map(s)", "dim")))
    return (fixed + body)[:budget]


def dashboard(entries: list[Entry], history: History, selected: int,
              height: int = 24) -> Group:
    """The view for ``height`` rows: the device tabs, then the selected device."""
    selected = selected % max(len(entries), 1)
    rows = [tabs(entries, selected)]
    if entries:
        path, status, error = entries[selected]
        if status is None:
            rows.append(line((f"{path}: {error or 'no answer'}", "red")))
        else:
            rows.extend(device_rows(status, history.device(path), height - 1))
    return Group(*rows[:height])
