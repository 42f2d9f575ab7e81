"""``verify``: the device's verifier on an object file or on bare bytecode, without a device.

Exit 0 when every chosen program is accepted (with the verifier's statistics), 1 when one is
rejected: the reason on stderr, then the log of the failing path with the failing instruction
highlighted (issue 5). A program the loader refuses (CO-RE, an extern, an instruction it
cannot decode, a section naming no type, a map it cannot create) is a rejected row with its
reason; it fails the command only when chosen (every program by default, as ``bpftool prog
loadall`` fails; ``--program``/``--section`` choose).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from offload.caps import load_profile
from offload.caps.capabilities import Capabilities
from offload.loader import LoadOptionError, ProgramRefusal, RefusalKind, load_object
from offload.loader.device_btf import device_btf
from offload.loader.sections import parse_prog_type
from offload.maps.spec import MapSpec
from offload.program import FuncInfo, resolve_map_references
from offload.soundness import SoundnessError, check_program
from offload.uapi import ProgType
from offload.verifier import VerifierError, VerifierLog, verify
from service.pcap import read_pcap

from . import object_options
from .exits import Exit, UsageError
from .output import Output
from .programs import read_program

RAW = argparse.RawDescriptionHelpFormatter
#: What the table says of a program the loader refused (stderr has the whole reason).
SHORT_REASONS = {
    RefusalKind.SECTION: "no program type",
    RefusalKind.CO_RE: "CO-RE relocations",
    RefusalKind.INSTRUCTION: "unknown instruction",
    RefusalKind.EXTERN: "extern {}",
    RefusalKind.RELOCATION: "relocation",
    RefusalKind.LINK: "call target",
    RefusalKind.MAP: "map {}",
}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "verify", help="verify programs for a device profile", formatter_class=RAW,
        description="Run the device's verifier on the programs of an ELF object, or on a bare "
                    "program (--raw: bytecode as asm -o writes it (.bin, .bpf), hex text or "
                    "assembler text, as disasm and run take them). Exit 0 on accept with "
                    "statistics; 1 on reject with the reason on stderr and the log of the "
                    "failing path, the failing instruction highlighted. Programs the loader "
                    "refuses are rejected rows with their reason; only chosen programs "
                    "(every one by default) decide the exit code.",
        epilog="examples:\n"
               "  offload-migrate verify fixtures/xdp/xdp_firewall.o\n"
               "  offload-migrate verify fixtures/xdp/xdp_firewall_v4.o --profile smartnic\n"
               "  offload-migrate verify --raw prog.hex --type xdp --json\n"
               "  offload-migrate asm prog.s -o prog.bin && offload-migrate verify --raw "
               "prog.bin\n"
               "  offload-migrate verify fixtures/xdp/xdp_firewall.o --check-frames t.pcap\n"
               "  offload-migrate verify fixtures/xdp/libbpf/xdp_traced.o --program "
               "xdp_count_ipv4\n"
               "  offload-migrate verify fixtures/xdp/libbpf/xdp_custom_sections.o --type xdp\n"
               "  offload-migrate verify fixtures/xdp/libbpf/xdp_sized_maps.o "
               "--map-size allowed_ports=1024")
    parser.add_argument("object", nargs="?", help="BPF ELF object (.o)")
    parser.add_argument("--section", help="only programs of this ELF section")
    parser.add_argument("--program", action="append", metavar="NAME",
                        help="only this program (repeatable)")
    parser.add_argument("--profile", default="full", help="device profile (default: full)")
    parser.add_argument("--raw", metavar="FILE", help="a bare program: bytecode (.bin, "
                        ".bpf), hex text or assembler text")
    object_options.add_arguments(parser, type_help=object_options.TYPE_HELP +
                                 "; with --raw, the program's type (default: xdp)")
    parser.add_argument("--json", action="store_true", help="print verdicts as JSON")
    parser.add_argument("--check-frames", metavar="PCAP",
                        help="also run each accepted program on these frames under the "
                             "soundness oracle: every machine state must lie inside the "
                             "verifier's abstract state (exit 1 on a verifier bug)")
    parser.set_defaults(handler=verify_command)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A program to verify, or one the loader refused (``refusal``, no instructions)."""

    name: str
    section: str
    insns: Any = None
    prog_type: ProgType = ProgType.XDP
    resolver: dict[int, MapSpec] = field(default_factory=dict)
    refusal: ProgramRefusal | None = None
    license: str | None = None  # the object's; None for bare bytecode
    expected_attach_type: int = 0  # SEC("xdp/devmap"): BPF_XDP_DEVMAP
    functions: tuple[FuncInfo, ...] = ()  # BTF func_info: global functions verified once


def _raw_type(values: list[str] | None) -> ProgType:
    if values is not None and (len(values) != 1 or "=" in values[0]):
        raise UsageError("--raw takes one program type: --type TYPE.")
    try:
        return parse_prog_type(values[0] if values else "xdp")[0]
    except LoadOptionError as err:
        raise UsageError(str(err)) from None


def _programs(args: argparse.Namespace, caps: Capabilities) -> list[Candidate]:
    """The programs to verify, in the object's order, their CO-RE relocations resolved
    against the BTF of the profile they are verified for (as libbpf resolves them against the
    kernel it loads into)."""
    if (args.raw is None) == (args.object is None):
        raise UsageError("give an object file or --raw FILE (one of them).")
    if args.raw is not None:
        if args.map_size:
            raise UsageError("--map-size sizes the maps of an object; --raw has none.")
        prog_type = _raw_type(args.type)
        try:
            insns = read_program(Path(args.raw))
        except OSError as exc:
            raise UsageError(f"cannot read {args.raw}: {exc.strerror or exc}.") from None
        return [Candidate(Path(args.raw).name, "", insns, prog_type)]
    every, per_program = object_options.parse_types(args.type)
    try:
        obj = load_object(args.object, prog_type=every, prog_types=per_program,
                          map_sizes=object_options.parse_map_sizes(args.map_size),
                          target_btf=device_btf(caps))
    except LoadOptionError as err:
        raise UsageError(str(err)) from None
    handles = {name: n for n, name in enumerate(obj.maps, start=1)}
    resolver = {handles[name]: spec for name, spec in obj.maps.items()}
    missing = [name for name in args.program or () if name not in obj.sections]
    chosen = [name for name, section in obj.sections.items()
              if (args.section is None or section == args.section)
              and (args.program is None or name in args.program)]
    if not chosen or missing:
        known = ", ".join(f"{n} ({s})" for n, s in obj.sections.items()) or "none"
        raise UsageError(f"no program of {args.object} matches; its programs: {known}.")
    result = []
    for name in chosen:
        if name in obj.refused:
            result.append(Candidate(name, obj.sections[name], refusal=obj.refused[name]))
            continue
        spec = obj.programs[name]
        result.append(Candidate(name, spec.section,
                                resolve_map_references(spec.instructions, spec.map_refs,
                                                       handles, program=name),
                                spec.type, resolver, license=spec.license,
                                expected_attach_type=spec.expected_attach_type,
                                functions=spec.functions))
    return result


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
    failures: list[tuple[str, VerifierError | ProgramRefusal]] = []
    bugs: list[tuple[str, SoundnessError]] = []
    frames = None
    if args.check_frames is not None:
        frames = read_pcap(args.check_frames)  # a PcapError is a usage error
    for candidate in _programs(args, caps):
        name, section, insns = candidate.name, candidate.section, candidate.insns
        prog_type, resolver = candidate.prog_type, candidate.resolver
        if candidate.refusal is not None:
            failures.append((name, candidate.refusal))
            verdicts.append({"program": name, "section": section, "insns": None,
                             "accepted": False, "stage": "loader",
                             "kind": candidate.refusal.kind.value,
                             "symbol": candidate.refusal.symbol, "insn": None,
                             "reason": candidate.refusal.reason, "log": []})
            continue
        size = sum(i.width for i in insns)
        try:
            stats = verify(insns, prog_type=prog_type, caps=caps, maps=resolver,
                           license=candidate.license,
                           expected_attach_type=candidate.expected_attach_type,
                           functions=candidate.functions)
        except VerifierError as err:
            failures.append((name, err))
            verdicts.append({"program": name, "section": section, "insns": size,
                             "accepted": False, "stage": "verifier", "insn": err.insn_index,
                             "reason": err.reason,
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
        for column in ("program", "section", "insns", "verdict", "processed", "states",
                       "peak", "stack", "reason"):
            table.add_column(column)
        for v in verdicts:
            if v["accepted"]:
                table.add_row(v["program"], v["section"], str(v["insns"]),
                              Text("accepted", style="green"), f"{v['insns_processed']:,}",
                              str(v["total_states"]), str(v["peak_states"]),
                              "/".join(str(d) for d in v["stack_depth"]) or "0", "")
            else:
                why = SHORT_REASONS[RefusalKind(v["kind"])].format(v.get("symbol")) \
                    if v["stage"] == "loader" else f"verifier, insn {v['insn']}"
                table.add_row(v["program"], v["section"],
                              "-" if v["insns"] is None else str(v["insns"]),
                              Text("rejected", style="bold red"), "-", "-", "-", "-", why)
        out.console.print(table)
        for v in verdicts:
            oracle = v.get("oracle")
            if oracle is not None and oracle["escape"] is None:
                out.console.print(f"{v['program']}: soundness oracle: {oracle['frames']} "
                                  f"frame(s), {oracle['steps']:,} machine states inside "
                                  f"{oracle['states']:,} abstract states")
    for name, failure in failures:
        if isinstance(failure, ProgramRefusal):
            out.error(f"{name} (section {failure.section}): {failure.reason}", label="rejected")
            continue
        out.error(f"{name}: insn {failure.insn_index}: {failure.reason}", label="rejected")
        if failure.log is not None and not args.json:
            out.err.print(log_text(failure.log), highlight=False)
    for name, bug in bugs:
        out.error(f"{name}: {bug}", label="verifier bug")
    return Exit.REFUSED if failures or bugs else Exit.OK
