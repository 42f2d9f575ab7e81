"""Reading the verifier fixture files: assembler text with a header of expectations.

Header lines (``# key: value``) before the first instruction:
``reason`` the substring the rejection reason must contain; ``maps`` the maps the program uses,
``HANDLE=TYPE:KEY:VALUE:ENTRIES[:frozen][:rdonly_prog][:inner=TYPE/KEY/VALUE/ENTRIES]``;
``caps`` changes to the full-featured device (``isa=N``, ``max_insns=N``, ``max_processed=N``,
``without_helper=ID``, ``check_xdp_action``); ``kernel`` what the host kernel (loading as root)
says when it differs from this verifier, with the reason why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from offload.caps.capabilities import Capabilities, Limits  # noqa: I001
from offload.helpers.prototypes import PROTOTYPES
from offload.isa import Instruction, assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapFlags, MapType

ROOT = Path(__file__).resolve().parents[3] / "fixtures" / "verifier"
FULL = Capabilities("full", isa_version=4, helpers=frozenset(PROTOTYPES),
                    map_types=frozenset(MapType), check_xdp_action=False)


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    insns: tuple[Instruction, ...]
    reason: str
    maps: dict[int, MapSpec]
    caps: Capabilities
    kernel: str = ""  # "", or "accept: why" / "reject: why" where the kernel differs
    header: dict[str, str] = field(default_factory=dict)


def _map(text: str) -> MapSpec:
    kind, key, value, entries, *extra = text.split(":")
    spec = MapSpec(kind, MapType[kind.upper()], int(key), int(value), int(entries))
    for item in extra:
        if item == "frozen":
            spec = replace(spec, frozen=True)
        elif item == "rdonly_prog":
            spec = replace(spec, flags=spec.flags | MapFlags.RDONLY_PROG)
        elif item.startswith("inner="):
            spec = replace(spec, inner=_map(item[6:].replace("/", ":")))
        else:
            raise ValueError(f"unknown map option {item!r}")
    return spec


def _caps(text: str) -> Capabilities:
    caps, limits = FULL, FULL.limits
    for item in text.replace(",", " ").split():
        key, _, value = item.partition("=")
        if key == "isa":
            caps = replace(caps, isa_version=int(value))
        elif key == "max_insns":
            limits = replace(limits, max_insns=int(value))
        elif key == "max_processed":
            limits = replace(limits, max_processed_insns=int(value))
        elif key == "without_helper":
            caps = replace(caps, helpers=caps.helpers - {int(value)})
        elif key == "check_xdp_action":
            caps = replace(caps, check_xdp_action=True)
        else:
            raise ValueError(f"unknown caps option {item!r}")
    return replace(caps, limits=limits if limits != FULL.limits else Limits())


def load_case(path: Path) -> Case:
    text = path.read_text()
    header: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        header[key.strip()] = value.strip()
    maps = {}
    for item in header.get("maps", "").split():
        handle, _, spec = item.partition("=")
        maps[int(handle)] = _map(spec)
    return Case(path.stem, path, tuple(assemble(text)), header.get("reason", ""), maps,
                _caps(header.get("caps", "")), header.get("kernel", ""), header)


def cases(kind: str) -> list[Case]:
    return [load_case(p) for p in sorted((ROOT / kind).glob("*.s"))]
