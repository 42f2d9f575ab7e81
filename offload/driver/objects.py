"""An ELF object's maps and programs onto the device through the driver, as libbpf's
``bpf_object__load`` puts them into a kernel.

Program types and map sizes are set first (``bpf_program__set_type``,
``bpf_map__set_max_entries``); then the maps are created and the chosen programs loaded.
The maps created are those the chosen programs use and those no program of the object uses
(left for userspace): a map only a program not chosen (or refused) uses costs the device
nothing, so a perf buffer of a tracing program never blocks the XDP program beside it.
Programs the loader refuses (see :class:`~offload.loader.ProgramRefusal`) never reach the
device. By default the load is all or none, as ``bpftool prog loadall`` is: a chosen program
refused by the loader or by the device's verifier undoes everything. With
``all_or_none=False`` the loadable programs load and the refused ones are reported.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..caps.capabilities import Capabilities
from ..errors import ErrnoError
from ..isa.instruction import Instruction
from ..loader import LoadOptionError, ObjectSpec, ProgramRefusal, RefusalKind, load_object
from ..loader.device_btf import DeviceBtf, device_btf
from ..loader.object import default_target_btf
from ..maps.spec import MapSpec
from ..program import ProgramSpec
from ..uapi import MapType, ProgType
from .errors import DriverError, ObjectLoadError


class DriverCalls(Protocol):
    """The bpf(2)-like calls loading and unloading an object makes (the guest ``Driver``'s)."""

    def capabilities(self) -> Capabilities: ...

    def map_create(self, spec: MapSpec, *, inner_map: int = 0) -> int: ...

    def map_free(self, handle: int) -> None: ...

    def map_lookup_elem(self, handle: int, key: bytes, value_size: int = ...) -> bytes: ...

    def prog_load(self, program: ProgramSpec | Sequence[Instruction], *,
                  maps: Mapping[str, int] | None = None, prog_type: ProgType = ...,
                  name: str = "", license: str = "GPL", log_level: int = 1) -> int: ...

    def prog_unload(self, handle: int) -> None: ...

Source = ObjectSpec | str | os.PathLike[str] | bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class LoadedObject:
    """What an object left on the device: map and program handles by name.

    ``refused`` lists chosen programs the loader refused and ``rejected`` those the device
    refused (its DriverError, with the verifier log); both stay empty for an all-or-none load,
    which raises instead.
    """

    object: ObjectSpec
    maps: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    refused: dict[str, ProgramRefusal] = field(default_factory=dict)
    rejected: dict[str, DriverError] = field(default_factory=dict)


def open_object(source: Source, *, name: str | None = None,
                prog_type: ProgType | str | None = None,
                prog_types: Mapping[str, ProgType | str] | None = None,
                map_sizes: Mapping[str, int] | None = None,
                target_btf: DeviceBtf | None = None) -> ObjectSpec:
    """The object with its types and sizes set (EINVAL naming what does not fit), its CO-RE
    relocations resolved against ``target_btf`` (the device's, as libbpf resolves them
    against the kernel it loads into). An ObjectSpec the caller already resolved for a chosen
    device BTF is kept as it is; one left on the default BTF is resolved again."""
    try:
        if isinstance(source, ObjectSpec):
            again = target_btf if _resolve_again(source, target_btf) else None
            if prog_type is None and not prog_types and not map_sizes and again is None:
                return source
            return source.configured(prog_type=prog_type, prog_types=prog_types,
                                     map_sizes=map_sizes, target_btf=again)
        return load_object(source, name, prog_type=prog_type, prog_types=prog_types,
                           map_sizes=map_sizes, target_btf=target_btf)
    except LoadOptionError as err:
        raise DriverError(errno.EINVAL, str(err)) from None


def _resolve_again(obj: ObjectSpec, target_btf: DeviceBtf | None) -> bool:
    """Whether ``obj`` was resolved against the default BTF, has CO-RE relocations, and
    ``target_btf`` would answer them from other types."""
    if target_btf is None or obj.options.target_btf is not None or not obj.image:
        return False
    has_core = any(spec.core is not None for spec in obj.programs.values()) or any(
        refusal.kind == RefusalKind.CO_RE for refusal in obj.refused.values())
    return has_core and target_btf.digest != default_target_btf().digest


def device_target_btf(driver: DriverCalls) -> DeviceBtf:
    """The BTF of the device behind ``driver``, from the capabilities it reports (its
    helpers, map and program types; the CAPS response names no BTF description, so the
    base types are those of ``uapi``)."""
    return device_btf(driver.capabilities())


def chosen_programs(obj: ObjectSpec, programs: Iterable[str] | None) -> list[str]:
    """The names asked for, in the object's order (all of them by default; ENOENT for a name
    the object does not have)."""
    if programs is None:
        return list(obj.sections)
    wanted = list(dict.fromkeys(programs))
    missing = [name for name in wanted if name not in obj.sections]
    if missing:
        known = ", ".join(f"{n} ({s})" for n, s in obj.sections.items()) or "none"
        raise DriverError(errno.ENOENT, f"the object has no program "
                                        f"{', '.join(repr(n) for n in missing)}; its "
                                        f"programs: {known}")
    return [name for name in obj.sections if name in wanted]


def refusal_message(refusals: Mapping[str, ProgramRefusal], chosen: int) -> str:
    lines = "; ".join(str(r) for r in refusals.values())
    return (f"{len(refusals)} of the {chosen} chosen program{'s' if chosen > 1 else ''} "
            f"cannot be loaded: {lines}")


def load_into(driver: DriverCalls, source: Source, *, name: str | None = None,
              programs: Iterable[str] | None = None,
              prog_type: ProgType | str | None = None,
              prog_types: Mapping[str, ProgType | str] | None = None,
              map_sizes: Mapping[str, int] | None = None,
              all_or_none: bool = True) -> LoadedObject:
    """See :meth:`Driver.load_object`."""
    obj = open_object(source, name=name, prog_type=prog_type, prog_types=prog_types,
                      map_sizes=map_sizes, target_btf=device_target_btf(driver))
    chosen = chosen_programs(obj, programs)
    refused = {n: obj.refused[n] for n in chosen if n in obj.refused}
    if refused and all_or_none:
        raise ObjectLoadError(errno.EINVAL, refusal_message(refused, len(chosen)),
                              refused=refused)
    loadable = [n for n in chosen if n not in refused]
    result = LoadedObject(obj, refused=refused)
    failed_maps: dict[str, DriverError] = {}
    try:
        for map_name in maps_to_create(obj, loadable):
            try:
                result.maps[map_name] = create_map(driver, obj.maps[map_name])
            except DriverError as err:
                if all_or_none:
                    raise DriverError(err.errno, f"map {map_name!r}: {err.detail}",
                                      response=err.response) from err
                failed_maps[map_name] = err
        for prog_name in loadable:
            spec = obj.programs[prog_name]
            failed = next((m for m in (r.map_name for r in spec.map_refs) if m in failed_maps),
                          None)
            if failed is not None:
                cause = failed_maps[failed]
                result.rejected[prog_name] = DriverError(
                    cause.errno, f"program {prog_name!r} uses map {failed!r}, which the device "
                                 f"did not create: {cause.detail}", response=cause.response)
                continue
            try:
                result.programs[prog_name] = driver.prog_load(spec, maps=result.maps)
            except DriverError as err:
                if all_or_none:
                    raise DriverError(err.errno, f"program {prog_name!r}: {err.detail}",
                                      response=err.response) from err
                result.rejected[prog_name] = err
    except ErrnoError:
        unload(driver, result)
        raise
    return result


def device_cpus(driver: DriverCalls) -> int:
    """The device's CPU count, as a guest learns it: the size of a per-CPU value (1 when
    the device offers no per-CPU map)."""
    try:
        handle = driver.map_create(MapSpec("cpus_probe", MapType.PERCPU_ARRAY, 4, 8, 1))
    except ErrnoError:
        return 1
    try:
        return max(1, len(driver.map_lookup_elem(handle, bytes(4))) // 8)
    finally:
        driver.map_free(handle)


def sized(driver: DriverCalls, spec: MapSpec) -> MapSpec:
    """A perf event array declared with max_entries 0 gets one slot per CPU of the device,
    as libbpf gives it one per possible CPU."""
    if spec.type == MapType.PERF_EVENT_ARRAY and spec.max_entries == 0:
        return dataclasses.replace(spec, max_entries=device_cpus(driver))
    return spec


def create_map(driver: DriverCalls, spec: MapSpec) -> int:
    """One map; a map of maps through its inner template, created for the purpose and let go
    once the outer map holds its shape (libbpf destroys the template the same way)."""
    spec = sized(driver, spec)
    if spec.inner is None:
        return driver.map_create(spec)
    template = driver.map_create(dataclasses.replace(spec.inner, contents=(), frozen=False))
    try:
        return driver.map_create(spec, inner_map=template)
    finally:
        driver.map_free(template)


def maps_to_create(obj: ObjectSpec, programs: Iterable[str]) -> list[str]:
    """The maps the programs use, and those no program of the object uses, in object order."""
    def uses(name: str) -> set[str]:
        if name in obj.programs:
            return {ref.map_name for ref in obj.programs[name].map_refs}
        return set(obj.refused[name].maps)

    used = set().union(*(uses(name) for name in programs))
    used_anywhere = set().union(*(uses(name) for name in obj.sections))
    return [name for name in obj.maps if name in used or name not in used_anywhere]


def unload(driver: DriverCalls, loaded: LoadedObject) -> None:
    """Undo a load: programs, then maps, each as far as the device still has it."""
    for handle in reversed(loaded.programs.values()):
        try:
            driver.prog_unload(handle)
        except ErrnoError:
            pass
    for handle in reversed(loaded.maps.values()):
        try:
            driver.map_free(handle)
        except ErrnoError:
            pass
