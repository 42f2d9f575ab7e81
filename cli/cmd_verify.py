"""``verify``: the device's verifier on an object file or on bare bytecode, without a device.

Exit 0 when every chosen program is accepted (with the verifier's statistics), 1 when one is
rejected: the reason on stderr, then the log of the failing path with the failing instruction
highlighted (issue 5).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from offload.caps import load_profile
from offload.isa import decode
from offload.loader import load_object
from offload.maps.spec import MapSpec
from offload.program import ProgramSpec, ProgType, resolve_map_references
from offload.soundness import SoundnessError, check_program
from offload.verifier import VerifierError, VerifierLog, verify

from .bpf_plugin import parse_hex
from .exits import Exit, UsageError
from .output import Output
from .pcap import read_pcap
from .programs import read_text

RAW = argparse.RawDescriptionHelpFormatter


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "verify", help="verify programs for a device profile", formatter_class=RAW,
        description="Run the device's verifier on the programs of an ELF object, or on bare "
                    "bytecode given as hex (--raw, whitespace ignored). Exit 0 on accept with "
                    "statistics; 1 on reject with the reason on stderr and the log of the "
                    "failing path, the failing instruction highlighted.",
        epilog="examples:\n"
               "  offload-migrate verify fixtures/xdp/xdp_firewall.o\n"
               "  offload-migrate verify fixtures/xdp/xdp_firewall_v4.o --profile smartnic\n"
               "  offload-migrate verify --raw prog.hex --type xdp --json\n"
               "  offload-migrate verify fixtures/xdp/xdp_firewall.o --check-frames t.pcap")
    parser.add_argument("object", nargs="?", help="BPF ELF object (.o)")
    parser.add_argument("--section", help="only programs of this ELF section")
    parser.add_argument("--program", help="only this program")
    parser.add_argument("--profile", default="full", help="device profile (default: full)")
    parser.add_argument("--raw", metavar="HEXFILE", help="bare bytecode as hex text")
    parser.add_argument("--type", default="xdp", help="program type of --raw (default: xdp)")
    parser.add_argument("--json", action="store_true", help="print verdicts as JSON")
    parser.add_argument("--check-frames", metavar="PCAP",
                        help="also run each accepted program on these frames under the "
                             "soundness oracle: every machine state must lie inside the "
                             "verifier's abstract state (exit 1 on a verifier bug)")
    parser.set_defaults(handler=verify_command)


def _programs(args: argparse.Namespace) -> list[tuple[str, str, Any, ProgType, dict[int, MapSpec]]]:
    """(name, section, instructions, type, map resolver) for each program to verify."""
    if (args.raw is None) == (args.object is None):
        raise UsageError("give an object file or --raw HEXFILE (one of them).")
    if args.raw is not None:
        try:
            prog_type = ProgType[args.type.upper()]
        except KeyError:
            raise UsageError(f"unknown program type {args.type!r}.") from None
        try:
            text = read_text(Path(args.raw))
        except OSError as exc:
            raise UsageError(f"cannot read {args.raw}: {exc.strerror or exc}.") from None
        insns = decode(parse_hex(text, "program"))
        return [(Path(args.raw).name, "", insns, prog_type, {})]
    obj = load_object(args.object)
    handles = {name: n for n, name in enumerate(obj.maps, start=1)}
    resolver = {handles[name]: spec for name, spec in obj.maps.items()}
    chosen: list[ProgramSpec] = [spec for name, spec in obj.programs.items()
                                 if (args.section is None or spec.section == args.section)
                                 and (args.program is None or name == args.program)]
    if not chosen:
        known = ", ".join(f"{n} ({s.section})" for n, s in obj.programs.items()) or "none"
        raise UsageError(f"no program of {args.object} matches; its programs: {known}.")
    return [(spec.name, spec.section,
             resolve_map_references(spec.instructions, spec.map_refs, handles,
                                    program=spec.name), spec.type, resolver)
            for spec in chosen]


def log_text(log: VerifierLog) -> Text:
    """The kernel-style log, the failing instruction highlighted."""
    text = Text()
    if log.truncated:
        text.append(f"... {log.truncated} earlier instructions of this path not shown\n",
                    style="dim")
    for line in log.lines:
        if line.failed:
            text.append(f"{line}\n", style="bold white on red")
        else:
            text.append(f"{line}\n")
    if log.reason:
        text.append(log.reason, style="bold red")
    return text


def verify_command(args: argparse.Namespace, out: Output) -> int:
    caps = load_profile(args.profile)
    verdicts: list[dict[str, Any]] = []
    failures: list[tuple[str, VerifierError]] = []
    bugs: list[tuple[str, SoundnessError]] = []
    frames = None
    if args.check_frames is not None:
        frames = read_pcap(args.check_frames)  # a PcapError is a usage error
    for name, section, insns, prog_type, resolver in _programs(args):
        size = sum(i.width for i in insns)
        try:
            stats = verify(insns, prog_type=prog_type, caps=caps, maps=resolver)
        except VerifierError as err:
            failures.append((name, err))
            verdicts.append({"program": name, "section": section, "insns": size,
                             "accepted": False, "insn": err.insn_index, "reason": err.reason,
                             "log": str(err.log).splitlines() if err.log else []})
            continue
        verdict = {"program": name, "section": section, "insns": size, "accepted": True,
                   "insns_processed": stats.insns_processed,
                   "total_states": stats.total_states, "peak_states": stats.peak_states,
                   "stack_depth": list(stats.stack_depth)}
        if frames is not None:
            try:
                report = check_program(insns, caps=caps, maps=dict(resolver), frames=frames,
                                       prog_type=prog_type)
            except SoundnessError as err:
                bugs.append((name, err))
                verdict["oracle"] = {"escape": str(err).splitlines()}
            else:
                verdict["oracle"] = {"frames": report.frames, "steps": report.steps,
                                     "states": report.states, "escape": None}
        verdicts.append(verdict)
    if args.json:
        out.json({"profile": caps.name, "programs": verdicts})
    else:
        table = Table(title=f"verifier ({caps.name}, ISA v{caps.isa_version})")
        for column in ("program", "insns", "verdict", "processed", "states", "peak", "stack"):
            table.add_column(column)
        for v in verdicts:
            if v["accepted"]:
                table.add_row(v["program"], str(v["insns"]), Text("accepted", style="green"),
                              f"{v['insns_processed']:,}", str(v["total_states"]),
                              str(v["peak_states"]),
                              "/".join(str(d) for d in v["stack_depth"]) or "0")
            else:
                table.add_row(v["program"], str(v["insns"]), Text("rejected", style="bold red"),
                              "-", "-", "-", "-")
        out.console.print(table)
        for v in verdicts:
            oracle = v.get("oracle")
            if oracle is not None and oracle["escape"] is None:
                out.console.print(f"{v['program']}: soundness oracle: {oracle['frames']} "
                                  f"frame(s), {oracle['steps']:,} machine states inside "
                                  f"{oracle['states']:,} abstract states")
    for name, err in failures:
        out.error(f"{name}: insn {err.insn_index}: {err.reason}", label="rejected")
        if err.log is not None and not args.json:
            out.err.print(log_text(err.log), highlight=False)
    for name, bug in bugs:
        out.error(f"{name}: {bug}", label="verifier bug")
    return Exit.REFUSED if failures or bugs else Exit.OK
