"""Named capability profiles, kept as TOML data files in ``offload/caps/profiles/``.

A profile is a :class:`Capabilities` written out: ISA version, helper ids, map and program types
by their uAPI names, limits, virtio feature bits by their spec names, the description of the
device's BTF (``btf``, one of :data:`BTF_DESCRIPTIONS`, built by
:mod:`offload.loader.device_btf`), its map memory in bytes (``memory``, see
:mod:`offload.maps.memory`). Data files let a device, a test or a user describe a target
without code, and :func:`profile_to_toml` writes any ``Capabilities`` back so the two forms
round-trip exactly.

Some profiles are not files but probed, such as ``host-kernel`` (the running kernel through
bpf()). Code that can probe sits above caps, so caps never imports it: a provider registers its
probes with :func:`register_probe` when its entry point in :data:`PROBE_PROVIDERS` is called,
and every lookup (:func:`list_profiles`, :func:`load_profile`) calls the entry points first,
once per process. The names are data, as a package's entry points are; importing a provider
on its own registers nothing.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import OffloadError
from ..helpers.prototypes import PROTOTYPES
from ..uapi import MapType, ProgType, VirtioFeature
from .capabilities import BTF_DESCRIPTIONS, DEFAULT_BTF, DEFAULT_MEMORY, Capabilities, Limits

PROFILE_DIR = Path(__file__).with_name("profiles")
HOST_KERNEL = "host-kernel"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_KEYS = ("name", "description", "isa_version", "prog_types", "map_types", "helpers",
         "features", "check_xdp_action", "btf", "memory", "limits")
#: the smallest and largest map memory a profile may give a device
MIN_MEMORY, MAX_MEMORY = 1 << 12, 1 << 50
_LIMIT_KEYS = tuple(f.name for f in fields(Limits))


class ProfileError(OffloadError):
    """A profile that does not exist, cannot be probed here, or whose file is malformed."""


#: A probed profile: its Capabilities, or ProfileError saying why it cannot be probed here.
Probe = Callable[[], Capabilities]
#: Entry points ("module:function") that register probed profiles; each function is called
#: once with :func:`register_probe` before the first lookup.
PROBE_PROVIDERS: tuple[str, ...] = ("offload.backends.kernel.profile:register",)
_probes: dict[str, Probe] = {}
_providers_called = False


def register_probe(name: str, probe: Probe) -> None:
    """Make ``name`` a probed profile: :func:`load_profile` returns what ``probe`` returns."""
    if not _NAME.match(name):
        raise ProfileError(f"{name!r} is not a profile name: use lower-case letters, digits "
                           "and '-'.")
    if (PROFILE_DIR / f"{name}.toml").exists():
        raise ProfileError(f"{name!r} is a profile on file; a probed profile needs its own name.")
    _probes[name] = probe


def probes() -> dict[str, Probe]:
    """The probed profiles by name, after calling every provider's entry point once."""
    global _providers_called
    if not _providers_called:
        _providers_called = True
        for entry in PROBE_PROVIDERS:
            module, _, function = entry.partition(":")
            getattr(importlib.import_module(module), function)(register_probe)
    return dict(_probes)


def list_profiles() -> list[str]:
    """Names of the profiles on file, then the probed ones (``host-kernel``)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml")) + sorted(probes())


def load_profile(name: str) -> Capabilities:
    """The profile ``name``: its data file, or what its probe finds (``host-kernel``).

    A profile on file is read without asking the probe providers: no probe may take a file's
    name (:func:`register_probe`), and importing the providers costs every process that only
    wants a file (a daemon's start-up, every CLI command) about 30 ms."""
    if _NAME.match(name) and (PROFILE_DIR / f"{name}.toml").is_file():
        return _from_file(name)
    probe = probes().get(name)
    if probe is not None:
        return probe()
    if not _NAME.match(name):
        raise ProfileError(f"{name!r} is not a profile name: use lower-case letters, digits "
                           f"and '-' (known: {', '.join(list_profiles())}).")
    return _from_file(name)


def _from_file(name: str) -> Capabilities:
    path = PROFILE_DIR / f"{name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"there is no profile {name!r}; known profiles: "
                           f"{', '.join(list_profiles())}.") from None
    caps = profile_from_toml(text, source=str(path))
    if caps.name != name:
        raise ProfileError(f"{path} names its profile {caps.name!r}; it must be {name!r}.")
    return caps


# ------------------------------------------------------------------ mapping form
def _feature_names() -> dict[str, int]:
    return {f.name: int(f) for f in VirtioFeature}


def _features_to_list(features: int) -> list[str | int]:
    by_bit = {bit: name for name, bit in _feature_names().items()}
    out: list[str | int] = []
    for n in range(features.bit_length()):
        if features >> n & 1:
            out.append(by_bit.get(n, n))
    return out


def capabilities_to_mapping(caps: Capabilities) -> dict[str, Any]:
    """The plain form of a profile: names for enums and features, sorted lists for sets."""
    return {
        "name": caps.name,
        "description": caps.description,
        "isa_version": caps.isa_version,
        "prog_types": [t.name for t in sorted(caps.prog_types)],
        "map_types": [t.name for t in sorted(caps.map_types)],
        "helpers": sorted(int(h) for h in caps.helpers),
        "features": _features_to_list(caps.features),
        "check_xdp_action": caps.check_xdp_action,
        "btf": caps.btf,
        "memory": caps.memory,
        "limits": {key: getattr(caps.limits, key) for key in _LIMIT_KEYS},
    }


def _enum_names(data: Mapping[str, Any], key: str, enum: type[MapType] | type[ProgType],
                where: str) -> frozenset[Any]:
    values = data.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProfileError(f"{where}: '{key}' must be a list of {enum.__name__} names.")
    try:
        return frozenset(enum[v] for v in values)
    except KeyError as exc:
        raise ProfileError(f"{where}: unknown {enum.__name__} {exc.args[0]!r} in '{key}'; "
                           f"known: {', '.join(m.name for m in enum)}.") from None


def _int(value: Any, what: str, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProfileError(f"{where}: {what} must be an integer in {lo}..{hi}, got {value!r}.")
    return value


def capabilities_from_mapping(data: Mapping[str, Any], *, source: str = "profile") -> Capabilities:
    """Build ``Capabilities`` from the plain form, refusing unknown keys and bad values."""
    if not isinstance(data, Mapping):
        raise ProfileError(f"{source}: a profile must be a table of keys.")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ProfileError(f"{source}: unknown keys {', '.join(unknown)}; a profile has "
                           f"{', '.join(_KEYS)}.")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{source}: 'name' must be a non-empty string.")
    where = f"{source} (profile {name!r})"
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{where}: 'description' must be a string.")
    helpers = data.get("helpers", [])
    if not isinstance(helpers, list):
        raise ProfileError(f"{where}: 'helpers' must be a list of helper ids.")
    features = 0
    names = _feature_names()
    feature_list = data.get("features", [])
    if not isinstance(feature_list, list):
        raise ProfileError(f"{where}: 'features' must be a list of feature names or bits.")
    for feature in feature_list:
        if isinstance(feature, str):
            if feature not in names:
                raise ProfileError(f"{where}: unknown feature {feature!r}; known: "
                                   f"{', '.join(names)} (or a bit number).")
            features |= 1 << names[feature]
        else:
            features |= 1 << _int(feature, "a feature bit", where, 0, 127)
    limits = data.get("limits", {})
    if not isinstance(limits, Mapping):
        raise ProfileError(f"{where}: 'limits' must be a table.")
    bad = sorted(set(limits) - set(_LIMIT_KEYS))
    if bad:
        raise ProfileError(f"{where}: unknown limits {', '.join(bad)}; known: "
                           f"{', '.join(_LIMIT_KEYS)}.")
    check = data.get("check_xdp_action", False)
    if not isinstance(check, bool):
        raise ProfileError(f"{where}: 'check_xdp_action' must be true or false.")
    btf = data.get("btf", DEFAULT_BTF)
    if btf not in BTF_DESCRIPTIONS:
        raise ProfileError(f"{where}: 'btf' must name a device BTF description "
                           f"({', '.join(BTF_DESCRIPTIONS)}), not {btf!r}.")
    return Capabilities(
        name=name,
        isa_version=_int(data.get("isa_version", 4), "'isa_version'", where, 1, 4),
        helpers=frozenset(_int(h, "a helper id", where, 1, (1 << 31) - 1) for h in helpers),
        map_types=_enum_names(data, "map_types", MapType, where),
        prog_types=_enum_names(data, "prog_types", ProgType, where),
        limits=Limits(**{k: _int(v, f"limit '{k}'", where, 0, (1 << 63) - 1)
                         for k, v in limits.items()}),
        features=features,
        check_xdp_action=check,
        description=description,
        btf=btf,
        memory=_int(data.get("memory", DEFAULT_MEMORY), "'memory' (bytes of map memory)",
                    where, MIN_MEMORY, MAX_MEMORY),
    )


# ------------------------------------------------------------------ TOML form
def profile_from_toml(text: str, *, source: str = "profile") -> Capabilities:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source} is not valid TOML: {exc}.") from None
    return capabilities_from_mapping(data, source=source)


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _toml_str(value)


def _helper_comment(helper_id: int) -> str:
    # names are a comfort for readers, not part of the data
    proto = PROTOTYPES.get(helper_id)
    return f"  # {proto.kernel_name}" if proto else ""


def profile_to_toml(caps: Capabilities) -> str:
    """A profile file for ``caps``; :func:`profile_from_toml` gives ``caps`` back exactly."""
    data = capabilities_to_mapping(caps)
    lines = [f"name = {_toml_str(data['name'])}", f"description = {_toml_str(data['description'])}",
             f"isa_version = {data['isa_version']}",
             f"check_xdp_action = {_toml_value(data['check_xdp_action'])}",
             f"btf = {_toml_str(data['btf'])}",
             f"memory = {data['memory']}"]
    for key in ("prog_types", "map_types", "features"):
        lines.append(f"{key} = [" + "".join(f"\n    {_toml_value(v)}," for v in data[key])
                     + ("\n]" if data[key] else "]"))
    lines.append("helpers = [" + "".join(f"\n    {h},{_helper_comment(h)}" for h in data["helpers"])
                 + ("\n]" if data["helpers"] else "]"))
    lines.append("\n[limits]")
    lines += [f"{key} = {value}" for key, value in data["limits"].items()]
    return "\n".join(lines) + "\n"

