"""``prog show|dump|run|attach|detach|unload``: a device's programs in bpftool's words."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any

from migrate.atomic_file import write_atomic
from service.client import DeviceClient
from service.errors import Refused, UsageError
from service.pcap import read_pcap

from . import device_option
from .bpf_words import parse_id, print_json, take_ref
from .exits import Exit
from .output import Output

RAW = argparse.RawDescriptionHelpFormatter
PROG = "PROG is ID, NAME, 'id ID' or 'name NAME'."
MAX_DATA_FILE = 1 << 16  # bytes of --data-in read at most (the device takes 3520)


def register(sub: Any) -> None:
    prog = sub.add_parser(
        "prog", help="a device's programs, as bpftool prog (show, dump, run, attach...)",
        formatter_class=RAW,
        description="A device's programs in bpftool's words. -j/--json and -p/--pretty may "
                    "stand anywhere on the line; --device defaults to $OFFLOAD_MIGRATE_DEVICE. "
                    + PROG,
        epilog="examples:\n"
               "  offload-migrate prog show --device /tmp/a.sock\n"
               "  offload-migrate prog dump xlated name xdp_firewall linum\n"
               "  offload-migrate prog run xdp_firewall --data-in frame.bin --repeat 100 -p\n"
               "  offload-migrate prog detach")
    psub = prog.add_subparsers(dest="prog_command", required=True, metavar="COMMAND")

    def verb(name: str, help_: str, examples: str, handler: Any,
             aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        parser = psub.add_parser(name, aliases=list(aliases), help=help_,
                                 description=f"{help_[0].upper()}{help_[1:]}. {PROG}",
                                 epilog="examples:\n" + examples, formatter_class=RAW)
        parser.add_argument("words", nargs="*", metavar="PROG",
                            help="the program (and bpftool's keywords)")
        device_option.add(parser)
        parser.add_argument("--json", action="store_true", help="print JSON (also -j, -p)")
        parser.set_defaults(handler=handler)
        return parser

    verb("show", "list the device's programs, or one",
         "  offload-migrate prog show\n  offload-migrate prog show id 4 -j\n"
         "  offload-migrate prog list name xdp_firewall", show_command, ("list",))
    verb("dump", "the program's instructions with its source lines (BTF line info), as "
         "bpftool prog dump xlated linum",
         "  offload-migrate prog dump xdp_firewall\n"
         "  offload-migrate prog dump xlated id 4 linum\n"
         "  offload-migrate prog dump xdp_firewall -p", dump_command)
    run = verb("run", "run the program on a frame over the control queue (BPF_PROG_TEST_RUN)"
               "; the verdict is returned, not acted on",
               "  offload-migrate prog run xdp_firewall --data-in frame.bin\n"
               "  offload-migrate prog run id 4 data_in frame.bin data_out out.bin repeat 1000\n"
               "  offload-migrate prog run xdp_firewall --pcap trace.pcap -j", run_command)
    run.add_argument("--data-in", metavar="FILE", help="the frame's bytes (14 to 3520)")
    run.add_argument("--data-out", metavar="FILE", help="write the frame as it left here")
    run.add_argument("--repeat", metavar="N", help="runs (default 1; duration is the mean)")
    run.add_argument("--data-size-out", metavar="N",
                     help="room for the frame as it leaves (ENOSPC when it outgrows it)")
    run.add_argument("--pcap", metavar="FILE", help="one run, one verdict per frame of a pcap")
    verb("attach", "attach the program to the device's receive path (XDP, hardware mode)",
         "  offload-migrate prog attach xdp_firewall\n  offload-migrate prog attach id 4",
         attach_command)
    verb("detach", "detach the attached program (PROG, if given, must be the attached one)",
         "  offload-migrate prog detach\n  offload-migrate prog detach name xdp_firewall",
         detach_command)
    verb("unload", "drop the program (an attached one runs until detached)",
         "  offload-migrate prog unload name xdp_pass", unload_command)


def _one(args: argparse.Namespace) -> int | str:
    ref, rest = take_ref(list(args.words), "program")
    if rest:
        raise UsageError(f"unexpected {' '.join(rest)!r} after the program.")
    return ref


def _programs(client: DeviceClient) -> list[dict[str, Any]]:
    return list(client.call("status")["programs"])


def _find(programs: list[dict[str, Any]], ref: int | str) -> dict[str, Any]:
    for prog in programs:
        if prog["id"] == ref or prog["name"] == ref:
            return prog
    raise Refused(errno.ENOENT, f"there is no program {ref!r} on the device.")


def _show_json(prog: dict[str, Any]) -> dict[str, Any]:
    """bpftool's fields first (``bytes_xlated`` is the bytecode as loaded: the device keeps
    bytecode, not a translation), then the device's own."""
    insns = prog.get("insns")
    return {"id": prog["id"], "type": prog["type"].lower(), "name": prog["name"],
            "tag": prog.get("tag"), "gpl_compatible": prog.get("gpl_compatible"),
            "bytes_xlated": None if insns is None else insns * 8,
            "map_ids": prog.get("map_ids", []),
            "insns": insns, "isa": prog.get("isa"), "attached": prog.get("attach"),
            "counters": prog.get("counters", {}), "verifier": prog.get("verifier", {})}


def show_command(args: argparse.Namespace, out: Output) -> int:
    with DeviceClient(args.device) as client:
        programs = _programs(client)
    if args.words:
        programs = [_find(programs, _one(args))]
    if args.json:
        rows = [_show_json(p) for p in programs]
        print_json(rows[0] if args.words else rows, args.pretty)
        return Exit.OK
    for prog in programs:
        attached = f"  attached {prog['attach']}" if prog.get("attach") else ""
        tag = f"  tag {prog['tag']}" if prog.get("tag") else ""
        gpl = "  gpl" if prog.get("gpl_compatible") else ""
        out.console.print(f"{prog['id']}: {prog['type'].lower()}  name {prog['name']}{tag}{gpl}  "
                          f"insns {prog.get('insns', '?')}{attached}", highlight=False)
        if prog.get("map_ids"):
            out.console.print("\tmap_ids " + ",".join(str(i) for i in prog["map_ids"]),
                              highlight=False)
        counters = prog.get("counters", {})
        out.console.print("\t" + "  ".join(f"{k} {v}" for k, v in counters.items()),
                          highlight=False)
    if not programs:
        out.console.print("no program loaded", style="dim")
    return Exit.OK


def dump_command(args: argparse.Namespace, out: Output) -> int:
    words = list(args.words)
    if words[:1] == ["xlated"]:
        words = words[1:]
    linum = "linum" in words[-1:]
    if linum:
        words = words[:-1]
    ref, rest = take_ref(words, "program")
    if rest:
        raise UsageError(f"unexpected {' '.join(rest)!r}: prog dump [xlated] PROG [linum].")
    with DeviceClient(args.device) as client:
        dump = client.call("prog.dump", program=ref)
    if args.json:
        rows = []
        for insn in dump["insns"]:
            row: dict[str, Any] = {"pc": insn["slot"], "disasm": insn["text"]}
            line = insn.get("line")
            if line:
                row.update(src=line["text"].strip(), file=line["file"],
                           line_num=line["line"], line_col=line["column"])
            rows.append(row)
        print_json(rows, args.pretty)
        return Exit.OK
    out.console.print(f"{dump['id']}: {dump['type'].lower()}  name {dump['name']}",
                      highlight=False)
    last = None
    for insn in dump["insns"]:
        line = insn.get("line")
        if line and (line["file"], line["line"]) != last:
            where = (f" [file:{line['file']} line_num:{line['line']} "
                     f"line_col:{line['column']}]") if linum else ""
            out.console.print(f"; {line['text'].strip()}{where}", highlight=False,
                              markup=False)
            last = (line["file"], line["line"])
        out.console.print(f"{insn['slot']:>5}: {insn['text']}", highlight=False, markup=False)
    return Exit.OK


def _number(text: str | None, what: str, default: int) -> int:
    if text is None:
        return default
    return parse_id(text, what)


def _run_options(args: argparse.Namespace) -> tuple[int | str, dict[str, str]]:
    """The program and bpftool's ``data_in FILE data_out FILE repeat N`` words, merged with
    the options (each given once)."""
    ref, rest = take_ref(list(args.words), "program")
    given = {"data_in": args.data_in, "data_out": args.data_out, "repeat": args.repeat,
             "data_size_out": args.data_size_out}
    while rest:
        word = rest.pop(0)
        if word not in given or word == "data_size_out":
            raise UsageError(f"unexpected {word!r}: prog run PROG data_in FILE "
                             "[data_out FILE] [repeat N].")
        if not rest:
            raise UsageError(f"{word!r} needs its value.")
        if given[word] is not None:
            raise UsageError(f"{word} is given twice.")
        given[word] = rest.pop(0)
    return ref, {k: v for k, v in given.items() if v is not None}


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if len(data) > limit:
        raise UsageError(f"{path} holds more than {limit} bytes; {what} takes 14 to 3520.")
    return data


def _result_json(result: dict[str, Any]) -> dict[str, Any]:
    return {"retval": result["retval"], "action": result["action"],
            "duration_ns": result["duration_ns"], "data_out": result["data_out"].hex()}


def run_command(args: argparse.Namespace, out: Output) -> int:
    ref, given = _run_options(args)
    repeat = _number(given.get("repeat"), "repeat count", 1)
    room = _number(given.get("data_size_out"), "data size", 0)
    if (args.pcap is None) == ("data_in" not in given):
        raise UsageError("give the frame: --data-in FILE (or data_in FILE), or --pcap FILE.")
    if args.pcap is not None and "data_out" in given:
        raise UsageError("--data-out takes one frame's run; --pcap runs many.")
    frames = read_pcap(args.pcap) if args.pcap is not None else \
        [_read(given["data_in"], "a test run", MAX_DATA_FILE)]
    results = []
    with DeviceClient(args.device) as client:
        for frame in frames:
            results.append(client.call("prog.run", program=ref, data=frame, repeat=repeat,
                                       data_size_out=room))
    if "data_out" in given:
        try:
            write_atomic(Path(given["data_out"]), results[0]["data_out"])
        except OSError as exc:
            raise UsageError(f"cannot write {given['data_out']}: "
                             f"{exc.strerror or exc}.") from None
    if args.json:
        rows = [_result_json(r) for r in results]
        print_json(rows if args.pcap is not None else rows[0], args.pretty)
        return Exit.OK
    for index, result in enumerate(results):
        head = f"frame {index + 1}: " if args.pcap is not None else ""
        out.console.print(f"{head}retval {result['retval']} ({result['action']}), "
                          f"duration {result['duration_ns']} ns, data_out "
                          f"{len(result['data_out'])} bytes", highlight=False)
    return Exit.OK


def attach_command(args: argparse.Namespace, out: Output) -> int:
    ref = _one(args)
    with DeviceClient(args.device) as client:
        handle = client.call("attach", program=ref)["attached"]
    if args.json:
        print_json({"attached": handle}, args.pretty)
    else:
        out.console.print(f"program {handle} attached (xdp, hw)", highlight=False)
    return Exit.OK


def detach_command(args: argparse.Namespace, out: Output) -> int:
    with DeviceClient(args.device) as client:
        if args.words:
            prog = _find(_programs(client), _one(args))
            if not prog.get("attach"):
                raise Refused(errno.ENOENT, f"program {prog['id']} ({prog['name']}) is not "
                                            "attached.")
        client.call("detach")
    if args.json:
        print_json({"attached": None}, args.pretty)
    else:
        out.console.print("detached", highlight=False)
    return Exit.OK


def unload_command(args: argparse.Namespace, out: Output) -> int:
    ref = _one(args)
    with DeviceClient(args.device) as client:
        handle = client.call("prog.unload", program=ref)["program"]
    if args.json:
        print_json({"unloaded": handle}, args.pretty)
    else:
        out.console.print(f"program {handle} unloaded", highlight=False)
    return Exit.OK
