"""What ``inspect`` and ``diff`` show of snapshot files: plain data first (``--json``), then
rich renderables built from it."""

from __future__ import annotations

import datetime
import re
from functools import partial
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from migrate.seal import SealInfo
from migrate.snapshot import LINK_MAP_TYPES, MapState, Snapshot
from offload.isa import listing
from offload.uapi import XdpAction
from offload.virtio.features import names as feature_names


def _when(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).isoformat(
        timespec="seconds")


def seal_dict(info: SealInfo) -> dict[str, Any]:
    """The seal as JSON; ``source`` is the signed stamp (nil for container version 1 and files
    sealed without one), ``created`` the creation time freshness checks use."""
    return {"container_version": info.container_version, "auth": str(info.auth),
            "auth_key_id": info.auth_key_id, "authenticated": info.authenticated,
            "cipher": str(info.cipher), "cipher_key_id": info.cipher_key_id,
            "created": _when(info.created_ns), "created_ns": info.created_ns,
            "source": info.source.as_dict() if info.source is not None else None,
            "payload_length": info.payload_length, "sha256": info.sha256.hex()}


def source_line(seal: dict[str, Any]) -> str:
    """``device A (id ...), generation 7`` or why there is none."""
    source = seal["source"]
    if source is None:
        return "no source stamp (no generation: freshness options refuse it)"
    trust = "" if seal["authenticated"] else ", not verified"
    return (f"device {source['name']} (id {source['device_id']}), generation "
            f"{source['generation']}{trust}")


_MAP_LOAD = re.compile(r"\b(map_fd|map_value)\(\d+\)")


def _named_maps(text: str, refs: Any) -> list[str]:
    """Listing lines whose map loads name their map: a snapshot keeps programs with the
    map references unbound (immediate 0) and the map by name beside them."""
    names = {ref.slot: ref.map_name for ref in refs}
    lines = []
    for line in text.splitlines():
        head = line.split(":", 1)[0].strip()
        name = names.get(int(head)) if head.isdigit() else None
        if name:  # a function, not a template: a name is text, never a backreference
            line = _MAP_LOAD.sub(partial(_map_load, name), line)
        lines.append(line)
    return lines


def _map_load(name: str, match: re.Match[str]) -> str:
    return f"{match.group(1)}({name})"


def inspect_dict(snapshot: Snapshot, info: SealInfo) -> dict[str, Any]:
    caps = snapshot.capabilities
    programs = []
    for prog in snapshot.programs:
        spec = prog.spec
        source = {li.slot: li.text for li in spec.line_info if li.text}
        programs.append({
            "name": prog.name, "type": spec.type.name, "section": spec.section,
            "license": spec.license, "insns": sum(i.width for i in spec.instructions),
            "attach": str(prog.attach) if prog.attach else None,
            "map_refs": sorted({ref.map_name for ref in spec.map_refs}),
            "verifier": {"insns_processed": prog.verifier.insns_processed,
                         "states": prog.verifier.total_states,
                         "peak_states": prog.verifier.peak_states},
            "counters": {XdpAction(c.action).name.lower(): c.packets for c in prog.counters},
            "listing": _named_maps(listing(spec.instructions), spec.map_refs),
            "source_listing": _named_maps(listing(spec.instructions, source_lines=source),
                                          spec.map_refs) if source else None})
    return {
        "device": snapshot.device, "format_version": snapshot.format_version,
        "tool_version": snapshot.tool_version, "created": _when(snapshot.created_ns),
        "cpus": snapshot.cpus,
        "source_profile": {"name": caps.name, "isa_version": caps.isa_version,
                           "description": caps.description},
        "features": feature_names(snapshot.features), "seal": seal_dict(info),
        "programs": programs,
        "maps": [{"name": m.name, "type": m.spec.type.name, "key_size": m.spec.key_size,
                  "value_size": m.spec.value_size, "max_entries": m.spec.max_entries,
                  "flags": m.spec.flags, "entries": m.entry_count, "frozen": m.frozen,
                  "links": m.spec.type in LINK_MAP_TYPES} for m in snapshot.maps],
        "counters": dict(snapshot.counters),
        "samples": {"frames": len(snapshot.samples),
                    "bytes": sum(len(f) for f in snapshot.samples),
                    "first": [f.hex() for f in snapshot.samples[:3]]},
    }


def _sample_line(samples: dict[str, Any] | None) -> str:
    if not samples or not samples["frames"]:
        return "none (save --sample N keeps recent frames for restore --prove)"
    return f"{samples['frames']:,} frames, {samples['bytes']:,} bytes (for restore --prove)"


def inspect_view(data: dict[str, Any], *, disassembly: bool = True) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    prof = data["source_profile"]
    seal = data["seal"]
    auth = seal["auth"] if seal["auth"] == "none" else \
        f"{seal['auth']} (key {seal['auth_key_id']}, " \
        f"{'verified' if seal['authenticated'] else 'not verified: no trusted key given'})"
    cipher = seal["cipher"] if seal["cipher"] == "none" else \
        f"{seal['cipher']} (key {seal['cipher_key_id']})"
    for label, value in (("device", data["device"]),
                         ("source profile", f"{prof['name']} (ISA v{prof['isa_version']})"),
                         ("created", data["created"]),
                         ("source", source_line(seal)),
                         ("container", f"version {seal['container_version']}"
                                       + (f", sealed {seal['created']}"
                                          if seal["container_version"] == 1 else "")),
                         ("format", f"snapshot format {data['format_version']}, written by "
                                    f"offload-migrate {data['tool_version']}"),
                         ("cpus", str(data["cpus"])), ("integrity", f"sha256 {seal['sha256']}"),
                         ("authentication", auth), ("encryption", cipher),
                         ("features", " ".join(data["features"]) or "none"),
                         ("sample", _sample_line(data.get("samples")))):
        head.add_row(label, Text(value))
    programs = Table(title="programs", title_justify="left")
    for column in ("name", "type", "insns", "attach", "maps", "verifier", "counters"):
        programs.add_column(column)
    for p in data["programs"]:
        v = p["verifier"]
        programs.add_row(p["name"], p["type"], str(p["insns"]), p["attach"] or "-",
                         ", ".join(p["map_refs"]) or "-",
                         f"{v['insns_processed']} insns, {v['states']} states",
                         " ".join(f"{k} {n:,}" for k, n in p["counters"].items()) or "-")
    maps = Table(title="maps", title_justify="left")
    for column in ("name", "type", "key", "value", "entries", "max", "flags"):
        maps.add_column(column, justify="right" if column in ("key", "value", "entries", "max")
                        else "left")
    for m in data["maps"]:
        flags = ", ".join(x for x in ("frozen" if m["frozen"] else "",
                                      "links" if m["links"] else "",
                                      f"{m['flags']:#x}" if m["flags"] else "") if x) or "-"
        maps.add_row(m["name"], m["type"], str(m["key_size"]), str(m["value_size"]),
                     f"{m['entries']:,}", f"{m['max_entries']:,}", flags)
    parts: list[RenderableType] = [Panel(head, title="snapshot", title_align="left"),
                                   programs, maps]
    if disassembly:
        for p in data["programs"]:
            lines = p["source_listing"] or p["listing"]
            parts.append(Panel(Text("\n".join(lines)), title=f"{p['name']} ({p['insns']} insns)",
                               title_align="left"))
    return Group(*parts)


# ------------------------------------------------------------------------------ diff
def _contents(state: MapState) -> dict[bytes, Any]:
    if state.spec.type in LINK_MAP_TYPES:
        return {link.key: link.target for link in state.links}
    out: dict[bytes, Any] = {}
    for key, value in state.entries or ():
        out[key] = value if isinstance(value, bytes) else b"".join(value)
    return out


def _attach(point: Any) -> Any:
    """Where a program is attached, apart from the interface (each device has its own)."""
    return None if point is None else (point.hook, point.mode, point.queue)


_SPEC_FIELDS = ("type", "key_size", "value_size", "max_entries", "flags", "inner")


def snapshot_diff(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: programs, maps, entries, features."""
    pa, pb = {p.name: p for p in a.programs}, {p.name: p for p in b.programs}
    changed_programs = []
    for name in sorted(pa.keys() & pb.keys()):
        x, y = pa[name].spec, pb[name].spec
        what = [label for label, differs in (
            ("bytecode", x.instructions != y.instructions),
            ("map references", x.map_refs != y.map_refs), ("type", x.type != y.type),
            ("attach", _attach(pa[name].attach) != _attach(pb[name].attach))) if differs]
        if what:
            changed_programs.append({"name": name, "changed": what})
    ma, mb = {m.name: m for m in a.maps}, {m.name: m for m in b.maps}
    spec_changes, entries = [], {}
    for name in sorted(ma.keys() & mb.keys()):
        old, new = ma[name], mb[name]
        fields = [f for f in _SPEC_FIELDS if getattr(old.spec, f) != getattr(new.spec, f)]
        if fields:
            spec_changes.append({"name": name, "changed": fields})
        ca, cb = _contents(old), _contents(new)
        common = ca.keys() & cb.keys()
        entries[name] = {"added": len(cb.keys() - ca.keys()),
                         "removed": len(ca.keys() - cb.keys()),
                         "changed": sum(1 for k in common if ca[k] != cb[k]),
                         "unchanged": sum(1 for k in common if ca[k] == cb[k])}
    fa, fb = set(feature_names(a.features)), set(feature_names(b.features))
    result: dict[str, Any] = {
        "a": a.device, "b": b.device,
        "programs": {"added": sorted(pb.keys() - pa.keys()),
                     "removed": sorted(pa.keys() - pb.keys()), "changed": changed_programs},
        "maps": {"added": sorted(mb.keys() - ma.keys()), "removed": sorted(ma.keys() - mb.keys()),
                 "changed": spec_changes, "entries": entries},
        "features": {"added": sorted(fb - fa), "removed": sorted(fa - fb)},
    }
    result["identical"] = not (
        result["programs"]["added"] or result["programs"]["removed"] or changed_programs
        or result["maps"]["added"] or result["maps"]["removed"] or spec_changes
        or any(e["added"] or e["removed"] or e["changed"] for e in entries.values())
        or result["features"]["added"] or result["features"]["removed"])
    return result


def diff_view(data: dict[str, Any], names: tuple[str, str]) -> RenderableType:
    table = Table(title=f"{names[0]} → {names[1]}", title_justify="left")
    table.add_column("object")
    table.add_column("change")
    for name in data["programs"]["added"]:
        table.add_row(f"program {name}", Text("added", style="green"))
    for name in data["programs"]["removed"]:
        table.add_row(f"program {name}", Text("removed", style="red"))
    for change in data["programs"]["changed"]:
        table.add_row(f"program {change['name']}",
                      Text("changed: " + ", ".join(change["changed"]), style="yellow"))
    for name in data["maps"]["added"]:
        table.add_row(f"map {name}", Text("added", style="green"))
    for name in data["maps"]["removed"]:
        table.add_row(f"map {name}", Text("removed", style="red"))
    for change in data["maps"]["changed"]:
        table.add_row(f"map {change['name']}",
                      Text("spec changed: " + ", ".join(change["changed"]), style="yellow"))
    for name, e in data["maps"]["entries"].items():
        if e["added"] or e["removed"] or e["changed"]:
            table.add_row(f"map {name} entries",
                          f"+{e['added']} -{e['removed']} ~{e['changed']} "
                          f"({e['unchanged']} unchanged)")
    for feature in data["features"]["added"]:
        table.add_row(f"feature {feature}", Text("added", style="green"))
    for feature in data["features"]["removed"]:
        table.add_row(f"feature {feature}", Text("removed", style="red"))
    if data["identical"]:
        return Text("the snapshots hold the same programs, maps, entries and features",
                    style="green")
    return table
