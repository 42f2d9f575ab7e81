"""Live kernel programs: BPF_PROG_LOAD, with the kernel verifier's log on rejection.

A load that fails raises :class:`KernelVerifierError` carrying the errno name and the
verifier log. When no log was asked for, a failed load is repeated once with ``log_level`` 1
so the error still says why (libbpf does the same); a log buffer that turns out too small
(ENOSPC) is grown, up to :data:`MAX_LOG_SIZE`, using ``log_true_size`` where the kernel
reports it (Linux 6.4+).
"""

from __future__ import annotations

import ctypes
import errno
import re
from collections.abc import Mapping, Sequence

from ...errors import ErrnoError
from ...isa.codec import encode
from ...isa.instruction import Instruction
from ...program import FuncInfo, ProgramSpec, resolve_map_references
from ...uapi import ProgType
from .attr import ProgLoadAttr
from .func_info import FUNC_INFO, load_function_btf, takes_function_address
from .handle import KernelHandle, object_name
from .info import ProgInfo, prog_info
from .maps import KernelMap
from .syscall import BpfCmd, BpfSyscallError, bpf, hint

LOG_SIZE = 1 << 16
MAX_LOG_SIZE = 1 << 26  # 64 MiB; a longer log keeps its end (the kernel rotates it)
#: Log lines that are statistics, not the reason for a rejection.
_INSN_LINE = re.compile(r"^\d+: \([0-9a-f]{2}\) ")
_STAT_PREFIXES = ("processed ", "verification time", "stack depth", "mark_read",
                  "-- END PROG LOAD LOG --")


class KernelVerifierError(BpfSyscallError):
    """BPF_PROG_LOAD failed: ``errno``/``name`` as the kernel returned, ``log`` its verifier
    log (possibly empty when the refusal came before verification), ``reason`` the line that
    says why."""

    def __init__(self, code: int, program: str, log: str) -> None:
        self.log = log
        self.reason = rejection_reason(log)
        detail = f"BPF_PROG_LOAD of {program} failed: {hint(BpfCmd.PROG_LOAD, code)}"
        if self.reason:
            detail += f": {self.reason}"
        super().__init__(code, detail, command=BpfCmd.PROG_LOAD)


def rejection_reason(log: str) -> str:
    """The line of a verifier log that says why (a pure helper).

    The verifier stops at the failing instruction, so the reason is the first line after the
    last instruction it printed (``12: (61) r0 = ...``); a log without instructions (checks
    before simulation, such as "jump out of range") has it first. Statistics never count.
    """
    lines = [line.strip() for line in log.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_STAT_PREFIXES)]
    last_insn = max((i for i, line in enumerate(lines) if _INSN_LINE.match(line)), default=-1)
    if last_insn + 1 < len(lines):
        return lines[last_insn + 1]
    return lines[-1] if lines else ""


class KernelProgram(KernelHandle):
    """A program loaded into the host kernel; ``log`` is the verifier log if one was asked."""

    kind = "program"

    def __init__(self, fd: int, name: str, prog_type: ProgType | int,
                 instructions: tuple[Instruction, ...], log: str = "") -> None:
        super().__init__(fd, name)
        self.prog_type = prog_type
        self.instructions = instructions
        self.log = log

    def info(self) -> ProgInfo:
        return prog_info(self.fd, self.describe())


def _attempt(code: bytes, prog_type: int, license_buf: ctypes.Array[ctypes.c_char], name: str,
             prog_flags: int, expected_attach_type: int, log_level: int,
             log_size: int, funcs: tuple[KernelHandle, bytes, int] | None = None,
             ) -> tuple[int, int, str, int]:
    """One BPF_PROG_LOAD: (fd or -1, errno, log, log_true_size); ``funcs`` the program's
    function BTF, records and count (``func_info``)."""
    insns = ctypes.create_string_buffer(code, len(code) or 1)
    log_buf = ctypes.create_string_buffer(log_size) if log_level else None
    attr = ProgLoadAttr(
        prog_type=prog_type, insn_cnt=len(code) // 8, insns=ctypes.addressof(insns),
        license=ctypes.addressof(license_buf), log_level=log_level,
        log_size=log_size if log_buf is not None else 0,
        log_buf=ctypes.addressof(log_buf) if log_buf is not None else 0,
        prog_flags=prog_flags, prog_name=object_name(name),
        expected_attach_type=expected_attach_type)
    if funcs is not None:
        btf, records, count = funcs
        info = ctypes.create_string_buffer(records, len(records))
        attr.prog_btf_fd = btf.fd
        attr.func_info_rec_size = FUNC_INFO.size
        attr.func_info = ctypes.addressof(info)
        attr.func_info_cnt = count
    try:
        fd, failure = bpf(BpfCmd.PROG_LOAD, attr, what=f"program {name!r}", retry_eagain=5), 0
    except BpfSyscallError as exc:
        fd, failure = -1, exc.errno
    log = log_buf.value.decode("utf-8", "replace") if log_buf is not None else ""
    return fd, failure, log, attr.log_true_size


def load_program(instructions: Sequence[Instruction], *, prog_type: ProgType | int = ProgType.XDP,
                 license: str = "GPL", name: str = "", prog_flags: int = 0,
                 expected_attach_type: int = 0, log_level: int = 0,
                 log_size: int = LOG_SIZE,
                 functions: Sequence[FuncInfo] = ()) -> KernelProgram:
    """Load ``instructions`` (``lddw`` map references already holding real map fds).

    ``log_level`` 1 or 2 keeps the verifier log on success too (``program.log``).
    ``functions``: linkage and prototypes of its functions, given to the kernel as BTF
    ``func_info`` when one of them is global. Raises :class:`KernelVerifierError` on any
    refusal.
    """
    insns = tuple(instructions)
    code = encode(insns)
    what = f"program {name!r}" if name else "an unnamed program"
    if "\0" in license:
        raise ErrnoError(errno.EINVAL, f"the license of {what} contains a NUL byte")
    if not 0 <= log_level <= 0xFFFFFFFF or not 128 <= log_size <= MAX_LOG_SIZE:
        raise ErrnoError(errno.EINVAL, f"log_level {log_level} or log_size {log_size} of {what} "
                         f"is out of range (log_size must be 128..{MAX_LOG_SIZE})")
    license_buf = ctypes.create_string_buffer(license.encode("utf-8", "replace"))
    level = log_level
    typed = tuple(functions) if any(f.is_global and f.slot for f in functions) else ()
    funcs = load_function_btf(insns, typed) if typed or takes_function_address(insns) else None
    try:
        return _load(insns, code, prog_type, license_buf, name, prog_flags,
                     expected_attach_type, level, log_size, what, funcs)
    finally:
        if funcs is not None:
            funcs[0].close()


def _load(insns: tuple[Instruction, ...], code: bytes, prog_type: ProgType | int,
          license_buf: ctypes.Array[ctypes.c_char], name: str, prog_flags: int,
          expected_attach_type: int, level: int, log_size: int, what: str,
          funcs: tuple[KernelHandle, bytes, int] | None) -> KernelProgram:
    while True:
        fd, failure, log, true_size = _attempt(code, int(prog_type), license_buf, name,
                                             prog_flags, expected_attach_type, level, log_size,
                                             funcs)
        if fd >= 0:
            return KernelProgram(fd, name, prog_type, insns, log)
        if failure == errno.ENOSPC and level and log_size < MAX_LOG_SIZE \
                and true_size < MAX_LOG_SIZE:  # a log that cannot fit is not asked again
            log_size = min(MAX_LOG_SIZE, max(log_size * 4, true_size + 1))
            continue
        if level == 0 and failure in (errno.EACCES, errno.EINVAL, errno.E2BIG, errno.ENOSPC):
            level = 1  # repeat once to learn why
            continue
        raise KernelVerifierError(failure, what, log)


def load_program_spec(spec: ProgramSpec, maps: Mapping[str, KernelMap | int], *,
                      expected_attach_type: int = 0, log_level: int = 0,
                      log_size: int = LOG_SIZE) -> KernelProgram:
    """Load a :class:`ProgramSpec` with its map references patched to the fds in ``maps``."""
    fds = {name: (m.fd if isinstance(m, KernelMap) else int(m)) for name, m in maps.items()}
    insns = resolve_map_references(spec.instructions, spec.map_refs, fds, program=spec.name)
    return load_program(insns, prog_type=spec.type, license=spec.license, name=spec.name,
                        prog_flags=spec.flags, expected_attach_type=expected_attach_type,
                        log_level=log_level, log_size=log_size, functions=spec.functions)
