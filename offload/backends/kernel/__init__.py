"""The host-kernel backend: maps, programs and XDP test runs through the ``bpf(2)`` syscall.

Objects live in the Linux kernel of the machine running this process; everything goes through
ctypes (no compiled extension). :func:`kernel_available` says whether that is possible here
and why not; :func:`host_capabilities` probes the kernel into the ``host-kernel`` profile;
:class:`KernelBackend` offers all of it to a device as a backend.
"""

from .availability import kernel_available
from .backend import HostMap, KernelBackend
from .handle import KernelHandle
from .info import MapInfo, ProgInfo
from .maps import KernelMap, possible_cpus
from .probe import KernelProbe, host_capabilities, host_probe, probe_kernel
from .programs import KernelProgram, KernelVerifierError, load_program, load_program_spec
from .syscall import BpfCmd, BpfSyscallError, SyscallUnavailable
from .xdp_run import XdpRunResult, run_xdp

__all__ = [
    "BpfCmd", "BpfSyscallError", "HostMap", "KernelBackend", "KernelHandle", "KernelMap",
    "KernelProbe", "KernelProgram", "KernelVerifierError", "MapInfo", "ProgInfo",
    "SyscallUnavailable", "XdpRunResult", "host_capabilities", "host_probe", "kernel_available",
    "load_program", "load_program_spec", "possible_cpus", "probe_kernel", "run_xdp",
]
