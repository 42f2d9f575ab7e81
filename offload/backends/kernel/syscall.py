"""The ``bpf(2)`` system call through ctypes, and its errors.

There is no libc wrapper for bpf(2), so the call goes through ``syscall(__NR_bpf, cmd, &attr,
size)`` with the number of the running architecture. ``attr`` is one of the ``union bpf_attr``
layouts of :mod:`.attr`; passing its own size is what libbpf does too: the kernel accepts a
shorter union (missing fields read as zero) and a longer one whose tail is zero.

Every failure becomes a :class:`BpfSyscallError` named by its errno (EPERM, EINVAL, ENOENT,
E2BIG, ...) with a sentence saying which command failed on which object and, for the common
cases, what usually causes it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from enum import IntEnum

from ...errors import ErrnoError

#: ``__NR_bpf`` per ``uname -m``. Only 64-bit architectures: there ``ctypes`` aligns ``u64``
#: fields like the kernel's ``__aligned_u64``, so the layouts of :mod:`.attr` hold as declared.
SYSCALL_NUMBERS = {
    "x86_64": 321,
    "aarch64": 280,  # asm-generic/unistd.h, shared by the architectures below
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
}

#: The kernel-internal errno behind "Unknown error 524" (include/linux/errno.h).
ENOTSUPP = 524


class BpfCmd(IntEnum):
    """``enum bpf_cmd`` (include/uapi/linux/bpf.h), without the ``BPF_`` prefix."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27

    @property
    def uapi_name(self) -> str:
        return f"BPF_{self.name}"


class BpfSyscallError(ErrnoError):
    """``bpf(2)`` failed: ``EPERM: BPF_MAP_CREATE of map 'x' failed: ...``.

    ``command`` is the :class:`BpfCmd`; ``errno`` and ``name`` are as in :class:`ErrnoError`
    (the kernel-internal ENOTSUPP, 524, is named too).
    """

    def __init__(self, code: int, message: str, *, command: BpfCmd | None = None) -> None:
        super().__init__(code, message)
        self.command = command
        if code == ENOTSUPP:
            self.name = "ENOTSUPP"
            self.args = (f"ENOTSUPP: {message}",)


class SyscallUnavailable(BpfSyscallError):
    """This process cannot call bpf(2) at all (other OS, other architecture, no libc)."""


# Hints for the failures people hit most, keyed by (command or None for any, errno).
_HINTS: dict[tuple[BpfCmd | None, int], str] = {
    (None, errno.EPERM): "bpf() needs CAP_BPF (or CAP_SYS_ADMIN) unless "
                         "kernel.unprivileged_bpf_disabled is 0",
    (None, errno.ENOSYS): "the kernel has no bpf() system call (CONFIG_BPF_SYSCALL is off) "
                          "or a seccomp filter hides it",
    (None, errno.EBADF): "the file descriptor is closed or does not refer to a BPF object",
    (None, ENOTSUPP): "this map or program type does not implement the operation",
    (BpfCmd.MAP_CREATE, errno.EINVAL): "the kernel refused the map attributes (type, sizes, "
                                       "flags or name) or does not know this map type",
    (BpfCmd.MAP_CREATE, errno.E2BIG): "the key or value size exceeds the kernel's limit",
    (BpfCmd.MAP_CREATE, errno.ENOMEM): "the kernel could not allocate the map; lower "
                                       "max_entries or raise RLIMIT_MEMLOCK on old kernels",
    (BpfCmd.MAP_LOOKUP_ELEM, errno.ENOENT): "the key is not in the map",
    (BpfCmd.MAP_DELETE_ELEM, errno.ENOENT): "the key is not in the map",
    (BpfCmd.MAP_DELETE_ELEM, errno.EINVAL): "elements of array maps cannot be deleted",
    (BpfCmd.MAP_GET_NEXT_KEY, errno.ENOENT): "there is no key after this one",
    (BpfCmd.MAP_UPDATE_ELEM, errno.EEXIST): "the key exists and BPF_NOEXIST was given",
    (BpfCmd.MAP_UPDATE_ELEM, errno.ENOENT): "the key does not exist and BPF_EXIST was given",
    (BpfCmd.MAP_UPDATE_ELEM, errno.E2BIG): "the map is full (max_entries reached) or the "
                                           "index is out of range",
    (BpfCmd.MAP_UPDATE_ELEM, errno.EPERM): "the map is frozen or read-only for the syscall side",
    (BpfCmd.MAP_DELETE_ELEM, errno.EPERM): "the map is frozen or read-only for the syscall side",
    (BpfCmd.MAP_FREEZE, errno.EPERM): "the map is already frozen or read-only for the syscall "
                                      "side",
    (BpfCmd.MAP_FREEZE, errno.EBUSY): "the map is mapped writable into memory",
    (BpfCmd.MAP_UPDATE_BATCH, errno.E2BIG): "the map is full (max_entries reached)",
    (BpfCmd.PROG_LOAD, errno.EACCES): "the kernel verifier rejected the program",
    (BpfCmd.PROG_LOAD, errno.EINVAL): "the kernel refused the program attributes or "
                                      "instructions",
    (BpfCmd.PROG_LOAD, errno.E2BIG): "the program has too many instructions",
    (BpfCmd.PROG_LOAD, errno.ENOSPC): "the verifier log did not fit in the log buffer",
    (BpfCmd.PROG_TEST_RUN, errno.EINVAL): "the kernel refused the test input (packet size, "
                                          "context fields such as an rx_queue_index the "
                                          "device lacks, or flags)",
    (BpfCmd.PROG_TEST_RUN, errno.ENODEV): "no network device has that ingress_ifindex",
    (BpfCmd.PROG_TEST_RUN, errno.ENOSPC): "the output packet is larger than the output buffer",
    (BpfCmd.PROG_TEST_RUN, ENOTSUPP): "this program type has no test run",
    (BpfCmd.MAP_LOOKUP_BATCH, errno.ENOENT): "no elements are left",
}


def hint(command: BpfCmd | None, code: int) -> str:
    """What usually causes ``code`` for ``command`` (falls back to the C library's text)."""
    text = _HINTS.get((command, code)) or _HINTS.get((None, code))
    if text:
        return text
    return os.strerror(code) if code != ENOTSUPP else "operation not supported"


class _Libc:
    """The C library's ``syscall`` entry point, loaded on first use."""

    def __init__(self) -> None:
        self._fn: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]

    def function(self) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
        if self._fn is None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = libc.syscall
            except (OSError, AttributeError) as exc:
                raise SyscallUnavailable(errno.ENOSYS, f"the C library's syscall() cannot be "
                                                       f"loaded: {exc}") from None
            fn.restype = ctypes.c_long
            fn.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)
            self._fn = fn
        return self._fn


_LIBC = _Libc()
_MAX_EINTR = 64


def syscall_number() -> int:
    """``__NR_bpf`` for this machine, or :class:`SyscallUnavailable` naming what is missing."""
    if platform.system() != "Linux":
        raise SyscallUnavailable(errno.ENOSYS, f"bpf() exists only on Linux, not on "
                                               f"{platform.system() or 'this system'}")
    machine = platform.machine()
    try:
        return SYSCALL_NUMBERS[machine]
    except KeyError:
        known = ", ".join(sorted(SYSCALL_NUMBERS))
        raise SyscallUnavailable(errno.ENOSYS, f"no bpf() syscall number is known for "
                                               f"architecture {machine!r} (known: {known})") from None


def invoke(cmd: int, attr_address: int, size: int) -> tuple[int, int]:
    """One raw ``bpf()`` call: (return value, errno). Tests replace this to simulate refusals."""
    fn = _LIBC.function()
    ctypes.set_errno(0)
    ret = fn(syscall_number(), cmd, attr_address, size)
    return ret, (ctypes.get_errno() if ret < 0 else 0)


def bpf(cmd: BpfCmd, attr: ctypes.Structure, *, what: str, retry_eagain: int = 0) -> int:
    """Call ``bpf(cmd, &attr, sizeof(attr))``; the result, or a :class:`BpfSyscallError`.

    ``what`` names the object for the message ("map 'flows'"). EINTR is retried a bounded
    number of times; EAGAIN ``retry_eagain`` times (the verifier returns it when interrupted by
    a signal, and libbpf retries the load the same way).
    """
    interrupted = again = 0
    while True:
        ret, code = invoke(int(cmd), ctypes.addressof(attr), ctypes.sizeof(attr))
        if ret >= 0:
            return ret
        if code == errno.EINTR and interrupted < _MAX_EINTR:
            interrupted += 1
            continue
        if code == errno.EAGAIN and again < retry_eagain:
            again += 1
            continue
        code = code or errno.EINVAL
        raise BpfSyscallError(code, f"{cmd.uapi_name} of {what} failed: {hint(cmd, code)}",
                              command=cmd)
