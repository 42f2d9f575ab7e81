"""``--type`` and ``--map-size``: what libbpf lets a loader set between opening an object and
loading it, for ``verify`` and ``load``.

``--type xdp`` sets every program's type, as ``bpftool prog loadall OBJ PATH type xdp``
does; ``--type PROG=xdp`` one program's (``bpf_program__set_type``), winning over the
former. ``--map-size NAME=N`` sets a map's max_entries (``bpf_map__set_max_entries``), the
way userspace sizes maps declared with max_entries 0; ``OUTER.inner=N`` sizes the inner map
template of a map of maps. Type names are libbpf's section prefixes (``xdp``, ``xdp.frags``,
``tc``) or ``enum bpf_prog_type`` names (``sched_cls``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .exits import UsageError

TYPE_HELP = ("program type: TYPE for every program (as bpftool prog loadall ... type TYPE), "
             "PROG=TYPE for one (repeatable); e.g. xdp, xdp.frags")
MAP_SIZE_HELP = ("max_entries of a map before load, as bpf_map__set_max_entries (maps "
                 "declared with max_entries 0 need one); OUTER.inner=N for a map of maps' "
                 "inner template (repeatable)")


def add_arguments(parser: argparse.ArgumentParser, *, type_help: str = TYPE_HELP) -> None:
    parser.add_argument("--type", action="append", metavar="[PROG=]TYPE", help=type_help)
    parser.add_argument("--map-size", action="append", metavar="NAME=N", help=MAP_SIZE_HELP)


def parse_types(values: Sequence[str] | None) -> tuple[str | None, dict[str, str]]:
    """(the type of every program, types by program name) from ``--type`` values."""
    every: str | None = None
    per_program: dict[str, str] = {}
    for value in values or ():
        program, equals, kind = value.rpartition("=")
        if not kind or (equals and not program):
            raise UsageError(f"--type {value!r}: give TYPE or PROG=TYPE.")
        if not equals:
            if every is not None and every != kind:
                raise UsageError(f"--type is given twice for every program ({every}, {kind}); "
                                 "name a program with PROG=TYPE to set one.")
            every = kind
        elif per_program.setdefault(program, kind) != kind:
            raise UsageError(f"--type gives program {program!r} two types "
                             f"({per_program[program]}, {kind}).")
    return every, per_program


def parse_map_sizes(values: Sequence[str] | None) -> dict[str, int]:
    """Map sizes by name from ``--map-size NAME=N`` values."""
    sizes: dict[str, int] = {}
    for value in values or ():
        name, equals, number = value.rpartition("=")
        try:
            size = int(number, 0)
        except ValueError:
            size = None
        if not equals or not name or size is None:
            raise UsageError(f"--map-size {value!r}: give NAME=N, N a number of entries.")
        if sizes.setdefault(name, size) != size:
            raise UsageError(f"--map-size gives map {name!r} two sizes ({sizes[name]}, {size}).")
    return sizes
