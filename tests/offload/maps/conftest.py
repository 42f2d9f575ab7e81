"""A small device object table for maps that hold programs, maps and interfaces."""

from __future__ import annotations

import errno
from dataclasses import dataclass

import pytest

from offload.errors import ErrnoError
from offload.maps import Map
from offload.uapi import ProgType


@dataclass(frozen=True, slots=True)
class Prog:
    id: int
    prog_type: int
    expected_attach_type: int = 0


@dataclass(frozen=True, slots=True)
class MapObj:
    id: int
    map: Map


class Table:
    """Objects by fd with reference counts, as a device's object table keeps them."""

    def __init__(self, interfaces: tuple[int, ...] = (1, 2, 3)) -> None:
        self.objects: dict[int, object] = {}
        self.refs: dict[int, int] = {}
        self.interfaces = set(interfaces)
        self._next = 3

    def add(self, obj_factory) -> int:
        fd = self._next
        self._next += 1
        self.objects[fd] = obj_factory(100 + fd)
        self.refs[fd] = 0
        return fd

    def add_prog(self, prog_type: int = ProgType.XDP, attach: int = 0) -> int:
        return self.add(lambda ident: Prog(ident, prog_type, attach))

    def add_map(self, live: Map) -> int:
        return self.add(lambda ident: MapObj(ident, live))

    def _fd_of(self, handle) -> int:
        return next(fd for fd, obj in self.objects.items() if obj is handle)

    def acquire_program(self, fd: int):
        obj = self.objects.get(fd)
        if obj is None:
            raise ErrnoError(errno.EBADF, f"fd {fd} is not open")
        if not isinstance(obj, Prog):
            raise ErrnoError(errno.EINVAL, f"fd {fd} is not a program")
        self.refs[fd] += 1
        return obj

    def acquire_map(self, fd: int):
        obj = self.objects.get(fd)
        if obj is None:
            raise ErrnoError(errno.EBADF, f"fd {fd} is not open")
        if not isinstance(obj, MapObj):
            raise ErrnoError(errno.EINVAL, f"fd {fd} is not a map")
        self.refs[fd] += 1
        return obj

    def release(self, handle) -> None:
        fd = self._fd_of(handle)
        assert self.refs[fd] > 0, "released more references than were taken"
        self.refs[fd] -= 1

    def has_interface(self, ifindex: int) -> bool:
        return ifindex in self.interfaces

    def total_refs(self) -> int:
        return sum(self.refs.values())


@pytest.fixture
def table() -> Table:
    return Table()
