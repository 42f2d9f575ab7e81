"""The host kernel's verifier in its two modes for XDP programs, as root can reach them.

The kernel picks its rules by the loader's capabilities: CAP_PERFMON (or CAP_SYS_ADMIN) lifts
the rules against leaking and speculating on pointers (``allow_ptr_leaks``,
``bypass_spec_v1``, ``allow_uninit_stack``), CAP_BPF allows bounded loops, bpf-to-bpf calls
and the larger limits. XDP needs CAP_BPF and CAP_NET_ADMIN, so an XDP program never meets the
fully unprivileged verifier; the mode closest to it is CAP_BPF and CAP_NET_ADMIN without
CAP_PERFMON and CAP_SYS_ADMIN, which applies every unprivileged rule keyed on pointers and
uninitialised stack. ``UNPRIV`` loads that way: the calling thread drops those two effective
capabilities (capabilities are per thread) around the load and takes them back from its
permitted set. ``PRIV`` loads as root.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator, Mapping, Sequence

from offload.backends.kernel import KernelMap, KernelVerifierError, load_program
from offload.isa import Instruction
from offload.isa.opcodes import PseudoSrc
from offload.maps.spec import MapSpec
from offload.program import FuncInfo
from offload.uapi import ProgType

PRIV, UNPRIV = "priv", "unpriv"
CAP_SYS_ADMIN, CAP_PERFMON = 21, 38
_CAPGET, _CAPSET = 125, 126  # x86-64 syscall numbers
_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _capget() -> ctypes.Array:
    data = (_Data * 2)()
    if _libc().syscall(_CAPGET, ctypes.byref(_Header(_VERSION_3, 0)), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capget: {os.strerror(code)}")
    return data


def _capset(data: ctypes.Array) -> None:
    if _libc().syscall(_CAPSET, ctypes.byref(_Header(_VERSION_3, 0)), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset: {os.strerror(code)}")


@contextlib.contextmanager
def without_capabilities(*caps: int) -> Iterator[None]:
    """The calling thread without these effective capabilities, restored afterwards."""
    data = _capget()
    saved = [(d.effective, d.permitted, d.inheritable) for d in data]
    for cap in caps:
        data[cap // 32].effective &= ~(1 << (cap % 32))
    _capset(data)
    try:
        yield
    finally:
        for d, (eff, prm, inh) in zip(data, saved):
            d.effective, d.permitted, d.inheritable = eff, prm, inh
        _capset(data)


def unpriv_mode_usable() -> tuple[bool, str]:
    """Whether this process can drop and take back CAP_PERFMON and CAP_SYS_ADMIN."""
    if os.uname().machine != "x86_64":
        return False, "capget/capset numbers are those of x86-64"
    try:
        with without_capabilities(CAP_SYS_ADMIN, CAP_PERFMON):
            pass
    except OSError as exc:
        return False, str(exc)
    return True, ""


def kernel_verdict(insns: Sequence[Instruction], maps: Mapping[int, MapSpec], mode: str, *,
                   prog_type: ProgType = ProgType.XDP, expected_attach_type: int = 0,
                   license: str = "GPL", functions: Sequence[FuncInfo] = ()
                   ) -> tuple[bool, str]:
    """(accepted, reason) of the host kernel's verifier in ``mode`` (PRIV or UNPRIV);
    ``functions``: BTF func_info for its global functions."""
    kernel_maps: dict[int, KernelMap] = {}
    try:
        for handle, spec in maps.items():
            kernel_maps[handle] = KernelMap.create(spec)
        patched = []
        for insn in insns:
            if insn.is_lddw and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
                km = kernel_maps.get(insn.imm)
                insn = insn.with_fields(imm=km.fd if km is not None else 0x7FFFFFF0)
            patched.append(insn)
        drop = (CAP_SYS_ADMIN, CAP_PERFMON) if mode == UNPRIV else ()
        with without_capabilities(*drop) if drop else contextlib.nullcontext():
            try:
                prog = load_program(patched, prog_type=prog_type, name="policy",
                                    expected_attach_type=expected_attach_type,
                                    license=license, functions=functions)
            except KernelVerifierError as err:
                reason = err.reason or err.name
                if err.errno == errno.E2BIG and not err.reason:
                    reason = "E2BIG: " + str(err)
                return False, reason
        prog.close()
        return True, ""
    finally:
        for km in kernel_maps.values():
            km.close()
