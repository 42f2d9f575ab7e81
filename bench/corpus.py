"""Real XDP programs against the host kernel: what the device accepts of what Linux accepts.

Give a directory of BPF objects built from public projects (a local corpus, never committed:
build it outside this repository, see BENCHMARKS.md). For every XDP program of every object
the harness asks two judges and compares them:

* the host kernel (as root): the object is opened with libbpf through ctypes, as the projects
  themselves load it (CO-RE, BTF, global data, static map slots), only that program loaded, as
  XDP; accepted or refused, the kernel's ``verified_insns`` and, on refusal, the reason line of
  its log. Objects libbpf cannot open (legacy ``maps`` sections) go through this project's
  loader and kernel backend instead. Maps declared with ``max_entries`` 0 are sized first, as
  their userspace does before loading;
* the device: ``offload.loader.load_object`` then ``offload.verifier.verify`` with the
  ``full`` profile, as ``offload-migrate verify`` does, in worker processes, each program
  under a limit of CPU time. A refusal is classed by cause (CO-RE, section name, map type,
  max_entries 0, may_goto, map-in-map form, processed-instruction limit, unknown helper...).
  Processed instructions of a refused program: the count the refusal states (the limit), or
  else the states the verifier stepped through before it stopped (pruned ones not counted).

A loader that refuses a whole object counts every XDP program of it as refused with that
reason; a loader that leaves out single programs counts those. The programs of an object are
read from its ELF symbols (pyelftools), so both answers have the same denominator.

    .venv/bin/python bench/corpus.py DIR [--setup] [--json OUT] [--timeout 30] [--jobs N]
                                         [--no-kernel] [--libbpf PATH]

``--setup`` gives the device what userspace sets before loading (the kernel side always has
it): the XDP type for programs whose section names none, sizes for maps declared with 0.

``--json -`` prints the JSON report instead of the table.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import dataclasses
import errno
import functools
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from elftools.common.exceptions import ELFError  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

from offload.caps import load_profile  # noqa: E402
from offload.isa.disasm import slot_positions  # noqa: E402
from offload.loader import LoaderError, load_object  # noqa: E402
from offload.loader.sections import program_type  # noqa: E402
from offload.program import resolve_map_references  # noqa: E402
from offload.uapi import MapFlags, MapType, ProgType  # noqa: E402
from offload.verifier import Observer, VerifierError, verify  # noqa: E402

PROFILE = "full"
#: Seconds the device may spend on one program (loading its object and verifying it).
TIMEOUT = 30.0
#: max_entries given to maps declared with 0, which their userspace sizes before loading.
MAP_SIZE = 64
BPF_PROG_TYPE_XDP = int(ProgType.XDP)
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_RINGBUF = 27
KERNEL_LOG_SIZE = 16 << 20
SHF_EXECINSTR = 0x4
#: The device's processed-instruction limit names its count in the refusal.
_DEVICE_PROCESSED = re.compile(r"Processed (\d+) insn")


# ------------------------------------------------------------------ the programs of an object
@dataclass(frozen=True)
class ElfProgram:
    """One XDP program as the object's ELF shows it.

    ``forced``: its section does not name the XDP type (an old-style or custom name such as
    ``xdp_sock`` or ``prog``); it is loaded as XDP, as ``bpftool prog loadall ... type xdp``
    and libxdp do.
    """

    obj: str
    name: str
    section: str
    forced: bool


def is_xdp_section(name: str) -> tuple[bool, bool]:
    """(an XDP program section, its type forced): ``xdp``, ``xdp.frags``, ``xdp/...`` are XDP;
    other ``xdp*`` names and names of no known type are loaded as XDP; other types are not."""
    kind = program_type(name)
    if kind is not None:
        return (kind[0] == ProgType.XDP, False)
    if name.startswith(".") or name in ("license", "version", "maps"):
        return (False, False)
    return (True, True)


def elf_programs(path: Path) -> list[ElfProgram]:
    """The XDP programs of an object: the function symbols of its XDP code sections.

    A section's global functions are its programs (static ones are subprograms, as libbpf
    has them); a section with only static functions counts each of them.
    """
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            sections = {}
            for index, section in enumerate(elf.iter_sections()):
                if section["sh_flags"] & SHF_EXECINSTR and section["sh_size"] > 0:
                    xdp, forced = is_xdp_section(section.name)
                    if xdp:
                        sections[index] = (section.name, forced)
            symtab = elf.get_section_by_name(".symtab")
            found: dict[int, list[tuple[str, bool]]] = {i: [] for i in sections}
            if symtab is not None:
                for sym in symtab.iter_symbols():
                    shndx = sym["st_shndx"]
                    if (sym["st_info"]["type"] == "STT_FUNC" and isinstance(shndx, int)
                            and shndx in found and sym.name):
                        found[shndx].append((sym.name, sym["st_info"]["bind"] != "STB_LOCAL"))
    except (OSError, ELFError) as exc:
        raise LoaderError(f"cannot read {path}: {exc}.") from exc
    programs = []
    for index, (section, forced) in sections.items():
        symbols = found[index]
        chosen = [n for n, public in symbols if public] or [n for n, _ in symbols]
        programs.extend(ElfProgram(path.name, n, section, forced) for n in chosen)
    return programs


# ------------------------------------------------------------------ causes
#: Cause groups of a device refusal, in the issue's order.
GROUPS = ("CO-RE", "program type (section name)", "max_entries 0",
          "processed-insn limit (pruning)", "time limit", "map type", "may_goto / new helpers",
          "map-in-map form", "extern (kfunc/ksym/kconfig)", "unprivileged policy", "other")

_MAP_TYPE = re.compile(r"map type (\w+)")
_HELPER = re.compile(r"unknown func (\w+)#(\d+)")
#: Refusals the kernel makes in unprivileged mode only (the device applies those rules).
_UNPRIV = ("attempt to corrupt spilled pointer", "prohibited for !root", "leaks addr",
           "pointer comparison prohibited", "speculative", "into map value is prohibited",
           "partial copy of pointer")


def helper_label(helper_id: int) -> str:
    """``name#id`` of a helper, its UAPI name where the device's table lacks it."""
    try:
        from offload.helpers.prototypes import HelperId
        return f"{HelperId(helper_id).name.lower()}#{helper_id}"
    except (ImportError, ValueError):
        return f"{UAPI_HELPERS.get(helper_id, 'helper')}#{helper_id}"


#: UAPI names of helpers a device table may not know (include/uapi/linux/bpf.h).
UAPI_HELPERS = {93: "spin_lock", 94: "spin_unlock", 99: "skc_lookup_tcp",
                100: "tcp_check_syncookie", 177: "trace_vprintk", 181: "loop"}


def classify(stage: str, reason: str, kind: str = "",
             at_helper: str = "") -> tuple[str, str]:
    """(group, cause) of a device refusal from its stage (loader, verifier, limit, crash),
    its text, for a program the loader refused alone the loader's kind of refusal, and the
    helper called by the failing instruction if it is a call."""
    text = reason.lower()
    if stage == "limit":
        return "time limit", "time limit"
    if stage == "crash":
        return "other", "worker died"
    if stage == "loader":
        if kind == "co-re" or "co-re" in text:
            return "CO-RE", "CO-RE relocations"
        if kind == "section" or "does not name a program type" in text \
                or "missing program type" in text:
            return "program type (section name)", "section name"
        if "max_entries 0" in text:
            return "max_entries 0", "max_entries 0"
        if "may_goto" in text or "0xe5" in text:
            return "may_goto / new helpers", "may_goto"
        if kind == "instruction" or "cannot decode" in text or "opcode" in text:
            return "may_goto / new helpers", "undecodable instruction"
        if "__array(values" in text or "4-byte values" in text or "hold maps" in text \
                or "map of maps" in text or "inner map" in text:
            return "map-in-map form", "map-in-map declaration"
        if kind == "extern" or "extern" in text:
            return "extern (kfunc/ksym/kconfig)", "extern symbols"
        found = _MAP_TYPE.search(reason)
        if found:
            return "map type", f"map type {found.group(1)}"
        if "static initialisation" in text:
            return "other", "static map slots (.values)"
        if "bpf_map_def" in text:
            return "other", "legacy map definition"
        return "other", f"loader ({kind or 'object'}): {_short(reason)}"
    found = _MAP_TYPE.search(reason)
    if found and "not supported" in text:
        return "map type", f"map type {found.group(1)}"
    if "too large" in text and "processed" in text:
        return "processed-insn limit (pruning)", "processed-insn limit"
    if "too complex" in text:
        return "processed-insn limit (pruning)", "too complex"
    found = _HELPER.search(reason)
    if found:
        name = found.group(1)
        if name.endswith("unknown"):
            name = UAPI_HELPERS.get(int(found.group(2)), name)
        return "may_goto / new helpers", f"helper {name}#{found.group(2)}"
    if at_helper and "!read_ok" in text:
        return "other", f"argument register not initialised at {at_helper}"
    if "may_goto" in text:
        return "may_goto / new helpers", "may_goto"
    if "source func" in text:
        return "may_goto / new helpers", "callback (ld_imm64 FUNC)"
    if any(rule in text for rule in _UNPRIV):
        return "unprivileged policy", f"unprivileged: {_short(reason)}"
    if "verifier bug" in text:
        return "other", "verifier bug"
    return "other", f"verifier: {_short(reason)}"


def _short(reason: str) -> str:
    """A refusal reason with numbers and names folded, so equal causes count together."""
    text = re.sub(r"'[^']*'", "'X'", reason)
    text = re.sub(r"\b(r|R|fp-?)\d+\b", r"\1N", text)
    text = re.sub(r"-?\b\d+\b", "N", text)
    return text[:100]


# ------------------------------------------------------------------ the device
class TimeLimit(BaseException):
    """The CPU-time limit of one program (a BaseException: the verifier turns every Exception
    into a refusal, and this is none)."""


def _alarm(signum: int, frame: Any) -> None:
    raise TimeLimit()


@functools.lru_cache(maxsize=4)
def _load(path: str, setup: bool, sections: tuple[str, ...]) -> Any:
    """The loaded object, or the LoaderError refusing it whole (cached: one load per object).

    ``setup`` sets before loading what userspace sets (and what the kernel side gets): the
    XDP type for programs whose section names none, and ``MAP_SIZE`` entries for maps
    declared with 0. A loader without those options gets ``sections`` as entry sections.
    """
    try:
        obj = load_object(path)
    except LoaderError as exc:
        if not setup or not sections:
            return exc
        try:
            return load_object(path, entry_sections={s: ProgType.XDP for s in sections})
        except LoaderError as again:
            return again
    if not setup:
        return obj
    refused = getattr(obj, "refused", None) or {}
    types = {name: "xdp" for name, why in refused.items()
             if getattr(getattr(why, "kind", None), "value", "") == "section"}
    sizes = {}
    for why in (getattr(obj, "refused_maps", None) or {}).values():
        found = re.search(r"--map-size (\S+)=N", str(why))
        if found:
            sizes[found.group(1)] = MAP_SIZE
    if not types and not sizes:
        return obj
    try:
        return load_object(path, prog_types=types, map_sizes=sizes)
    except LoaderError as exc:
        return exc


def _refusal(obj: Any, name: str) -> tuple[str, str]:
    """(reason, kind) of a program the loader refused alone, as far as it says."""
    refused = getattr(obj, "refused", None)
    if isinstance(refused, Mapping) and name in refused:
        why = refused[name]
        kind = getattr(why, "kind", None)
        return str(getattr(why, "reason", why)), str(getattr(kind, "value", kind or ""))
    return "the loader did not load this program", ""


def device_check(path: str, name: str, timeout: float = TIMEOUT, profile: str = PROFILE,
                 setup: bool = False, sections: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load ``path`` and verify its program ``name`` as XDP, within ``timeout`` CPU seconds.

    Runs in a worker process (the limit is a SIGPROF timer). ``setup`` and ``sections``: see
    :func:`_load`.
    """
    result: dict[str, Any] = {"accepted": False, "stage": "", "reason": "", "kind": "",
                              "processed": None, "load_s": 0.0, "verify_s": 0.0,
                              "verify_cpu_s": 0.0}
    processed = 0

    class Counting(Observer):
        def state(self, slot: int, state: Any) -> None:
            nonlocal processed
            processed += 1

    count = Counting()

    previous = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, timeout)  # CPU time: fair on a busy machine
    stage = "loader"
    start = begin = time.perf_counter()
    cpu = time.process_time()
    try:
        obj = _load(path, setup, sections)
        result["load_s"] = time.perf_counter() - start
        if isinstance(obj, LoaderError):
            kind = getattr(obj, "kind", None)
            result.update(stage="loader", reason=str(obj),
                          kind=str(getattr(kind, "value", "")) if kind else "object")
            return result
        spec = obj.programs.get(name)
        if spec is None:
            reason, kind = _refusal(obj, name)
            result.update(stage="loader", reason=reason, kind=kind)
            return result
        handles = {map_name: n for n, map_name in enumerate(obj.maps, start=1)}
        resolver = {handles[map_name]: mspec for map_name, mspec in obj.maps.items()}
        insns = resolve_map_references(spec.instructions, spec.map_refs, handles, program=name)
        result["insns"] = sum(i.width for i in insns)
        stage = "verifier"
        caps = load_profile(profile)
        begin, cpu = time.perf_counter(), time.process_time()
        try:
            stats = verify(insns, prog_type=ProgType.XDP, caps=caps, maps=resolver,
                           log_level=0, observer=count, license=spec.license,
                           expected_attach_type=spec.expected_attach_type,
                           functions=spec.functions)
        except VerifierError as err:
            stated = _DEVICE_PROCESSED.search(err.reason)  # the limit names its count
            result.update(stage="verifier", reason=err.reason, insn=err.insn_index,
                          processed=int(stated.group(1)) if stated else processed)
            at = {slot: insn for slot, insn in zip(slot_positions(insns), insns)}
            failing = at.get(err.insn_index)
            if failing is not None and failing.is_helper_call:
                result["at_helper"] = helper_label(failing.imm)
        else:
            result.update(accepted=True, processed=stats.insns_processed)
        result["verify_s"] = time.perf_counter() - begin
        result["verify_cpu_s"] = time.process_time() - cpu
    except TimeLimit:
        result.update(stage="limit", reason=f"no verdict within {timeout:g} s of CPU ({stage})",
                      processed=processed or None, verify_s=time.perf_counter() - begin,
                      verify_cpu_s=time.process_time() - cpu)
    except LoaderError as exc:  # map references the loader could not resolve
        result.update(stage="loader", reason=str(exc), kind="")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
    return result


def device_results(programs: Sequence[ElfProgram], directory: Path, *, timeout: float,
                   jobs: int, profile: str, setup: bool) -> list[dict[str, Any]]:
    """The device's answer for every program, in order, from ``jobs`` worker processes.

    A worker that dies (a crash, out of memory) breaks the pool: the programs left without
    an answer are then run one per pool, so only the one that kills its worker is counted
    as ``worker died``.
    """
    def submit(pool: ProcessPoolExecutor, i: int) -> Any:
        p = programs[i]
        forced = (p.section,) if setup and p.forced else ()
        return pool.submit(device_check, str(directory / p.obj), p.name, timeout, profile,
                           setup, forced)

    results: list[dict[str, Any] | None] = [None] * len(programs)
    broken = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {i: submit(pool, i) for i in range(len(programs))}
        for i, future in futures.items():
            try:
                results[i] = future.result()
            except BrokenProcessPool:
                broken.append(i)
    for i in broken:
        with ProcessPoolExecutor(max_workers=1) as pool:
            try:
                results[i] = submit(pool, i).result()
            except BrokenProcessPool:
                results[i] = {"accepted": False, "stage": "crash", "reason": "worker died",
                              "kind": "", "processed": None, "load_s": 0.0, "verify_s": 0.0,
                              "verify_cpu_s": 0.0}
    return [r for r in results if r is not None]


# ------------------------------------------------------------------ the kernel
class Libbpf:
    """The few libbpf calls the harness needs, through ctypes (no compiled extension)."""

    def __init__(self, path: str | None = None) -> None:
        name = path or ctypes.util.find_library("bpf") or "libbpf.so.1"
        lib = ctypes.CDLL(name, use_errno=True)
        vp, cp = ctypes.c_void_p, ctypes.c_char_p
        for fn, res, args in (
                ("bpf_object__open_file", vp, [cp, vp]),
                ("bpf_object__load", ctypes.c_int, [vp]),
                ("bpf_object__close", None, [vp]),
                ("bpf_object__next_program", vp, [vp, vp]),
                ("bpf_object__next_map", vp, [vp, vp]),
                ("bpf_program__name", cp, [vp]),
                ("bpf_program__section_name", cp, [vp]),
                ("bpf_program__type", ctypes.c_int, [vp]),
                ("bpf_program__set_type", ctypes.c_int, [vp, ctypes.c_int]),
                ("bpf_program__set_autoload", ctypes.c_int, [vp, ctypes.c_bool]),
                ("bpf_program__set_log_buf", ctypes.c_int, [vp, vp, ctypes.c_size_t]),
                ("bpf_program__fd", ctypes.c_int, [vp]),
                ("bpf_map__type", ctypes.c_int, [vp]),
                ("bpf_map__max_entries", ctypes.c_uint32, [vp]),
                ("bpf_map__set_max_entries", ctypes.c_int, [vp, ctypes.c_uint32]),
                ("bpf_map__set_pin_path", ctypes.c_int, [vp, cp])):
            func = getattr(lib, fn)
            func.restype, func.argtypes = res, args
        self.lib = lib
        self.name = name

    def programs(self, obj: int) -> Iterator[int]:
        prog = self.lib.bpf_object__next_program(obj, None)
        while prog:
            yield prog
            prog = self.lib.bpf_object__next_program(obj, prog)

    def maps(self, obj: int) -> Iterator[int]:
        m = self.lib.bpf_object__next_map(obj, None)
        while m:
            yield m
            m = self.lib.bpf_object__next_map(obj, m)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """libbpf's own messages (its default printer writes to fd 2), as one string."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


_PROCESSED = re.compile(r"processed (\d+) insns")


def _kernel_reason(log: str, messages: str) -> str:
    from offload.backends.kernel.programs import rejection_reason
    reason = rejection_reason(log) if log.strip() else ""
    if not reason:  # libbpf's first complaint (its last line only says the load failed)
        lines = [line.strip() for line in messages.splitlines()
                 if "libbpf:" in line and "failed to load object" not in line]
        reason = lines[0] if lines else ""
    return reason


def kernel_check_libbpf(lib: Libbpf, path: Path, program: ElfProgram) -> dict[str, Any]:
    """Load one program of ``path`` with libbpf as XDP: accepted, verified_insns, reason."""
    from offload.backends.kernel.info import prog_info
    log = ctypes.create_string_buffer(KERNEL_LOG_SIZE)
    result: dict[str, Any] = {"status": "n/a", "verified_insns": None, "reason": "",
                              "via": "libbpf"}
    with captured_stderr() as messages:
        obj = lib.lib.bpf_object__open_file(str(path).encode(), None)
        if not obj:
            code = ctypes.get_errno()
            result["open_errno"] = errno.errorcode.get(code, str(code))
    if not obj:
        result["reason"] = _kernel_reason("", messages[0]) or "libbpf cannot open the object"
        return result
    try:
        found = False
        for prog in lib.programs(obj):
            name = lib.lib.bpf_program__name(prog).decode()
            if name != program.name:
                lib.lib.bpf_program__set_autoload(prog, False)
                continue
            found = True
            if lib.lib.bpf_program__type(prog) != BPF_PROG_TYPE_XDP:
                lib.lib.bpf_program__set_type(prog, BPF_PROG_TYPE_XDP)
            lib.lib.bpf_program__set_log_buf(prog, ctypes.addressof(log), KERNEL_LOG_SIZE)
            target = prog
        if not found:
            result["reason"] = "libbpf does not see this program"
            return result
        sized = []
        for m in lib.maps(obj):
            lib.lib.bpf_map__set_pin_path(m, None)  # never pin, never reuse pinned maps
            if lib.lib.bpf_map__max_entries(m) == 0 and lib.lib.bpf_map__type(m) not in (
                    BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_RINGBUF):
                lib.lib.bpf_map__set_max_entries(m, MAP_SIZE)
                sized.append(m)
        with captured_stderr() as messages:
            rc = lib.lib.bpf_object__load(obj)
        text = log.value.decode("utf-8", "replace")
        if sized:
            result["sized_maps"] = len(sized)
        if rc == 0:
            fd = lib.lib.bpf_program__fd(target)
            result.update(status="accepted", verified_insns=prog_info(fd).verified_insns)
            return result
        code = -rc
        result["errno"] = errno.errorcode.get(code, str(code))
        found_n = _PROCESSED.findall(text)
        if text.strip():  # the kernel's verifier spoke: a refusal
            result.update(status="refused", reason=_kernel_reason(text, messages[0]),
                          verified_insns=int(found_n[-1]) if found_n else None)
        else:  # refused before the program reached the kernel (libbpf, map creation)
            result.update(status="n/a", reason=_kernel_reason("", messages[0])
                          or f"libbpf: {result['errno']}")
        return result
    finally:
        lib.lib.bpf_object__close(obj)


def kernel_check_backend(path: Path, program: ElfProgram) -> dict[str, Any]:
    """The same through this project's loader and kernel backend (objects libbpf refuses to
    open, such as legacy ``maps`` sections)."""
    from offload.backends.kernel import KernelMap, KernelVerifierError, load_program_spec
    from offload.errors import OffloadError
    result: dict[str, Any] = {"status": "n/a", "verified_insns": None, "reason": "",
                              "via": "backend"}
    obj = _load(str(path), True, (program.section,) if program.forced else ())
    if isinstance(obj, LoaderError):
        result["reason"] = f"loader: {obj}"
        return result
    spec = obj.programs.get(program.name)
    if spec is None:
        result["reason"] = f"loader: {_refusal(obj, program.name)[0]}"
        return result
    maps: dict[str, KernelMap] = {}
    try:
        for name, mspec in obj.maps.items():
            if mspec.max_entries == 0 and mspec.type not in (BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                                             BPF_MAP_TYPE_RINGBUF):
                mspec = dataclasses.replace(mspec, max_entries=MAP_SIZE)
            if mspec.type == MapType.LPM_TRIE:  # the kernel wants it; old loaders added it
                mspec = dataclasses.replace(mspec, flags=mspec.flags | MapFlags.NO_PREALLOC)
            maps[name] = KernelMap.create(mspec)
        if spec.type != ProgType.XDP:
            spec = dataclasses.replace(spec, type=ProgType.XDP)
        try:
            prog = load_program_spec(spec, maps)
        except KernelVerifierError as err:
            found_n = _PROCESSED.findall(err.log)
            result.update(status="refused", reason=err.reason or err.name,
                          verified_insns=int(found_n[-1]) if found_n else None)
            return result
        try:
            result.update(status="accepted", verified_insns=prog.info().verified_insns)
        finally:
            prog.close()
    except (OffloadError, OSError, TypeError, ValueError) as exc:
        result["reason"] = f"backend: {exc}"
    finally:
        for km in maps.values():
            km.close()
    return result


def kernel_results(programs: Sequence[ElfProgram], directory: Path,
                   libbpf: str | None) -> tuple[list[dict[str, Any]], str]:
    """The host kernel's answer for every program, and which loader gave it."""
    try:
        lib: Libbpf | None = Libbpf(libbpf)
        how = f"libbpf ({lib.name})"
    except OSError as exc:
        lib, how = None, f"project loader (no libbpf: {exc})"
    results = []
    for program in programs:
        path = directory / program.obj
        result = kernel_check_libbpf(lib, path, program) if lib is not None else None
        if result is None or result.get("open_errno") is not None:
            fallback = kernel_check_backend(path, program)
            if result is None or fallback["status"] != "n/a":
                result = fallback
        results.append(result)
    return results, how


def kernel_usable() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "not root"
    from offload.backends.kernel import kernel_available
    return kernel_available()


# ------------------------------------------------------------------ report
@dataclass
class Row:
    program: ElfProgram
    device: dict[str, Any]
    kernel: dict[str, Any] | None = None
    group: str = ""
    cause: str = ""

    @property
    def key(self) -> str:
        return f"{self.program.obj}:{self.program.name}"

    @property
    def kernel_accepts(self) -> bool | None:
        return None if self.kernel is None else self.kernel["status"] == "accepted"

    @property
    def ratio(self) -> float | None:
        k = self.kernel.get("verified_insns") if self.kernel else None
        d = self.device.get("processed")
        if not self.device["accepted"] or not k or not d:
            return None
        return d / k


@dataclass
class Report:
    rows: list[Row]
    kernel: str
    profile: str
    timeout: float
    machine: dict[str, Any] = field(default_factory=dict)

    def population(self) -> list[Row]:
        """The programs the device is judged on: those the kernel accepts (all of them when
        the kernel was not asked)."""
        return [r for r in self.rows if r.kernel is None or r.kernel_accepts]

    def summary(self) -> dict[str, Any]:
        pop = self.population()
        accepted = [r for r in pop if r.device["accepted"]]
        causes = Counter(r.group for r in pop if not r.device["accepted"])
        detail = Counter(r.cause for r in pop if not r.device["accepted"])
        ratios = sorted((r for r in pop if r.ratio is not None), key=lambda r: -r.ratio)
        timed = sorted(self.rows, key=lambda r: -(r.device.get("verify_cpu_s") or 0.0))
        kernel = Counter(r.kernel["status"] for r in self.rows if r.kernel is not None)
        lenient = [r.key for r in self.rows
                   if r.kernel_accepts is False and r.kernel["status"] == "refused"
                   and r.device["accepted"]]
        values = [r.ratio for r in ratios]
        return {
            "objects": len({r.program.obj for r in self.rows}),
            "programs": len(self.rows),
            "kernel": dict(kernel) if self.rows and self.rows[0].kernel is not None else None,
            "judged": len(pop),
            "device_accepted": len(accepted),
            "device_accepted_pct": round(100 * len(accepted) / len(pop), 1) if pop else None,
            "refused_by_group": {g: causes[g] for g in GROUPS if causes[g]},
            "refused_by_cause": dict(detail.most_common()),
            "device_accepts_kernel_refuses": lenient,
            "ratio": None if not values else {
                "programs": len(values), "median": round(statistics.median(values), 3),
                "geomean": round(math.exp(sum(math.log(v) for v in values) / len(values)), 3),
                "max": round(values[0], 3), "min": round(values[-1], 3)},
            "worst_ratios": [{"program": r.key, "device": r.device["processed"],
                              "kernel": r.kernel["verified_insns"], "ratio": round(r.ratio, 2)}
                             for r in ratios[:10]],
            "limited": [{"program": r.key, "device": r.device.get("processed"),
                         "kernel": r.kernel["verified_insns"] if r.kernel else None,
                         "cause": r.cause}
                        for r in pop if r.group in ("processed-insn limit (pruning)",
                                                    "time limit")],
            "slowest_accepted": next(({"program": r.key,
                                       "cpu_seconds": round(r.device["verify_cpu_s"], 3),
                                       "processed": r.device["processed"]}
                                      for r in timed if r.device["accepted"]), None),
            "slowest": [{"program": r.key,
                         "cpu_seconds": round(r.device.get("verify_cpu_s") or 0, 3),
                         "seconds": round(r.device.get("verify_s") or 0, 3),
                         "processed": r.device.get("processed"),
                         "accepted": r.device["accepted"], "cause": r.cause}
                        for r in timed[:10]],
        }

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "timeout": self.timeout, "kernel": self.kernel,
                "machine": self.machine, "summary": self.summary(),
                "programs": [{"object": r.program.obj, "program": r.program.name,
                              "section": r.program.section, "forced_xdp": r.program.forced,
                              "kernel": r.kernel, "device": r.device, "group": r.group,
                              "cause": r.cause, "ratio": r.ratio} for r in self.rows]}


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": model, "nproc": os.cpu_count(), "python": platform.python_version(),
            "kernel": f"{platform.system()} {platform.release()}"}


def run(directory: Path, *, kernel: bool = True, timeout: float = TIMEOUT, jobs: int = 0,
        profile: str = PROFILE, libbpf: str | None = None, setup: bool = False,
        objects: Sequence[Path] | None = None) -> Report:
    """Measure every XDP program of the objects of ``directory`` (or of ``objects``)."""
    paths = sorted(objects) if objects is not None else sorted(directory.glob("*.o"))
    programs: list[ElfProgram] = []
    unreadable = []
    for path in paths:
        try:
            programs.extend(elf_programs(path))
        except LoaderError as exc:
            unreadable.append((path.name, str(exc)))
    directory = paths[0].parent if objects is not None and paths else directory
    device = device_results(programs, directory, timeout=timeout,
                            jobs=jobs or os.cpu_count() or 1, profile=profile,
                            setup=setup)
    kernel_rows: list[dict[str, Any]] | list[None] = [None] * len(programs)
    how = "not asked"
    if kernel:
        usable, why = kernel_usable()
        if usable:
            kernel_rows, how = kernel_results(programs, directory, libbpf)
        else:
            how = f"unavailable: {why}"
    rows = []
    for program, dev, ker in zip(programs, device, kernel_rows):
        row = Row(program, dev, ker)
        if not dev["accepted"]:
            row.group, row.cause = classify(dev["stage"], dev["reason"], dev.get("kind", ""),
                                            dev.get("at_helper", ""))
        rows.append(row)
    report = Report(rows, how, profile, timeout, machine())
    report.machine["setup"] = setup
    if unreadable:
        report.machine["unreadable_objects"] = unreadable
    return report


def from_json(data: dict[str, Any]) -> Report:
    """A saved report (``--json``) read back, its refusals classed again by today's rules."""
    rows = []
    for p in data["programs"]:
        row = Row(ElfProgram(p["object"], p["program"], p["section"], p["forced_xdp"]),
                  p["device"], p["kernel"])
        if not row.device["accepted"]:
            row.group, row.cause = classify(row.device["stage"], row.device["reason"],
                                            row.device.get("kind", ""),
                                            row.device.get("at_helper", ""))
        rows.append(row)
    return Report(rows, data["kernel"], data["profile"], data["timeout"], data["machine"])


def _fmt(n: Any) -> str:
    return "-" if n is None else f"{n:,}" if isinstance(n, int) else str(n)


def print_report(report: Report, out: Any = None) -> None:
    out = out if out is not None else sys.stdout
    header = ("object", "program", "kernel", "k.insns", "device", "d.insns", "ratio", "cpu s",
              "cause")
    table = [header]
    for r in report.rows:
        k = r.kernel
        table.append((
            r.program.obj[:40], r.program.name[:28] + ("*" if r.program.forced else ""),
            "-" if k is None else k["status"], _fmt(None if k is None else k["verified_insns"]),
            "accepted" if r.device["accepted"] else "refused", _fmt(r.device.get("processed")),
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            f"{r.device.get('verify_cpu_s') or 0:.2f}", r.cause[:60]))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
    print("(* section names no XDP type: loaded as XDP)", file=out)
    s = report.summary()
    print(f"\nkernel: {report.kernel}; device profile {report.profile}, "
          f"time limit {report.timeout:g} s", file=out)
    print(f"{s['objects']} objects, {s['programs']} XDP programs; kernel: {s['kernel']}",
          file=out)
    judged = "of the programs the kernel accepts" if s["kernel"] else "(kernel not asked)"
    setup = "; userspace setup (types, map sizes) given" if report.machine.get("setup") else ""
    print(f"device accepts {s['device_accepted']}/{s['judged']} ({s['device_accepted_pct']}%) "
          f"{judged}{setup}", file=out)
    print("refused, by cause:", file=out)
    for group, n in s["refused_by_group"].items():
        print(f"  {n:4}  {group}", file=out)
    print("refused, in detail:", file=out)
    for cause, n in s["refused_by_cause"].items():
        print(f"  {n:4}  {cause}", file=out)
    if s["device_accepts_kernel_refuses"]:
        print(f"device accepts, kernel refuses: {', '.join(s['device_accepts_kernel_refuses'])}",
              file=out)
    if s["ratio"]:
        r = s["ratio"]
        print(f"processed insns device/kernel over {r['programs']} programs: median "
              f"{r['median']}, geometric mean {r['geomean']}, min {r['min']}, max {r['max']}",
              file=out)
        print("worst ratios:", file=out)
        for w in s["worst_ratios"]:
            print(f"  {w['ratio']:8.2f}  {w['program']} ({w['device']:,} vs {w['kernel']:,})",
                  file=out)
    if s["limited"]:
        print("stopped by a limit (device insns when stopped vs kernel's):", file=out)
        for w in s["limited"]:
            print(f"  {_fmt(w['device']):>9} vs {_fmt(w['kernel']):>9}  {w['program']} "
                  f"({w['cause']})", file=out)
    if s["slowest_accepted"]:
        w = s["slowest_accepted"]
        print(f"slowest accepted: {w['program']}, {w['cpu_seconds']:.2f} s CPU "
              f"({_fmt(w['processed'])} insns)", file=out)
    print("slowest (device verify, CPU seconds; wall in brackets):", file=out)
    for w in s["slowest"][:5]:
        verdict = "accepted" if w["accepted"] else f"refused: {w['cause']}"
        print(f"  {w['cpu_seconds']:8.2f} s [{w['seconds']:.2f}]  {w['program']} "
              f"({_fmt(w['processed'])} insns, {verdict})", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="directory of BPF objects (*.o)")
    parser.add_argument("--json", metavar="OUT", help="write the JSON report here ('-': stdout)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help=f"seconds per program on the device (default {TIMEOUT:g})")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (default: nproc)")
    parser.add_argument("--profile", default=PROFILE, help="device profile (default: full)")
    parser.add_argument("--no-kernel", action="store_true", help="do not ask the host kernel")
    parser.add_argument("--libbpf", help="path of libbpf.so for the kernel side")
    parser.add_argument("--setup", action="store_true",
                        help="set on the device side what userspace sets before loading (and "
                             "the kernel side gets): the XDP type for programs whose section "
                             f"names none, {MAP_SIZE} entries for maps declared with 0")
    parser.add_argument("--report", metavar="JSON",
                        help="print a saved --json report again (refusals classed anew) "
                             "instead of measuring; DIRECTORY is then not read")
    args = parser.parse_args(argv)
    if args.report:
        report = from_json(json.loads(Path(args.report).read_text()))
    elif not args.directory.is_dir():
        parser.error(f"{args.directory} is not a directory")
    else:
        report = run(args.directory, kernel=not args.no_kernel, timeout=args.timeout,
                     jobs=args.jobs, profile=args.profile, libbpf=args.libbpf,
                     setup=args.setup)
    if args.json == "-":
        json.dump(report.to_json(), sys.stdout, indent=1)
        print()
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=1) + "\n")
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
