"""What a device asks of the place its programs really run.

A device keeps the object table (handles, reference counts) and the virtio side; a backend
holds the live maps and programs and runs frames through them. Programs reach the backend with
their map references already patched to device handles (``lddw map_fd(handle)``,
``map_value(handle)+off``); each backend translates handles into its own objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..caps.capabilities import Capabilities
from ..isa.instruction import Instruction
from ..maps.spec import MapSpec
from ..program import FuncInfo
from ..uapi import ProgType, XdpAction


class XdpOutcome(NamedTuple):
    """One frame through one program: the raw return value, the frame as it leaves.

    A named tuple rather than a frozen dataclass: one is made per packet, and a tuple is
    several times cheaper to build while just as immutable.
    """

    retval: int
    data: bytes
    meta: bytes = b""
    redirect_ifindex: int | None = None
    redirect_program: Any = None
    trace: tuple[str, ...] = ()
    error: str | None = None  # a fault at run time; the frame is then aborted
    #: the redirect as the helpers recorded it (offload.runtime.xdp_env.Redirect): its kind
    #: says interface, CPU worker queue or guest receive queue; None if none was recorded
    redirect_target: Any = None

    @property
    def action(self) -> XdpAction:
        """The action the device takes; values outside ``enum xdp_action`` abort, as the
        kernel's bpf_warn_invalid_xdp_action does."""
        if self.error is not None:
            return XdpAction.ABORTED
        try:
            return XdpAction(self.retval)
        except ValueError:
            return XdpAction.ABORTED


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What loading a program says: verifier statistics and log lines."""

    insns_processed: int = 0
    states: int = 0
    peak_states: int = 0
    log: tuple[str, ...] = field(default_factory=tuple)


class Backend(Protocol):
    """The operations a device forwards to where programs run."""

    name: str
    caps: Capabilities

    def create_map(self, handle: int, spec: MapSpec) -> Any:
        """Create a live map for this device handle (ErrnoError on refusal)."""

    def free_map(self, handle: int) -> None: ...

    def map(self, handle: int) -> Any:
        """The live map behind a handle (uAPI operations: lookup, update, delete, ...)."""

    def load_program(self, handle: int, insns: Sequence[Instruction], *, prog_type: ProgType,
                     name: str, license: str, flags: int = 0,
                     expected_attach_type: int = 0,
                     functions: Sequence[FuncInfo] = ()) -> LoadReport:
        """Verify and load (VerifierError or ErrnoError on refusal); ``functions``: the
        linkage and prototypes from BTF ``func_info``, whose global functions are verified
        once, on their own."""

    def unload_program(self, handle: int) -> None: ...

    def holds_program(self, handle: int) -> bool:
        """Whether a program the guest unloaded still lives on here, held by an entry of a
        prog array, devmap or cpumap (as the kernel's hold a reference per entry)."""

    def run_xdp(self, handle: int, frame: bytes, *, meta: bytes = b"",
                ingress_ifindex: int = 1, rx_queue_index: int = 0,
                egress_ifindex: int = 0) -> XdpOutcome: ...
