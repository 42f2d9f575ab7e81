"""``map show|dump|lookup|update|delete|freeze|free``: a device's maps in bpftool's words
(``free`` is the device's own: the guest drops its reference, as a closed map fd)."""

from __future__ import annotations

import argparse
import errno
from typing import Any

from service.client import DeviceClient
from service.errors import Refused, UsageError

from . import device_option
from .bpf_words import byte_list, parse_key_value, print_json, take_ref
from .exits import Exit
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
MAP = ("MAP is ID, NAME, 'id ID' or 'name NAME'; bytes as bpftool's list (key 0x0a 0x00 0 2, "
       "key hex 0a 00 00 02) or hex (--key 0a000002).")


def register(sub: Any) -> None:
    maps = sub.add_parser(
        "map", help="a device's maps, as bpftool map (show, dump, lookup, update...)",
        formatter_class=RAW,
        description="A device's maps in bpftool's words. -j/--json and -p/--pretty may stand "
                    "anywhere on the line; --device defaults to $OFFLOAD_MIGRATE_DEVICE. " + MAP,
        epilog="examples:\n"
               "  offload-migrate map show --device /tmp/a.sock\n"
               "  offload-migrate -p map dump name verdicts\n"
               "  offload-migrate map update blocked_v4 key 10 0 0 2 value 1 0 0 0 0 0 0 0\n"
               "  offload-migrate map lookup blocked_v4 --key 0a000002\n"
               "  offload-migrate map delete id 1 key hex 0a 00 00 02")
    msub = maps.add_subparsers(dest="map_command", required=True, metavar="COMMAND")

    def verb(name: str, help_: str, examples: str, handler: Any,
             aliases: tuple[str, ...] = (), key: bool = False,
             value: bool = False) -> argparse.ArgumentParser:
        parser = msub.add_parser(name, aliases=list(aliases), help=help_,
                                 description=f"{help_[0].upper()}{help_[1:]}. {MAP}",
                                 epilog="examples:\n" + examples, formatter_class=RAW)
        parser.add_argument("words", nargs="*", metavar="MAP",
                            help="the map, then bpftool's key/value words")
        if key:
            parser.add_argument("--key", metavar="HEX", help="the key as hex")
        if value:
            parser.add_argument("--value", metavar="HEX", help="the value as hex")
        device_option.add(parser)
        parser.add_argument("--json", action="store_true", help="print JSON (also -j, -p)")
        parser.set_defaults(handler=handler, key=None, value=None)
        return parser

    verb("show", "list the device's maps, or one",
         "  offload-migrate map show\n  offload-migrate map show name verdicts -j",
         show_command, ("list",))
    verb("dump", "every entry of the map (decoded with BTF when the map has it)",
         "  offload-migrate map dump name verdicts\n  offload-migrate map dump id 3 -p",
         dump_command)
    verb("lookup", "one entry's value",
         "  offload-migrate map lookup blocked_v4 key 10 0 0 2\n"
         "  offload-migrate map lookup id 1 --key 0a000002 -j", lookup_command, key=True)
    verb("update", "write one entry (flags: any, noexist, exist)",
         "  offload-migrate map update blocked_v4 key 10 0 0 2 value 1 0 0 0 0 0 0 0\n"
         "  offload-migrate map update id 1 --key 0a000002 --value 0100000000000000 noexist",
         update_command, key=True, value=True)
    verb("delete", "delete one entry",
         "  offload-migrate map delete blocked_v4 key hex 0a 00 00 02", delete_command,
         key=True)
    verb("freeze", "make the map read-only for the guest (BPF_MAP_FREEZE)",
         "  offload-migrate map freeze name config", freeze_command)
    verb("free", "drop the guest's reference, as a closed map fd: the map goes now, or with "
         "the last program that uses it",
         "  offload-migrate prog unload xdp_firewall; offload-migrate map free blocked_v4\n"
         "  offload-migrate map free id 3 -j", free_command)


def _split(args: argparse.Namespace) -> tuple[int | str, list[str]]:
    return take_ref(list(args.words), "map")


def _no_more(rest: list[str]) -> None:
    if rest:
        raise UsageError(f"unexpected {' '.join(rest)!r} after the map.")


def _map_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {"id": row["id"], "type": row["type"].lower(), "name": row["name"],
           "bytes_key": row["key_size"], "bytes_value": row["value_size"],
           "max_entries": row["max_entries"], "entries": row.get("entries"),
           "bytes_memlock": row.get("memory")}
    if "events" in row:
        out["events"] = row["events"]
    return out


def show_command(args: argparse.Namespace, out: Output) -> int:
    with DeviceClient(args.device) as client:
        rows = list(client.call("status")["maps"])
    if args.words:
        ref, rest = _split(args)
        _no_more(rest)
        rows = [r for r in rows if r["id"] == ref or r["name"] == ref]
        if not rows:
            raise Refused(errno.ENOENT, f"there is no map {ref!r} on the device.")
    if args.json:
        shaped = [_map_json(r) for r in rows]
        print_json(shaped[0] if args.words else shaped, args.pretty)
        return Exit.OK
    for row in rows:
        out.console.print(f"{row['id']}: {row['type'].lower()}  name {row['name']}  "
                          f"flags 0x0\n\tkey {row['key_size']}B  value {row['value_size']}B  "
                          f"max_entries {row['max_entries']}  entries {row.get('entries', 0)}"
                          f"  memlock {row.get('memory', 0)}B", highlight=False)
    if not rows:
        out.console.print("no map", style="dim")
    return Exit.OK


def _hex_words(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def dump_command(args: argparse.Namespace, out: Output) -> int:
    ref, rest = _split(args)
    _no_more(rest)
    with DeviceClient(args.device) as client:
        dump = client.call("map.dump", map=ref)
    formatted = dump.get("formatted")
    if args.json:
        rows = []
        for index, (key, value) in enumerate(dump["items"]):
            row: dict[str, Any] = {"key": byte_list(key), "value": byte_list(value)}
            if formatted is not None:
                row["formatted"] = formatted[index]
            rows.append(row)
        print_json(rows, args.pretty)
        return Exit.OK
    for key, value in dump["items"]:
        out.console.print(f"key: {_hex_words(key)}  value: {_hex_words(value)}",
                          highlight=False)
    out.console.print(f"Found {len(dump['items'])} element"
                      f"{'' if len(dump['items']) == 1 else 's'}", highlight=False)
    return Exit.OK


def lookup_command(args: argparse.Namespace, out: Output) -> int:
    ref, rest = _split(args)
    key = parse_key_value(rest, key=args.key).key or b""
    with DeviceClient(args.device) as client:
        result = client.call("map.lookup", map=ref, key=key)
    if args.json:
        row: dict[str, Any] = {"key": byte_list(key), "value": byte_list(result["value"])}
        if result.get("formatted") is not None:
            row["formatted"] = result["formatted"]
        print_json(row, args.pretty)
    else:
        out.console.print(f"key: {_hex_words(key)}  value: {_hex_words(result['value'])}",
                          highlight=False)
    return Exit.OK


def update_command(args: argparse.Namespace, out: Output) -> int:
    ref, rest = _split(args)
    parsed = parse_key_value(rest, key=args.key, value=args.value, want_value=True,
                             flags=True)
    with DeviceClient(args.device) as client:
        handle = client.call("map.update", map=ref, key=parsed.key, value=parsed.value,
                             flags=parsed.flags or 0)["map"]
    if args.json:
        print_json({"map": handle}, args.pretty)
    else:
        out.console.print(f"map {handle}: updated", highlight=False)
    return Exit.OK


def delete_command(args: argparse.Namespace, out: Output) -> int:
    ref, rest = _split(args)
    key = parse_key_value(rest, key=args.key).key or b""
    with DeviceClient(args.device) as client:
        handle = client.call("map.delete", map=ref, key=key)["map"]
    if args.json:
        print_json({"map": handle}, args.pretty)
    else:
        out.console.print(f"map {handle}: deleted", highlight=False)
    return Exit.OK


def freeze_command(args: argparse.Namespace, out: Output) -> int:
    ref, rest = _split(args)
    _no_more(rest)
    with DeviceClient(args.device) as client:
        handle = client.call("map.freeze", map=ref)["map"]
    if args.json:
        print_json({"map": handle}, args.pretty)
    else:
        out.console.print(f"map {handle}: frozen", highlight=False)
    return Exit.OK


def free_command(args: argparse.Namespace, out: Output) -> int:
    ref, rest = _split(args)
    _no_more(rest)
    with DeviceClient(args.device) as client:
        result = client.call("map.free", map=ref)
    handle, freed = result["map"], result["freed"]
    if args.json:
        print_json({"map": handle, "freed": freed}, args.pretty)
    elif freed:
        out.console.print(f"map {handle}: freed", highlight=False)
    else:
        out.console.print(f"map {handle}: released; it goes with the last program that uses "
                          "it", highlight=False)
    return Exit.OK
