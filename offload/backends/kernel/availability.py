"""Can this process use the host kernel's bpf()? Asked once, answered with a reason.

Tests and the device use the answer to skip or refuse the kernel backend with a sentence a
user can act on: not root, a seccomp filter, ``kernel.unprivileged_bpf_disabled``, a kernel too
old for XDP test runs, or a machine without bpf() at all. The check does what the backend
needs: create an array map, load an XDP program, run it once with BPF_PROG_TEST_RUN.
"""

from __future__ import annotations

import errno
import functools
import os
import platform

from ...errors import ErrnoError
from ...isa.instruction import Instruction
from ...isa.opcodes import AluOp, InsnClass, JmpOp, Source
from ...maps.spec import MapSpec
from ...uapi import MapType, XdpAction
from .maps import KernelMap
from .programs import load_program
from .xdp_run import run_xdp

_CAP_SYS_ADMIN = 21
_CAP_BPF = 39

#: ``mov r0, XDP_PASS; exit``
PASS_PROGRAM = (
    Instruction(InsnClass.ALU64 | Source.K | AluOp.MOV, dst=0, imm=XdpAction.PASS),
    Instruction(InsnClass.JMP | JmpOp.EXIT),
)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _status_field(name: str) -> str | None:
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _seccomp_mode() -> str | None:
    mode = _status_field("Seccomp")
    return {None: None, "0": None, "1": "strict", "2": "filter"}.get(mode, mode)


def _lacks_bpf_capabilities() -> bool:
    """Neither CAP_BPF nor CAP_SYS_ADMIN is effective (capabilities(7) bit numbers)."""
    try:
        effective = int(_status_field("CapEff") or "", 16)
    except ValueError:
        return False
    return not effective & ((1 << _CAP_BPF) | (1 << _CAP_SYS_ADMIN))


def explain_refusal(code: int) -> str:
    """Why bpf() may fail with ``code`` here, from what the process can see of itself."""
    causes = []
    if code in (errno.EPERM, errno.EACCES):
        euid = os.geteuid()
        if euid != 0:
            causes.append(f"the process is not root (euid {euid}) and lacks CAP_BPF")
        elif _lacks_bpf_capabilities():
            causes.append("the process runs as root but without CAP_BPF and CAP_SYS_ADMIN "
                          "among its effective capabilities")
        disabled = _read("/proc/sys/kernel/unprivileged_bpf_disabled")
        if disabled not in (None, "0") and euid != 0:
            causes.append(f"kernel.unprivileged_bpf_disabled is {disabled}")
    if code in (errno.EPERM, errno.EACCES, errno.ENOSYS):
        mode = _seccomp_mode()
        if mode:
            causes.append(f"a seccomp {mode} filter is active (containers often block bpf())")
    if code == errno.ENOSYS and not causes:
        causes.append("the kernel was built without CONFIG_BPF_SYSCALL")
    if code in (errno.EPERM, errno.EACCES) and not causes:
        causes.append("a security module or container policy denies bpf() to this process")
    return "; ".join(causes)


def check_kernel() -> tuple[bool, str]:
    """Run the three probes now (uncached); see :func:`kernel_available`."""
    release = platform.release()
    try:
        with KernelMap.create(MapSpec("avail", MapType.ARRAY, 4, 4, 1)):
            pass
    except ErrnoError as exc:
        why = explain_refusal(exc.errno)
        return False, f"bpf() is not usable on Linux {release}: {exc}" + (f" ({why})" if why else "")
    try:
        with load_program(PASS_PROGRAM, name="avail") as prog:
            result = run_xdp(prog, bytes(64))
    except ErrnoError as exc:
        return False, (f"bpf() works on Linux {release} but XDP programs cannot be loaded and "
                       f"test-run (Linux 4.12 or later is needed): {exc}")
    if result.retval != XdpAction.PASS:
        return False, (f"BPF_PROG_TEST_RUN on Linux {release} returned {result.retval} for a "
                       f"program returning XDP_PASS; the kernel backend cannot be trusted here")
    return True, f"bpf() works on Linux {release} ({platform.machine()})"


@functools.cache
def kernel_available() -> tuple[bool, str]:
    """(usable, reason): whether bpf() can create maps, load XDP and test-run it here.

    Cached for the process; ``kernel_available.cache_clear()`` asks again.
    """
    return check_kernel()
