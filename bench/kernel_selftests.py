"""Linux's own verifier selftests as a judge of this verifier (a local measurement).

The kernel's ``tools/testing/selftests/bpf/progs/verifier_*.c`` annotate each test program
with what the kernel's verifier must answer (``bpf_misc.h``: ``__success``, ``__failure``,
``__msg(...)``, their ``_unpriv`` forms, ``__flag``, ``__auxiliary`` ...). clang keeps those
annotations in the object's BTF as DECL_TAG records ``comment:test_...`` on the program's
FUNC. This harness reads a directory of such objects, extracts every program with its
annotations, verifies it as an XDP program for the ``full`` device and compares:

* the kernel refuses (privileged or unprivileged) and so do we: agreement;
* the kernel refuses and we accept: a DISAGREEMENT, classed by the kernel's expected message
  (memory/bounds, division, pointer leak, other) and by the program's own type;
* the kernel accepts: whether we do too (precision, for information only: we apply the
  unprivileged rules, and programs of other types run here against the XDP context).

The sources are GPL and neither they nor the objects belong in this repository; build them
outside it, e.g. from Debian's ``linux-source-6.12``::

    apt-get install -y linux-source-6.12 clang-19 libbpf-dev bpftool
    tar -xJf /usr/src/linux-source-6.12.tar.xz -C /work/kselftests
    bpftool btf dump file /sys/kernel/btf/vmlinux format c > include/vmlinux.h
    clang-19 -g -O2 -target bpf -mcpu=v4 -D__TARGET_ARCH_x86 -I include -I .../selftests/bpf \\
        -I .../tools/include/uapi -c progs/verifier_foo.c -o objs/verifier_foo.bpf.o

then ``python bench/kernel_selftests.py objs/ [--json out.json] [--kernel] [--list]``.

Objects the project's loader refuses as a whole (CO-RE relocations, kfuncs, sections that
name no program type, statically initialised slots) go through a tolerant path built from the
same loader pieces: CO-RE relocations are left as compiled (the objects were built against
this machine's BTF), and only the programs that reach an unsupported relocation or an
undecodable instruction are counted as not loadable, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import signal
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from offload.caps import load_profile  # noqa: E402
from offload.isa.codec import DecodeError, decode  # noqa: E402
from offload.isa.disasm import slot_positions  # noqa: E402
from offload.isa.instruction import Instruction  # noqa: E402
from offload.isa.opcodes import AluOp, InsnClass, Mode, Size, Source  # noqa: E402
from offload.loader import BtfKind, LoaderError, load_object  # noqa: E402
from offload.loader.btf import Btf, parse_btf  # noqa: E402
from offload.loader.btf_ext import _info_blocks, parse_btf_ext  # noqa: E402
from offload.loader.btf_layout import EXT_CORE, EXT_HEADER  # noqa: E402
from offload.loader.elf import ElfObject  # noqa: E402
from offload.loader.elf_reader import read_elf  # noqa: E402
from offload.loader.linker import SUBPROGRAM_SECTION, Function, link_program  # noqa: E402
from offload.loader.maps import collect_maps  # noqa: E402
from offload.loader.relocations import SLOT, Fixup, _resolve  # noqa: E402
from offload.loader.sections import program_type  # noqa: E402
from offload.maps.spec import MapSpec  # noqa: E402
from offload.program import MapReference, resolve_map_references  # noqa: E402
from offload.uapi import ProgType  # noqa: E402
from offload.verifier import VerifierError, verify  # noqa: E402

PROFILE = "full"
#: Seconds one verification may take before it counts as "timeout".
TIMEOUT = 60.0

# ------------------------------------------------------------------ expectations
TAG_PREFIX = "comment:"


@dataclass(frozen=True)
class Expectation:
    """What the kernel's selftest runner expects of one program, from its annotations.

    The runner's rules: success/failure/message/retval tags without ``_unpriv`` select the
    privileged run, those with it the unprivileged run; with neither, only the privileged run
    happens, expecting success. An unprivileged run with no result of its own inherits the
    privileged one, and with no messages of its own, the privileged messages.
    """

    priv: bool = True
    unpriv: bool = False
    priv_failure: bool = False
    unpriv_failure: bool = False
    msgs: tuple[str, ...] = ()
    msgs_unpriv: tuple[str, ...] = ()
    description: str = ""
    flags: tuple[str, ...] = ()
    auxiliary: bool = False
    tags: tuple[str, ...] = ()

    @property
    def kernel_refuses(self) -> bool:
        return (self.priv and self.priv_failure) or (self.unpriv and self.unpriv_failure)

    @property
    def refused_in(self) -> str:
        """"priv" when the privileged run must fail, "unpriv" when only the unprivileged one."""
        if self.priv and self.priv_failure:
            return "priv"
        return "unpriv" if self.unpriv and self.unpriv_failure else ""

    @property
    def failure_messages(self) -> tuple[str, ...]:
        if self.priv and self.priv_failure:
            return self.msgs
        return self.msgs_unpriv or self.msgs


_NUMBERED = re.compile(r"^(test_expect_msg(?:_unpriv)?)=\d+=(.*)$", re.S)


def parse_expectation(tags: Iterable[str]) -> Expectation:
    """An :class:`Expectation` from the ``comment:`` tags of one program (prefix removed)."""
    tags = tuple(tags)
    priv = unpriv = False
    priv_failure = unpriv_failure = False
    unpriv_result = False
    msgs: list[str] = []
    msgs_unpriv: list[str] = []
    description = ""
    flags: list[str] = []
    auxiliary = False
    for tag in tags:
        numbered = _NUMBERED.match(tag)
        key, _, value = tag.partition("=")
        if tag == "test_expect_failure":
            priv, priv_failure = True, True
        elif tag == "test_expect_success":
            priv, priv_failure = True, False
        elif tag == "test_expect_failure_unpriv":
            unpriv, unpriv_failure, unpriv_result = True, True, True
        elif tag == "test_expect_success_unpriv":
            unpriv, unpriv_failure, unpriv_result = True, False, True
        elif tag == "test_auxiliary":
            priv, auxiliary = True, True
        elif tag == "test_auxiliary_unpriv":
            unpriv, auxiliary = True, True
        elif numbered is not None:
            if numbered.group(1).endswith("_unpriv"):
                unpriv = True
                msgs_unpriv.append(numbered.group(2))
            else:
                priv = True
                msgs.append(numbered.group(2))
        elif key in ("test_retval", "test_expect_xlated", "test_jited"):
            priv = True
        elif key in ("test_retval_unpriv", "test_expect_xlated_unpriv", "test_jited_unpriv"):
            unpriv = True
        elif key == "test_description":
            description = value
        elif key == "test_prog_flags":
            flags.append(value)
    if not priv and not unpriv:
        priv = True
    if not unpriv_result:
        unpriv_failure = priv_failure
    return Expectation(priv, unpriv, priv_failure, unpriv_failure, tuple(msgs),
                       tuple(msgs_unpriv), description, tuple(flags), auxiliary, tags)


def program_tags(btf: Btf | None) -> dict[str, tuple[str, ...]]:
    """FUNC name -> its ``comment:`` DECL_TAG values (prefix removed), in BTF order."""
    if btf is None:
        return {}
    by_func: dict[int, list[str]] = {}
    for btf_type in btf.types:
        if btf_type.kind == BtfKind.DECL_TAG and btf_type.component_idx == -1 \
                and btf_type.name.startswith(TAG_PREFIX):
            by_func.setdefault(btf_type.type_id, []).append(btf_type.name[len(TAG_PREFIX):])
    result: dict[str, tuple[str, ...]] = {}
    for type_id, tags in by_func.items():
        target = btf[type_id]
        if target.kind == BtfKind.FUNC:
            result[target.name] = tuple(tags)
    return result


# ------------------------------------------------------------------ message classes
MEMORY, DIVISION, LEAK, OTHER, NO_MESSAGE = "memory/bounds", "division", "pointer leak", \
    "other", "other (no message)"

#: Checked in order; the first class whose pattern matches any expected message wins.
MESSAGE_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (DIVISION, re.compile(r"div by zero|divide", re.I)),
    (LEAK, re.compile(r"leaks addr|pointer comparison prohibited|partial copy of pointer|"
                      r"ptr .*prohibited for !root|pointer .*prohibited for !root|"
                      r"prohibited for !root|sign-extension part of pointer|"
                      r"byte swap of pointer|addr into|speculative|pointer comparison", re.I)),
    (MEMORY, re.compile(r"invalid (mem |indirect |variable-offset |zero-sized |size of |"
                        r"read from stack|write to stack|access|stack|bpf_context|map_value)|"
                        r"out of bounds|out of range|outside of the allowed memory range|"
                        r"min value is negative|unbounded memory access|unbounded min value|"
                        r"misaligned|dereference of modified|pointer arithmetic|"
                        r"value_size=|invalid mem access|access beyond|"
                        r"math between .* pointer|offset is outside|bounds check|"
                        r"R\d+ max value is|R\d+ min value is|register fill|register spill|"
                        r"corrupt spilled pointer|invalid indirect|"
                        r"mem_or_null|_or_null|invalid write|invalid read|invalid negative|"
                        r"read from map forbidden|write into map forbidden",
                        re.I)),
)


def message_class(messages: Iterable[str]) -> str:
    messages = tuple(messages)
    if not messages:
        return NO_MESSAGE
    for name, pattern in MESSAGE_CLASSES:
        if any(pattern.search(message) for message in messages):
            return name
    return OTHER


#: Our refusals that say nothing about the program's safety: what the device or the XDP
#: context does not offer. A refusal of this kind "agrees" only by accident.
INCIDENTAL = re.compile(
    r"unknown func|not available to|is not supported by device|has no context layout|"
    r"invalid bpf_context access|kfunc|unknown opcode|is not pointing to valid bpf_map|"
    r"cannot pass map_type|map-in-map .* has no inner map template|BPF_ST stores into R\d ctx",
    re.I)


def our_class(reason: str) -> str:
    if INCIDENTAL.search(reason):
        return "incidental"
    return message_class((reason,))


# ------------------------------------------------------------------ out of scope
SPECTRE = ("unprivileged Spectre hardening: the kernel also verifies branches that can never be "
           "taken (they may run speculatively) and refuses pointer arithmetic that leaves the "
           "object even when nothing is accessed there; no access the program makes is out of "
           "bounds, and the device does not execute speculatively")
OTHER_CTX = ("the refusal is about the context of another program type; run as XDP the same "
             "offsets are xdp_md fields")
#: Programs whose kernel refusal rests on something this verifier deliberately does not
#: model; a DISAGREEMENT on them is reported but does not fail the regression test.
#: (object stem, program name) -> why. Established on the Linux 6.12 selftests.
OUT_OF_SCOPE: dict[tuple[str, str], str] = {
    **{("verifier_bounds", name): SPECTRE for name in (
        "_32bit_and_64bit_arithmetic_test1", "_32bit_and_64bit_arithmetic_test2",
        "reg32_0_reg32_xor_1", "reg32_0_reg32_xor_3", "reg_0_reg_xor_1", "reg_0_reg_xor_3",
        "reg_2_reg_xor_3")},
    **{("verifier_stack_ptr", name): SPECTRE for name in (
        "to_stack_check_high_3", "to_stack_check_low_2")},
    **{("verifier_unpriv", name): SPECTRE for name in (
        "alu32_mov_u32_const", "unpriv_adding_of_fp_imm", "unpriv_adding_of_fp_reg")},
    **{("verifier_value_ptr_arith", name): SPECTRE for name in (
        "lower_oob_arith_test_2", "unknown_scalar_value_ptr_3", "upper_oob_arith_test_1",
        "upper_oob_arith_test_2", "value_pointer_and_scalar_2",
        "value_ptr_unknown_scalar_2_2")},
    **{("verifier_ctx", name): OTHER_CTX for name in (
        "invalid_narrow_loadbpf_sockoptoptval", "invalid_narrow_loadbpf_sockoptoptval_end",
        "invalid_narrow_loadbpf_sockoptsk")},
    ("verifier_bounds", "shift_with_oversized_count_operand"):
        "RFC 9669 takes a shift count modulo the operand width and the engines do the same, "
        "so 1 << 32 in 32-bit ALU is known to be 1; the kernel takes an oversized count as "
        "unknown",
    **{("verifier_bounds", name):
        "the kernel bounds a pointer's variable offset to +-2^29 at the arithmetic; this "
        "verifier keeps the exact (wrapping) offset and checks it at each access, where a "
        "dereference of such a pointer is refused; nothing here is dereferenced"
       for name in ("of_boundary_crossing_range_1", "of_boundary_crossing_range_2")},
    ("verifier_sock", "invalidate_pkt_pointers_by_tail_call"):
        "a tail call made in a subprogram: in the kernel the called program returns into the "
        "subprogram's caller, having maybe moved the packet; here a tail call ends every frame "
        "and only a failed one returns, with the packet untouched (seen with --skb-as-xdp)",
    ("verifier_global_subprogs", "arg_tag_nullable_ptr_fail"):
        "global functions are verified by the kernel on their own against their BTF "
        "signature (an __arg_nullable pointer may be NULL); this verifier has no BTF func "
        "info and checks every function in its calling context, where the pointer is valid",
}

#: Whole objects, stem -> why.
OUT_OF_SCOPE_OBJECTS: dict[str, str] = {}


def out_of_scope(obj: str, program: str) -> str:
    return OUT_OF_SCOPE.get((obj, program)) or OUT_OF_SCOPE_OBJECTS.get(obj, "")


# ------------------------------------------------------------------ extraction
@dataclass(frozen=True)
class Extracted:
    """One program of an object, ready to verify (or why it is not)."""

    obj: str
    name: str
    section: str
    kind: str  # the section's own program type, lower case ("xdp", "socket_filter", ...)
    expect: Expectation
    insns: tuple[Instruction, ...] = ()
    maps: Mapping[int, MapSpec] = field(default_factory=dict)
    path: str = ""  # "loader" or "tolerant"
    notes: tuple[str, ...] = ()
    unloadable: str = ""


def section_kind(section: str) -> str:
    """The program type a section names; a leading ``?`` (not auto-loaded) is ignored."""
    found = program_type(section.lstrip("?"))
    if found is not None:
        return found[0].name.lower()
    return "unknown:" + section.lstrip("?").split("/")[0]


def _resolved(insns: Iterable[Instruction], refs: Iterable[MapReference],
              maps: Mapping[str, MapSpec], program: str
              ) -> tuple[tuple[Instruction, ...], dict[int, MapSpec]]:
    handles = {name: index + 1 for index, name in enumerate(sorted(maps))}
    resolved = resolve_map_references(tuple(insns), tuple(refs), handles, program=program)
    return resolved, {handles[name]: spec for name, spec in maps.items()}


def extract_object(path: Path) -> list[Extracted]:
    """Every program of one object; on the loader's refusal, through the tolerant path."""
    stem = path.name.split(".")[0]
    data = path.read_bytes()
    try:
        obj = load_object(data, stem)
    except LoaderError as err:
        return _tolerant(data, stem, str(err))
    tags = program_tags(obj.btf)
    result = []
    for name, spec in obj.programs.items():
        insns, maps = _resolved(spec.instructions, spec.map_refs, obj.maps, name)
        result.append(Extracted(stem, name, spec.section, section_kind(spec.section),
                                parse_expectation(tags.get(name, ())), insns, maps, "loader"))
    refused = getattr(obj, "refused", None)
    if refused:
        # Programs the loader leaves out (CO-RE the device's BTF cannot answer - these
        # objects were compiled against the machine's own BTF - or a section naming no
        # type) would vanish from the count: they go through the tolerant path.
        first = next(iter(refused.values()))
        result += [e for e in _tolerant(data, stem, str(getattr(first, "reason", first)))
                   if e.name in refused]
    return result


def _without_value_type(btf: Btf) -> Btf:
    """The BTF with the ``value`` member dropped from map definitions that also declare
    ``values`` (libbpf takes such a value type as the 4-byte id slot; the loader refuses)."""
    datasec = btf.datasec(".maps")
    if datasec is None:
        return btf
    types = list(btf.types)
    for info in datasec.secinfos:
        definition = btf.resolve(btf[info.type_id].type_id)
        names = {m.name for m in definition.members}
        if definition.kind == BtfKind.STRUCT and {"value", "values"} <= names:
            types[definition.id] = dataclasses.replace(
                definition, members=tuple(m for m in definition.members if m.name != "value"),
                vlen=definition.vlen - 1)
    return Btf(tuple(types), btf.strings)


def _core_offsets(elf: ElfObject, btf: Btf) -> dict[str, set[int]]:
    """Code section name -> byte offsets of instructions that carry a CO-RE relocation."""
    section = elf.section(".BTF.ext")
    if section is None:
        return {}
    data = section.data
    header = EXT_HEADER.unpack_from(data)
    hdr_len = header[3]
    if hdr_len < EXT_HEADER.size + EXT_CORE.size:
        return {}
    core_off, core_len = EXT_CORE.unpack_from(data, EXT_HEADER.size)
    blocks = _info_blocks(data[hdr_len:], core_off, core_len, "CO-RE relocation", btf, 16)
    return {name: {int.from_bytes(raw[:4], "little") for raw in records}
            for name, records in blocks}


def _functions(elf: ElfObject, section) -> tuple[list[Function], dict[str, str]]:
    """The functions of a code section, each decoded on its own: (decoded, name -> why not)."""
    symbols = sorted((s for s in elf.symbols_in(section.index) if s.type == "STT_FUNC"),
                     key=lambda s: s.value)
    decoded, failed = [], {}
    for i, symbol in enumerate(symbols):
        start, size = symbol.value, symbol.size
        if size == 0:
            size = (symbols[i + 1].value if i + 1 < len(symbols) else section.size) - start
        try:
            insns = tuple(decode(section.data[start:start + size]))
        except DecodeError as exc:
            failed[symbol.name] = f"cannot decode '{symbol.name}': {exc}"
            continue
        decoded.append(Function(section, symbol.name, start, size, insns))
    return decoded, failed


def _call_target(function: Function, rel_slot: int, insn: Instruction,
                 fixups: dict[int, dict[int, Fixup]],
                 broken: Mapping[tuple[int, int], str]) -> tuple[int, int] | None:
    """(section index, byte offset) a call or function address at this slot leads to."""
    offset = function.start + rel_slot * SLOT.size
    if (function.section.index, offset) in broken:
        return None
    fixup = fixups.get(function.section.index, {}).get(offset)
    if fixup is not None and fixup.kind.value in ("call", "func"):
        return fixup.target_section, fixup.target_offset
    if fixup is None and insn.is_local_call:
        return function.section.index, offset + (insn.imm + 1) * SLOT.size
    return None


def _reachable_problems(entry: Function, functions: dict[tuple[int, int], Function],
                        fixups: dict[int, dict[int, Fixup]], broken: dict[tuple[int, int], str],
                        undecodable: dict[str, tuple[str, str]]) -> list[str]:
    """Why the program cannot be linked: unsupported relocations (kfuncs, ksyms) in code
    it reaches, or calls into functions that could not be decoded."""
    problems: set[str] = set()
    seen = {(entry.section.index, entry.start)}
    todo = [entry]
    while todo:
        function = todo.pop()
        index = function.section.index
        for (section, offset), why in broken.items():
            if section == index and function.start <= offset < function.start + function.size:
                problems.add(why)
        for rel_slot, insn in zip(slot_positions(function.instructions), function.instructions):
            target = _call_target(function, rel_slot, insn, fixups, broken)
            if target is None or target in seen:
                continue
            seen.add(target)
            callee = functions.get(target)
            if callee is None:
                names = ", ".join(sorted(undecodable)) or "none"
                problems.add(f"a call leads to offset {target[1]} of section {target[0]}, "
                             f"which is no decodable function (undecodable: {names})")
                continue
            todo.append(callee)
    return sorted(problems)


def _tolerant(data: bytes, stem: str, loader_error: str) -> list[Extracted]:
    try:
        elf = read_elf(data)
        btf_section = elf.section(".BTF")
        btf = parse_btf(btf_section.data) if btf_section is not None else None
        lines = {}
        core: dict[str, set[int]] = {}
        ext_section = elf.section(".BTF.ext")
        if ext_section is not None and btf is not None:
            lines = parse_btf_ext(ext_section.data, btf).line_info
            core = _core_offsets(elf, btf)
        maps, symbols = collect_maps(elf, _without_value_type(btf) if btf else None, stem)
    except LoaderError as err:
        return [Extracted(stem, "*", "", "", Expectation(), unloadable=f"object: {err}")]
    tags = program_tags(btf)
    functions: dict[tuple[int, int], Function] = {}
    entries: list[Function] = []
    undecodable: dict[str, tuple[str, str]] = {}  # function -> (section, why)
    fixups: dict[int, dict[int, Fixup]] = {}
    broken: dict[tuple[int, int], str] = {}  # (section index, offset) -> why
    for section in elf.sections:
        if not section.is_code or section.size == 0:
            continue
        decoded, failed = _functions(elf, section)
        for name, why in failed.items():
            undecodable[name] = (section.name, why)
        for function in decoded:
            functions[(section.index, function.start)] = function
            if section.name != SUBPROGRAM_SECTION:
                entries.append(function)
        section_fixups: dict[int, Fixup] = {}
        for reloc in elf.relocations.get(section.index, ()):
            try:
                fixup = _resolve(elf, section, reloc, symbols)
            except LoaderError as err:
                broken[(section.index, reloc.offset)] = err.detail
                continue
            section_fixups[fixup.offset] = fixup
        fixups[section.index] = section_fixups

    by_name = {f.name: f for f in functions.values()}
    result = []
    for name, (section_name, why) in undecodable.items():
        if section_name != SUBPROGRAM_SECTION:
            result.append(Extracted(stem, name, section_name, section_kind(section_name),
                                    parse_expectation(tags.get(name, ())), path="tolerant",
                                    unloadable=why))
    for entry in entries:
        base = Extracted(stem, entry.name, entry.section.name, section_kind(entry.section.name),
                         parse_expectation(tags.get(entry.name, ())), path="tolerant")
        problems = _reachable_problems(entry, functions, fixups, broken, undecodable)
        if problems:
            result.append(dataclasses.replace(base, unloadable="; ".join(problems)))
            continue
        try:
            linked = link_program(entry, functions, fixups, lines)
        except LoaderError as err:
            result.append(dataclasses.replace(base, unloadable=err.detail))
            continue
        placed = [by_name[info.name] for info in linked.functions]
        notes = []
        if any(f.start <= offset < f.start + f.size
               for f in placed for offset in core.get(f.section.name, ())):
            notes.append("CO-RE relocations left as compiled")
        try:
            insns, handles = _resolved(linked.instructions, linked.map_refs, maps, entry.name)
        except Exception as err:  # noqa: BLE001 - reported, not hidden
            result.append(dataclasses.replace(base, unloadable=str(err)))
            continue
        result.append(dataclasses.replace(base, insns=insns, maps=handles, notes=tuple(notes)))
    if not result:
        result.append(Extracted(stem, "*", "", "", Expectation(),
                                unloadable=f"object: no program ({loader_error})"))
    return result


def extract(directory: Path) -> list[Extracted]:
    programs = []
    for path in sorted(directory.glob("*.o")):
        programs.extend(extract_object(path))
    return programs


# ------------------------------------------------------------------ skb packet pointers
#: Program kinds whose __sk_buff gives direct, writable packet access in the kernel.
SKB_KINDS = frozenset({"sched_cls", "sched_act", "sk_skb"})
#: __sk_buff data, data_end, data_meta -> xdp_md data, data_end, data_meta.
SKB_TO_XDP = {76: 0, 80: 4, 140: 8}
SKB_NOTE = "__sk_buff data/data_end/data_meta loads mapped to xdp_md"


def skb_as_xdp(insns: tuple[Instruction, ...]) -> tuple[tuple[Instruction, ...], bool]:
    """Point the 32-bit loads of __sk_buff's packet pointers at the XDP context's, so a tc
    program's packet accesses are judged instead of refused for their context offsets.

    Only the straight-line start of the program is rewritten (up to its first jump, call or
    exit), where the registers holding the context are known exactly: r1 and its copies.
    """
    out = list(insns)
    ctx = {1}
    changed = False
    for index, insn in enumerate(insns):
        cls = insn.cls
        if cls in (InsnClass.JMP, InsnClass.JMP32):
            break
        if cls == InsnClass.LDX and insn.mode == Mode.MEM and insn.size == Size.W \
                and insn.src in ctx and insn.off in SKB_TO_XDP:
            out[index] = insn.with_fields(off=SKB_TO_XDP[insn.off])
            changed = True
        copy = cls == InsnClass.ALU64 and insn.opcode == (InsnClass.ALU64 | Source.X | AluOp.MOV) \
            and insn.off == 0 and insn.src in ctx
        writes = cls in (InsnClass.ALU, InsnClass.ALU64, InsnClass.LDX) or insn.is_lddw
        if copy:
            ctx.add(insn.dst)
        elif writes:
            ctx.discard(insn.dst)
    return tuple(out), changed


# ------------------------------------------------------------------ verification
@dataclass(frozen=True)
class Outcome:
    """Our verdict on one program and its comparison with the kernel's expectation."""

    obj: str
    name: str
    kind: str
    path: str
    kernel: str  # "refuse" / "accept" / "auxiliary" / "unloadable"
    refused_in: str  # "priv" / "unpriv" / ""
    ours: str  # "refuse" / "accept" / "timeout" / "error" / ""
    reason: str = ""  # ours
    our_class: str = ""
    kernel_class: str = ""
    kernel_msgs: tuple[str, ...] = ()
    verdict: str = ""  # agree / DISAGREE / precision-loss / both-accept / skipped
    out_of_scope: str = ""
    notes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    kernel_as_xdp: str = ""  # optional cross-check: "accept" / "refuse: why" / "n/a: why"


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):  # noqa: ARG001
    raise _Timeout()


def _verify_one(item: Extracted) -> tuple[str, str]:
    caps = load_profile(PROFILE)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        verify(item.insns, prog_type=ProgType.XDP, caps=caps, maps=dict(item.maps),
               log_level=0)
    except VerifierError as err:
        return "refuse", err.reason
    except _Timeout:
        return "timeout", f"took more than {TIMEOUT:.0f} s"
    except Exception as err:  # noqa: BLE001 - a crash is a finding, reported as such
        return "error", f"{type(err).__name__}: {err}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return "accept", ""


def judge(item: Extracted, ours: str, reason: str) -> Outcome:
    expect = item.expect
    kclass = message_class(expect.failure_messages) if expect.kernel_refuses else ""
    base = Outcome(item.obj, item.name, item.kind, item.path,
                   "refuse" if expect.kernel_refuses else "accept", expect.refused_in, ours,
                   reason, our_class(reason) if ours == "refuse" else "", kclass,
                   expect.failure_messages if expect.kernel_refuses else (),
                   notes=item.notes, flags=expect.flags,
                   out_of_scope=out_of_scope(item.obj, item.name))
    if item.unloadable:
        return dataclasses.replace(base, kernel="unloadable", ours="", reason=item.unloadable,
                                   verdict="skipped")
    if expect.auxiliary:
        return dataclasses.replace(base, kernel="auxiliary", verdict="skipped")
    if ours not in ("accept", "refuse"):
        return dataclasses.replace(base, verdict=ours)
    if expect.kernel_refuses:
        verdict = "agree" if ours == "refuse" else "DISAGREE"
    else:
        verdict = "both-accept" if ours == "accept" else "precision-loss"
    return dataclasses.replace(base, verdict=verdict)


def run(directory: Path, *, jobs: int = 2, select: str = "",
        skb: bool = False) -> list[Outcome]:
    """Judge every program of the objects in ``directory``; ``skb`` maps the packet pointers
    of tc programs onto XDP's (:func:`skb_as_xdp`)."""
    items = extract(directory)
    if select:
        pattern = re.compile(select)
        items = [i for i in items if pattern.search(f"{i.obj}/{i.name}")]
    if skb:
        items = [_with_skb_mapped(i) for i in items]
    todo = [i for i in items if not i.unloadable and not i.expect.auxiliary]
    verdicts: dict[int, tuple[str, str]] = {}
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for index, result in zip(range(len(todo)), pool.map(_verify_one, todo,
                                                                  chunksize=4)):
                verdicts[id(todo[index])] = result
    else:
        for item in todo:
            verdicts[id(item)] = _verify_one(item)
    return [judge(item, *verdicts.get(id(item), ("", ""))) for item in items]


def _with_skb_mapped(item: Extracted) -> Extracted:
    if item.kind not in SKB_KINDS or not item.insns:
        return item
    insns, changed = skb_as_xdp(item.insns)
    if not changed:
        return item
    return dataclasses.replace(item, insns=insns, notes=item.notes + (SKB_NOTE,))


# ------------------------------------------------------------------ host kernel cross-check
def kernel_cross_check(directory: Path, outcomes: list[Outcome], *,
                       skb: bool = False) -> list[Outcome]:
    """Load each program into the host kernel as XDP (privileged, as root): the kernel's own
    verdict on the very bytes we judged, in the same program type."""
    from offload.backends.kernel import KernelMap, KernelVerifierError, kernel_available
    from offload.backends.kernel import load_program as kernel_load
    from offload.isa.opcodes import PseudoSrc

    usable, why = kernel_available()
    if not usable:
        return [dataclasses.replace(o, kernel_as_xdp=f"n/a: {why}") for o in outcomes]
    items = {(i.obj, i.name): _with_skb_mapped(i) if skb else i for i in extract(directory)}
    result = []
    for outcome in outcomes:
        item = items.get((outcome.obj, outcome.name))
        if item is None or item.unloadable or not item.insns:
            result.append(outcome)
            continue
        live: dict[int, KernelMap] = {}
        try:
            try:
                for handle, spec in item.maps.items():
                    live[handle] = KernelMap.create(spec)
            except Exception as err:  # noqa: BLE001
                result.append(dataclasses.replace(outcome, kernel_as_xdp=f"n/a: map: {err}"))
                continue
            insns = []
            for insn in item.insns:
                if insn.is_lddw and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
                    known = live.get(insn.imm)
                    insn = insn.with_fields(imm=known.fd if known is not None else 0x7FFFFFF0)
                insns.append(insn)
            try:
                kernel_load(insns, prog_type=ProgType.XDP, name=item.name[:15]).close()
                verdict = "accept"
            except KernelVerifierError as err:
                verdict = f"refuse: {err.reason or err}"
            except Exception as err:  # noqa: BLE001
                verdict = f"n/a: {err}"
            result.append(dataclasses.replace(outcome, kernel_as_xdp=verdict))
        finally:
            for km in live.values():
                km.close()
    return result


# ------------------------------------------------------------------ report
@dataclass
class Summary:
    objects: int = 0
    objects_tolerant: int = 0
    programs: int = 0
    unloadable: int = 0
    auxiliary: int = 0
    judged: int = 0
    expected_failure: int = 0
    refused: int = 0
    refused_incidental: int = 0
    accepted_by_class: Counter = field(default_factory=Counter)
    expected_success: int = 0
    success_accepted: int = 0
    timeouts: int = 0
    errors: int = 0
    failing: list[Outcome] = field(default_factory=list)  # in-scope memory/division accepts

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["accepted_by_class"] = dict(self.accepted_by_class)
        data["failing"] = [f"{o.obj}/{o.name}" for o in self.failing]
        return data


def summarise(outcomes: list[Outcome]) -> Summary:
    s = Summary()
    s.objects = len({o.obj for o in outcomes})
    s.objects_tolerant = len({o.obj for o in outcomes if o.path == "tolerant"})
    s.programs = sum(1 for o in outcomes if o.name != "*")
    for o in outcomes:
        if o.kernel == "unloadable":
            s.unloadable += o.name != "*"
            continue
        if o.kernel == "auxiliary":
            s.auxiliary += 1
            continue
        if o.ours == "timeout":
            s.timeouts += 1
            continue
        if o.ours == "error":
            s.errors += 1
            continue
        s.judged += 1
        if o.kernel == "refuse":
            s.expected_failure += 1
            if o.ours == "refuse":
                s.refused += 1
                s.refused_incidental += o.our_class == "incidental"
            else:
                s.accepted_by_class[o.kernel_class] += 1
                if o.kernel_class in (MEMORY, DIVISION) and not o.out_of_scope:
                    s.failing.append(o)
        else:
            s.expected_success += 1
            s.success_accepted += o.ours == "accept"
    return s


def render(outcomes: list[Outcome], *, listing: bool = False) -> str:
    s = summarise(outcomes)
    out = [
        f"objects: {s.objects} ({s.objects_tolerant} through the tolerant path)",
        f"programs extracted: {s.programs} (not loadable: {s.unloadable}, auxiliary: "
        f"{s.auxiliary}, timeouts: {s.timeouts}, crashes: {s.errors}); judged: {s.judged}",
        f"kernel refuses: {s.expected_failure}; we refuse: {s.refused} "
        f"({s.refused_incidental} of them for an incidental reason); we accept: "
        f"{s.expected_failure - s.refused}",
    ]
    for cls, count in sorted(s.accepted_by_class.items(), key=lambda kv: -kv[1]):
        out.append(f"    accepted, kernel class {cls:<20} {count}")
    out.append(f"kernel accepts: {s.expected_success}; we accept: {s.success_accepted}")
    out.append(f"in-scope memory/division disagreements: {len(s.failing)}")
    out.append("")
    header = f"{'verdict':<15} {'class':<19} {'type':<15} {'object/program':<62} detail"
    out.append(header)
    out.append("-" * len(header))
    shown = [o for o in outcomes if listing or o.verdict in ("DISAGREE", "timeout", "error")]
    order = {MEMORY: 0, DIVISION: 1, LEAK: 2, OTHER: 3, NO_MESSAGE: 4}
    shown.sort(key=lambda o: (o.verdict != "DISAGREE", order.get(o.kernel_class, 9), o.obj,
                              o.name))
    for o in shown:
        detail = " | ".join(o.kernel_msgs) if o.verdict == "DISAGREE" else o.reason
        if o.refused_in == "unpriv":
            detail = "[unpriv] " + detail
        if o.out_of_scope:
            detail = f"[out of scope: {o.out_of_scope}] " + detail
        if o.kernel_as_xdp:
            detail += f"  {{kernel as xdp: {o.kernel_as_xdp[:60]}}}"
        out.append(f"{o.verdict:<15} {o.kernel_class or o.our_class:<19} {o.kind[:15]:<15} "
                   f"{(o.obj + '/' + o.name)[:62]:<62} {detail[:160]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("objects", type=Path, help="directory of built verifier_*.o objects")
    parser.add_argument("--json", type=Path, help="write every outcome and the summary here")
    parser.add_argument("--list", action="store_true", help="list every program, not only "
                                                            "the disagreements")
    parser.add_argument("--kernel", action="store_true",
                        help="also load each program into the host kernel as XDP (root)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--select", default="", help="regex on OBJECT/PROGRAM")
    parser.add_argument("--skb-as-xdp", action="store_true",
                        help="map tc programs' __sk_buff packet pointers onto xdp_md's")
    args = parser.parse_args(argv)
    if not args.objects.is_dir():
        parser.error(f"{args.objects} is not a directory")
    outcomes = run(args.objects, jobs=args.jobs, select=args.select, skb=args.skb_as_xdp)
    if args.kernel:
        outcomes = kernel_cross_check(args.objects, outcomes, skb=args.skb_as_xdp)
    print(render(outcomes, listing=args.list))
    if args.json:
        payload = {"summary": summarise(outcomes).as_dict(),
                   "outcomes": [dataclasses.asdict(o) for o in outcomes]}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
