"""An ELF object's maps and programs put straight on a backend - no device, no driver.

What the backends' differential tests and the per-packet benchmark run programs on: every map
of the object created, then the chosen programs loaded with their map references resolved,
at fixed handles (maps from 1, inner maps from 100, programs from 1000). Built-in backends get
the host's possible CPUs when the host can say, so their per-CPU values have the kernel
backend's layout and compare byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload.backends.builtin import BuiltinBackend
from offload.backends.kernel import KernelBackend, possible_cpus
from offload.caps.profiles import load_profile
from offload.errors import OffloadError
from offload.loader import load_object
from offload.loader.object import ObjectSpec
from offload.program import resolve_map_references

KINDS = ("builtin-fast", "builtin-reference", "kernel")
MAP_BASE, INNER_BASE, PROG_BASE = 1, 100, 1000


class InstallError(OffloadError):
    """A request the object cannot satisfy (an unknown backend kind, no inner map template)."""


def host_cpus() -> int:
    try:
        return possible_cpus()
    except OffloadError:
        return 1


def new_backend(kind: str) -> Any:
    """A fresh backend: ``builtin-fast``, ``builtin-reference`` or ``kernel`` (which the
    caller checked is usable)."""
    if kind == "kernel":
        return KernelBackend()
    if kind not in KINDS:
        raise InstallError(f"unknown backend kind {kind!r}: choose one of {', '.join(KINDS)}.")
    return BuiltinBackend(load_profile("full"), engine=kind.removeprefix("builtin-"),
                          ncpus=host_cpus(), seed=1, clock=lambda: 1_000_000_000)


@dataclass
class Installed:
    """An object on a backend: its maps and programs by name, as backend handles."""

    backend: Any
    spec: ObjectSpec
    maps: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    inner: list[int] = field(default_factory=list)

    def map(self, name: str) -> Any:
        return self.backend.map(self.maps[name])

    def run(self, program: str, frame: bytes, **kwargs: Any) -> Any:
        return self.backend.run_xdp(self.programs[program], frame, **kwargs)

    def add_inner(self, outer: str, slot: int) -> Any:
        """Create an inner map from the outer map's template and put it at ``slot``."""
        spec = self.spec.maps[outer].inner
        if spec is None:
            raise InstallError(f"map {outer!r} is not a map of maps.")
        handle = INNER_BASE + len(self.inner)
        live = self.backend.create_map(handle, spec)
        self.inner.append(handle)
        self.map(outer).update(slot.to_bytes(4, "little"), handle.to_bytes(4, "little"))
        return live


def install(backend: Any, obj: ObjectSpec | Path | str,
            programs: list[str] | None = None) -> Installed:
    """Create every map of ``obj``, then load ``programs`` (all by default)."""
    spec = obj if isinstance(obj, ObjectSpec) else load_object(obj)
    installed = Installed(backend, spec)
    for i, (name, map_spec) in enumerate(spec.maps.items()):
        backend.create_map(MAP_BASE + i, map_spec)
        installed.maps[name] = MAP_BASE + i
    for i, name in enumerate(programs if programs is not None else list(spec.programs)):
        prog = spec.programs[name]
        insns = resolve_map_references(prog.instructions, prog.map_refs, installed.maps,
                                       program=name)
        backend.load_program(PROG_BASE + i, insns, prog_type=prog.type, name=name,
                             license=spec.license or "GPL", flags=prog.flags)
        installed.programs[name] = PROG_BASE + i
    return installed


def map_contents(backend: Any, handle: int) -> dict[bytes, bytes]:
    """Every (key, value) of a map, order aside."""
    return dict(backend.map(handle).items())
