"""How maps that hold other objects reach them: the device's ``Resolver``.

PROG_ARRAY, DEVMAP/DEVMAP_HASH, CPUMAP, XSKMAP and the map-in-map types take file descriptors
(or ifindexes, or receive queues) in their uAPI values, and keep a reference on the object for
as long as the element exists (``map_fd_get_ptr``/``map_fd_put_ptr`` in
kernel/bpf/arraymap.c). A map knows nothing of fds:
the device passes a resolver that turns an fd into a counted reference and takes it back.
Errors follow the kernel: an fd that names nothing is EBADF, one naming the wrong kind of
object is EINVAL.
"""

from __future__ import annotations

import errno
from typing import Any, Protocol, TypeVar

from ..errors import ErrnoError

#: The live map a handle holds (``base.Map``; a type parameter so this module, which
#: ``base`` imports, needs nothing from it).
MapT = TypeVar("MapT", covariant=True)


class ProgramHandle(Protocol):
    """A loaded program as a map sees it."""

    @property
    def id(self) -> int:
        """The program id lookups report (``prog->aux->id``)."""

    @property
    def prog_type(self) -> int:
        """``enum bpf_prog_type``."""

    @property
    def expected_attach_type(self) -> int:
        """``enum bpf_attach_type`` given at load (BPF_XDP_DEVMAP for devmap programs)."""


class MapHandle(Protocol[MapT]):
    """A live map held as the inner map of a map-in-map."""

    @property
    def id(self) -> int:
        """The map id lookups report."""

    @property
    def map(self) -> MapT:
        """The live map itself."""


class Resolver(Protocol):
    """What a device offers maps: counted references on its objects and its interfaces."""

    def acquire_program(self, fd: int) -> ProgramHandle:
        """A new reference on the program behind ``fd`` (EBADF if none, EINVAL if not a program)."""

    def acquire_map(self, fd: int) -> MapHandle[Any]:
        """A new reference on the map behind ``fd`` (EBADF if none, EINVAL if not a map)."""

    def release(self, handle: ProgramHandle | MapHandle[Any]) -> None:
        """Drop a reference taken by ``acquire_program``/``acquire_map``."""

    def has_interface(self, ifindex: int) -> bool:
        """Whether a network interface with this ifindex exists (a devmap target)."""

    def has_rx_queue(self, queue: int) -> bool:
        """Whether the guest has this receive queue (what an xskmap socket is bound to)."""


class NoObjects:
    """The resolver of a device with no programs, maps or interfaces to refer to."""

    def acquire_program(self, fd: int) -> ProgramHandle:
        raise ErrnoError(errno.EBADF, f"File descriptor {fd} does not refer to a program on "
                                      "this device.")

    def acquire_map(self, fd: int) -> MapHandle[Any]:
        raise ErrnoError(errno.EBADF, f"File descriptor {fd} does not refer to a map on this "
                                      "device.")

    def release(self, handle: ProgramHandle | MapHandle[Any]) -> None:
        return None

    def has_interface(self, ifindex: int) -> bool:
        return False

    def has_rx_queue(self, queue: int) -> bool:
        return False


NO_OBJECTS = NoObjects()
