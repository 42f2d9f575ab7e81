"""How a map stores one element's value: a single buffer, or one buffer per CPU.

The uAPI always moves per-CPU values as one blob holding every possible CPU's copy, each
rounded up to 8 bytes (``round_up(value_size, 8) * num_possible_cpus()``, see
``bpf_map_value_size()`` in kernel/bpf/syscall.c); a program only ever sees the copy of the CPU
it runs on. Keeping the two layouts here lets every map family share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


def round8(size: int) -> int:
    """``round_up(size, 8)``: the per-CPU stride of uAPI values."""
    return (size + 7) & ~7


def split_percpu(value: bytes, value_size: int, ncpus: int) -> list[bytes]:
    """Cut a uAPI per-CPU blob into ``ncpus`` values of ``value_size`` bytes (padding dropped)."""
    stride = round8(value_size)
    return [bytes(value[cpu * stride:cpu * stride + value_size]) for cpu in range(ncpus)]


def join_percpu(values: Sequence[bytes | bytearray], value_size: int) -> bytes:
    """The uAPI blob for per-CPU ``values`` (each padded with zeros to an 8-byte stride)."""
    pad = bytes(round8(value_size) - value_size)
    return b"".join(bytes(v[:value_size]).ljust(value_size, b"\0") + pad for v in values)


class PlainValues:
    """One buffer per element; the uAPI value and the program's view are the same bytes."""

    percpu = False

    def __init__(self, value_size: int, ncpus: int) -> None:
        self.value_size = value_size
        self.ncpus = ncpus
        self.uapi_size = value_size

    def new(self, value: bytes) -> bytearray:
        return bytearray(value)

    def zero(self) -> bytearray:
        return bytearray(self.value_size)

    def write(self, stored: bytearray, value: bytes) -> None:
        stored[:] = value

    def read(self, stored: bytearray) -> bytes:
        return bytes(stored)

    def cpu_buffer(self, stored: bytearray, cpu: int) -> bytearray:
        return stored

    def new_from_program(self, value: bytes, cpu: int) -> bytearray:
        return bytearray(value)

    def write_from_program(self, stored: bytearray, value: bytes, cpu: int) -> None:
        stored[:] = value


class PercpuValues:
    """``ncpus`` buffers per element, exchanged with user space as one padded blob."""

    percpu = True

    def __init__(self, value_size: int, ncpus: int) -> None:
        self.value_size = value_size
        self.ncpus = ncpus
        self.stride = round8(value_size)
        self.uapi_size = self.stride * ncpus

    def new(self, value: bytes) -> list[bytearray]:
        size, stride = self.value_size, self.stride
        return [bytearray(value[c * stride:c * stride + size]) for c in range(self.ncpus)]

    def zero(self) -> list[bytearray]:
        return [bytearray(self.value_size) for _ in range(self.ncpus)]

    def write(self, stored: list[bytearray], value: bytes) -> None:
        size, stride = self.value_size, self.stride
        for cpu, buffer in enumerate(stored):
            buffer[:] = value[cpu * stride:cpu * stride + size]

    def read(self, stored: list[bytearray]) -> bytes:
        return join_percpu(stored, self.value_size)

    def cpu_buffer(self, stored: list[bytearray], cpu: int) -> bytearray:
        return stored[cpu]

    def new_from_program(self, value: bytes, cpu: int) -> list[bytearray]:
        """A new element written by a program: its CPU's copy set, the others zeroed
        (``pcpu_init_value()`` in kernel/bpf/hashtab.c)."""
        stored = self.zero()
        stored[cpu][:] = value
        return stored

    def write_from_program(self, stored: list[bytearray], value: bytes, cpu: int) -> None:
        stored[cpu][:] = value


class ValueLayout(Protocol):
    """How a map stores one element's value: one buffer, or one per CPU. The stored form
    is the layout's own (``bytearray`` or ``list[bytearray]``), opaque to the map."""

    percpu: bool
    value_size: int
    ncpus: int
    uapi_size: int

    def new(self, value: bytes) -> Any: ...

    def zero(self) -> Any: ...

    def write(self, stored: Any, value: bytes) -> None: ...

    def read(self, stored: Any) -> bytes: ...

    def cpu_buffer(self, stored: Any, cpu: int) -> bytearray: ...

    def new_from_program(self, value: bytes, cpu: int) -> Any: ...

    def write_from_program(self, stored: Any, value: bytes, cpu: int) -> None: ...


def value_layout(percpu: bool, value_size: int, ncpus: int) -> ValueLayout:
    return PercpuValues(value_size, ncpus) if percpu else PlainValues(value_size, ncpus)
