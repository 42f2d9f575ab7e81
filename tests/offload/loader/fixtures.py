"""Paths of the XDP fixture objects (built by fixtures/build.sh, committed)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "xdp"
OBJECTS = sorted(FIXTURES.glob("*.o"))
OBJECT_IDS = [path.name for path in OBJECTS]


def fixture(name: str) -> Path:
    return FIXTURES / name

#: Objects that need libbpf-style options or hold programs a device refuses (fixtures/build.sh).
LIBBPF_FIXTURES = FIXTURES / "libbpf"


def libbpf_fixture(name: str) -> Path:
    return LIBBPF_FIXTURES / f"{name}.o"
