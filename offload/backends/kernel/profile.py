"""The ``host-kernel`` profile: the running kernel's Capabilities, probed through bpf().

caps lists and loads it without importing this package: :func:`register` is the entry point
named in ``offload.caps.profiles.PROBE_PROVIDERS``, which every profile lookup calls first.
"""

from __future__ import annotations

from collections.abc import Callable

from ...caps.capabilities import Capabilities
from ...caps.profiles import HOST_KERNEL, Probe, ProfileError
from .availability import kernel_available
from .probe import host_capabilities


def host_kernel() -> Capabilities:
    """This machine's kernel as a profile, or ProfileError saying why it cannot be probed."""
    usable, reason = kernel_available()
    if not usable:
        raise ProfileError(f"the {HOST_KERNEL} profile cannot be probed here: {reason}")
    return host_capabilities()


def register(register_probe: Callable[[str, Probe], None]) -> None:
    """Register ``host-kernel`` with the profile registry (called by the profile lookup)."""
    register_probe(HOST_KERNEL, host_kernel)
