"""The snapshot format's records (format version 2): model objects to plain maps and back.

One record per msgpack object; docs/snapshot-format.md lists them. Building a model object from
a record goes through :mod:`migrate.schema`, so every field is typed, in range and named in the
error when it is not. Cross-record rules (names resolve, counts add up) live in the codec.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from offload.caps.capabilities import Capabilities, Limits
from offload.device.sampler import MAX_SAMPLE_BYTES
from offload.isa import DecodeError, PseudoSrc, decode, encode
from offload.loader.btf import parse_btf
from offload.loader.core import CoreBinding, CoreRelocation
from offload.loader.errors import LoaderError
from offload.maps.spec import MapSpec, Pinning
from offload.program import (
    ArgKind,
    FuncArg,
    FuncInfo,
    FuncProto,
    LineInfo,
    Linkage,
    MapReference,
    ProgramSpec,
)
from offload.uapi import CoreReloKind, MapType, ProgType, XdpAction, XdpMode

from .entries import EntryChunk
from .schema import MAX_NAME, MAX_TEXT, U32, U64, Fields, SnapshotFormatError, Tuple
from .snapshot import MAGIC, ActionCounter, AttachPoint, MapLink, MapState, ProgramState, VerifierStats

MAX_KEY = 512  # MAX_BPF_STACK: no map key can be larger
MAX_VALUE = 1 << 20
MAX_CPUS = 1 << 14
MAX_SLOTS = 1 << 20  # BPF_COMPLEXITY_LIMIT_INSNS
MAX_HELPER = 1 << 16
MAX_LIST = 1 << 20
MAX_FUNC_ARGS = 5  # a BPF function takes its arguments in R1-R5
_LIMIT_FIELDS = Limits.__dataclass_fields__.keys()
#: The map memory a ``caps`` record without ``memory`` means.
DEFAULT_MEMORY = Capabilities.__dataclass_fields__["memory"].default
#: The device BTF description a ``caps`` record without ``btf`` means.
DEFAULT_BTF = Capabilities.__dataclass_fields__["btf"].default
MAX_CORE_BTF = 1 << 24  # the local types of a program's CO-RE relocations, as BTF
_ARRAY_KEYED = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY,
                          MapType.ARRAY_OF_MAPS, MapType.DEVMAP, MapType.CPUMAP,
                          MapType.XSKMAP})


# ------------------------------------------------------------------ header
def header_record(device: str, caps: Capabilities, features: int, cpus: int, created_ns: int,
                  tool: str, counters: tuple[tuple[str, int], ...], version: int) -> dict:
    return {"kind": "header", "magic": MAGIC, "version": version, "device": device,
            "created_ns": created_ns, "tool": tool, "features": features, "cpus": cpus,
            "caps": caps_record(caps), "counters": [[n, v] for n, v in counters]}


def caps_record(caps: Capabilities) -> dict:
    return {"name": caps.name, "description": caps.description, "isa": caps.isa_version,
            "helpers": sorted(int(h) for h in caps.helpers),
            "map_types": sorted(int(t) for t in caps.map_types),
            "prog_types": sorted(int(t) for t in caps.prog_types),
            "limits": {k: getattr(caps.limits, k) for k in _LIMIT_FIELDS},
            "features": caps.features, "check_xdp_action": caps.check_xdp_action,
            **({"btf": caps.btf} if caps.btf != DEFAULT_BTF else {}),
            **({"memory": caps.memory} if caps.memory != DEFAULT_MEMORY else {})}


def parse_caps(f: Fields) -> Capabilities:
    helpers = f.list("helpers", MAX_HELPER)
    map_types = f.list("map_types", 256)
    prog_types = f.list("prog_types", 256)
    limits = f.sub("limits")
    caps = Capabilities(
        name=f.str("name", MAX_NAME), description=f.str("description", MAX_TEXT),
        isa_version=f.int("isa", 1, 4),
        helpers=frozenset(Tuple([h], f"{f.where}, helpers").int(0, 1, U32) for h in helpers),
        map_types=frozenset(Tuple([t], f"{f.where}, map_types").enum(0, MapType)
                            for t in map_types),
        prog_types=frozenset(Tuple([t], f"{f.where}, prog_types").enum(0, ProgType)
                             for t in prog_types),
        limits=Limits(**{k: limits.int(k, 0, U64) for k in _LIMIT_FIELDS}),
        features=f.int("features", 0, U64), check_xdp_action=f.bool("check_xdp_action"),
        btf=f.str("btf", MAX_NAME, DEFAULT_BTF, empty=False),
        memory=f.int("memory", 1, U64, DEFAULT_MEMORY))
    limits.done()
    f.done()
    return caps


def parse_counters(f: Fields, key: str) -> tuple[tuple[str, int], ...]:
    out = tuple(f.items(key, 4096, lambda t, _: (t.length(2).str(0, MAX_NAME, empty=False),
                                                 t.int(1))))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise f.fail(key, "names a counter twice")
    return out


# ------------------------------------------------------------------ maps
def map_spec_record(spec: MapSpec) -> dict:
    return {"name": spec.name, "type": int(spec.type), "key_size": spec.key_size,
            "value_size": spec.value_size, "max_entries": spec.max_entries,
            "flags": int(spec.flags), "pinning": int(spec.pinning), "frozen": spec.frozen,
            "inner": map_spec_record(spec.inner) if spec.inner else None,
            **({"spin_lock_off": spec.spin_lock_off} if spec.spin_lock_off is not None else {})}


def parse_map_spec(f: Fields, depth: int = 0) -> MapSpec:
    mtype = f.enum("type", MapType)
    inner_fields = f.sub("inner", None)
    if inner_fields is not None and (depth or not mtype.is_map_in_map):
        raise f.fail("inner", "is only allowed on ARRAY_OF_MAPS and HASH_OF_MAPS maps, one "
                              "level deep")
    if inner_fields is None and mtype.is_map_in_map:
        raise f.fail("inner", f"is required for a {mtype.name} map (the inner map template)")
    spec = MapSpec(
        name=f.str("name", MAX_NAME, empty=False), type=mtype,
        key_size=f.int("key_size", 0, MAX_KEY), value_size=f.int("value_size", 0, MAX_VALUE),
        max_entries=f.int("max_entries", 0, U32), flags=f.int("flags", 0, U32),
        pinning=f.enum("pinning", Pinning), frozen=f.bool("frozen"),
        inner=parse_map_spec(inner_fields, depth + 1) if inner_fields else None,
        # absent in snapshots of maps without a lock (and in those written before locks)
        spin_lock_off=f.opt_int("spin_lock_off", 0, MAX_VALUE)
        if "spin_lock_off" in f.record else None)
    f.done()
    return spec


def map_record(state: MapState) -> dict:
    return {"kind": "map", "spec": map_spec_record(state.spec), "frozen": state.frozen}


def parse_map(f: Fields) -> tuple[MapSpec, bool]:
    spec_fields = f.sub("spec")
    spec = parse_map_spec(spec_fields)
    frozen = f.bool("frozen")
    f.done()
    return spec, frozen


class ChunkCorrupted(SnapshotFormatError):
    """A chunk of map contents whose bytes do not match the CRC-32 written with them."""


def chunk_crc(keys: bytes, values: bytes) -> int:
    """CRC-32 (ISO-HDLC, as zlib, gzip and Ethernet compute it) of a chunk's keys then values."""
    return zlib.crc32(values, zlib.crc32(keys))


def links_crc(keys: bytes, targets: Iterable[str]) -> int:
    """CRC-32 of a links chunk: its keys, then each target name in UTF-8 ended by a NUL."""
    crc = zlib.crc32(keys)
    for target in targets:
        crc = zlib.crc32(target.encode("utf-8", "surrogatepass") + b"\0", crc)
    return crc


def check_crc(f: Fields, declared: int, actual: int, what: str) -> None:
    if declared != actual:
        raise ChunkCorrupted(f"{f.where}: the {what} do not match their CRC-32 (stored "
                             f"{declared:#010x}, computed {actual:#010x}): this chunk was "
                             f"damaged after it was written.")


def entries_record(chunk: EntryChunk) -> dict:
    return {"kind": "entries", "count": chunk.count, "keys": chunk.keys, "values": chunk.values,
            "crc": chunk_crc(chunk.keys, chunk.values)}


def parse_entries(f: Fields, spec: MapSpec, cpus: int, max_bin: int) -> EntryChunk:
    count = f.int("count", 1, U32)
    keys = f.bytes("keys", max_bin)
    values = f.bytes("values", max_bin)
    crc = f.int("crc", 0, U32)
    f.done()
    per_cpu = cpus if spec.type.is_percpu else 1
    if len(keys) != count * spec.key_size:
        raise f.fail("keys", f"holds {len(keys)} bytes; {count} keys of map {spec.name!r} "
                             f"take {count * spec.key_size}")
    if len(values) != count * spec.value_size * per_cpu:
        raise f.fail("values", f"holds {len(values)} bytes; {count} values of map "
                               f"{spec.name!r} take {count * spec.value_size * per_cpu}")
    check_crc(f, crc, chunk_crc(keys, values), "keys and values")
    check_keys(f, spec, keys)
    return EntryChunk(count, keys, values)


def check_keys(f: Fields, spec: MapSpec, keys: bytes) -> None:
    """Array indexes below max_entries; LPM prefix lengths within the key's data bits."""
    if spec.type in _ARRAY_KEYED and spec.key_size == 4 and keys:
        top = max(k for (k,) in struct.iter_unpack("<I", keys))
        if top >= spec.max_entries:
            raise f.fail("keys", f"holds index {top}, beyond max_entries {spec.max_entries} "
                                 f"of array map {spec.name!r}")
    if spec.type == MapType.LPM_TRIE and spec.key_size > 4 and keys:
        data_bits = (spec.key_size - 4) * 8
        for i in range(0, len(keys), spec.key_size):
            (prefix,) = struct.unpack_from("<I", keys, i)
            if prefix > data_bits:
                raise f.fail("keys", f"holds prefix length {prefix} in map {spec.name!r} "
                                     f"whose keys carry {data_bits} bits")


def links_record(keys: bytes, targets: list[str]) -> dict:
    return {"kind": "links", "keys": keys, "targets": targets,
            "crc": links_crc(keys, targets)}


def parse_links(f: Fields, spec: MapSpec, max_bin: int, max_list: int) -> list[MapLink]:
    keys = f.bytes("keys", max_bin)
    targets = f.list("targets", max_list)
    crc = f.int("crc", 0, U32)
    f.done()
    if not targets or len(keys) != len(targets) * spec.key_size:
        raise f.fail("keys", f"holds {len(keys)} bytes for {len(targets)} targets of "
                             f"{spec.key_size}-byte keys")
    ks = spec.key_size
    names = Tuple(targets, f"{f.where}, targets")
    links = [MapLink(keys[i * ks:(i + 1) * ks], names.str(i, MAX_NAME, empty=False))
             for i in range(len(targets))]
    check_crc(f, crc, links_crc(keys, (link.target for link in links)), "keys and targets")
    check_keys(f, spec, keys)
    return links


# ------------------------------------------------------------------ programs
def _function(fi: FuncInfo) -> list[Any]:
    """[slot, name], and with BTF func_info its linkage and prototype: nil, or [[[argument
    kind, size], ...], the reason Linux cannot verify against it or ""]."""
    if fi.linkage == Linkage.STATIC and fi.proto is None:
        return [fi.slot, fi.name]
    proto = None if fi.proto is None else [[[int(a.kind), a.size] for a in fi.proto.args],
                                           fi.proto.problem]
    return [fi.slot, fi.name, int(fi.linkage), proto]


def _parse_function(t: Tuple, nslots: int) -> FuncInfo:
    slot, name = t.length(2, 4).int(0, 0, nslots - 1), t.str(1, MAX_NAME)
    if len(t.value) == 2:
        return FuncInfo(slot, name)
    linkage = t.enum(2, Linkage)
    raw = t.value[3]
    if raw is None:
        return FuncInfo(slot, name, linkage)
    proto = Tuple(raw, f"{t.where} prototype").length(2)
    args = [Tuple(a, f"{t.where} argument").length(2)
            for a in proto.list(0, MAX_FUNC_ARGS)]
    parsed = tuple(FuncArg(a.enum(0, ArgKind), a.int(1, 0, U32)) for a in args)
    return FuncInfo(slot, name, linkage, FuncProto(parsed, proto.str(1, MAX_TEXT)))


def program_record(state: ProgramState) -> dict:
    spec = state.spec
    attach = state.attach
    return {
        "kind": "program", "name": spec.name, "type": int(spec.type), "license": spec.license,
        "section": spec.section, "flags": spec.flags, "bytecode": encode(spec.instructions),
        "map_refs": [[r.slot, r.map_name, int(r.kind), r.offset] for r in spec.map_refs],
        "line_info": [[li.slot, li.file, li.line, li.column, li.text] for li in spec.line_info],
        "functions": [_function(fi) for fi in spec.functions],
        "attach": None if attach is None else {
            "hook": attach.hook, "interface": attach.interface, "mode": int(attach.mode),
            "queue": attach.queue},
        "verifier": [state.verifier.insns_processed, state.verifier.total_states,
                     state.verifier.peak_states, list(state.verifier.stack_depth)],
        "counters": [[int(c.action), c.packets, c.bytes] for c in state.counters],
        **({"core": core_record(spec.core)} if spec.core is not None else {}),
        # only where set: a reader from before the field still reads every other snapshot
        **({"expected_attach_type": spec.expected_attach_type}
           if spec.expected_attach_type else {}),
    }


def core_record(core: CoreBinding) -> dict:
    """What a program's CO-RE relocations were resolved against: the local types they name
    (BTF), the device BTF's description and SHA-256, and per relocation its slot, kind,
    local type id, access string, the value its instruction holds and the access size.
    Written only for programs with CO-RE relocations: a reader that predates them refuses
    the field as one from a newer format rather than load the program unbound."""
    return {"btf": core.btf, "target": core.target, "digest": core.digest,
            "relocations": [[r.slot, int(r.kind), r.type_id, r.access, r.value, r.size]
                            for r in core.relocations]}


def parse_core(f: Fields, starts: set[int]) -> CoreBinding:
    data = f.bytes("btf", MAX_CORE_BTF)
    try:
        btf = parse_btf(data)
    except LoaderError as err:
        raise f.fail("btf", f"is not valid BTF ({err.detail})") from None

    def relocation(t: Tuple, _: str) -> CoreRelocation:
        t.length(6)
        slot = t.int(0, 0, MAX_SLOTS)
        if slot not in starts:
            raise SnapshotFormatError(f"{t.where}: slot {slot} does not start an instruction.")
        return CoreRelocation(slot, t.enum(1, CoreReloKind), t.int(2, 0, len(btf.types) - 1),
                              t.str(3, MAX_NAME, empty=False), t.int(4), t.int(5, 0, 8))

    relocations = f.items("relocations", MAX_LIST, relocation)
    if len({r.slot for r in relocations}) != len(relocations):
        raise f.fail("relocations", "relocates one instruction twice")
    core = CoreBinding(data, tuple(relocations), f.str("target", MAX_NAME, empty=False),
                       f.str("digest", 64, empty=False))
    f.done()
    return core


def _slots(insns: list[Any]) -> tuple[int, set[int]]:
    """Total slots, and the slots holding an ``lddw``."""
    slot, lddw = 0, set()
    for insn in insns:
        if insn.is_lddw:
            lddw.add(slot)
        slot += insn.width
    return slot, lddw


def _starts(insns: list[Any]) -> set[int]:
    """The slots where instructions start."""
    slot, starts = 0, set()
    for insn in insns:
        starts.add(slot)
        slot += insn.width
    return starts


def parse_program(f: Fields, maps: dict[str, MapSpec]) -> ProgramState:
    name = f.str("name", MAX_NAME, empty=False)
    try:
        insns = decode(f.bytes("bytecode", 8 * MAX_SLOTS))
    except DecodeError as exc:
        raise f.fail("bytecode", f"is not valid eBPF bytecode ({exc})") from None
    if not insns:
        raise f.fail("bytecode", "is empty")
    nslots, lddw = _slots(insns)

    def map_ref(t: Tuple, _: str) -> MapReference:
        t.length(4)
        slot, target = t.int(0, 0, nslots - 1), t.str(1, MAX_NAME, empty=False)
        kind, offset = t.enum(2, PseudoSrc), t.int(3, 0, U32)
        if slot not in lddw:
            raise SnapshotFormatError(f"{t.where}: slot {slot} does not hold an lddw.")
        if target not in maps:
            raise SnapshotFormatError(f"{t.where}: program {name!r} refers to map {target!r}, "
                                      f"which the snapshot does not hold.")
        if kind not in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
            raise SnapshotFormatError(f"{t.where}: kind must be MAP_FD or MAP_VALUE.")
        if kind == PseudoSrc.MAP_VALUE and offset >= max(maps[target].value_size, 1):
            raise SnapshotFormatError(f"{t.where}: offset {offset} is outside the "
                                      f"{maps[target].value_size}-byte value of {target!r}.")
        return MapReference(slot, target, kind, offset)

    refs = f.items("map_refs", MAX_LIST, map_ref)
    lines = f.items("line_info", MAX_LIST, lambda t, _: LineInfo(
        t.length(5).int(0, 0, nslots - 1), t.str(1, MAX_TEXT), t.int(2, 0, U32),
        t.int(3, 0, U32), t.str(4, MAX_TEXT)))
    funcs = f.items("functions", MAX_LIST, lambda t, _: _parse_function(t, nslots))
    core_fields = f.sub("core", None)
    core = None if core_fields is None else parse_core(core_fields, _starts(insns))
    spec = ProgramSpec(name=name, type=f.enum("type", ProgType), instructions=tuple(insns),
                       license=f.str("license", MAX_NAME), section=f.str("section", MAX_NAME),
                       flags=f.int("flags", 0, U32), map_refs=tuple(refs),
                       line_info=tuple(lines), functions=tuple(funcs), core=core,
                       expected_attach_type=f.int("expected_attach_type", 0, U32, default=0))
    attach = None
    if (a := f.sub("attach", None)) is not None:
        queue = a.opt_int("queue", 0, U32)
        attach = AttachPoint(interface=a.str("interface", MAX_NAME, empty=False),
                             mode=a.enum("mode", XdpMode), queue=queue,
                             hook=a.str("hook", 32, empty=False))
        a.done()
    v = Tuple(f.list("verifier", 4), f"{f.where}, verifier").length(4)
    depths = Tuple(v.list(3, 256), f"{v.where}, stack depth")
    verifier = VerifierStats(v.int(0), v.int(1), v.int(2),
                             tuple(depths.int(i, 0, U32) for i in range(len(depths.value))))
    counters = f.items("counters", 16, lambda t, _: ActionCounter(
        t.length(3).enum(0, XdpAction), t.int(1), t.int(2)))
    if len({c.action for c in counters}) != len(counters):
        raise f.fail("counters", "counts one action twice")
    f.done()
    return ProgramState(spec, attach, verifier, tuple(counters))


# ------------------------------------------------------------------ trailer
# ------------------------------------------------------------------ sampled frames
def samples_record(frames: Sequence[bytes]) -> dict:
    """Frames the device received, oldest first, for a restore's proof (migrate/proof.py)."""
    return {"kind": "samples", "frames": list(frames), "crc": samples_crc(frames)}


def samples_crc(frames: Iterable[bytes]) -> int:
    """CRC-32 of a samples chunk: each frame's length (u32 LE), then its bytes."""
    crc = 0
    for frame in frames:
        crc = zlib.crc32(frame, zlib.crc32(len(frame).to_bytes(4, "little"), crc))
    return crc


def parse_samples(f: Fields, room: int) -> list[bytes]:
    """A samples chunk: at most ``room`` more frames, each at most MAX_SAMPLE_BYTES."""
    raw = f.list("frames", room)
    crc = f.int("crc", 0, U32)
    f.done()
    if not raw:
        raise f.fail("frames", "is empty; a samples record holds at least one frame")
    out: list[bytes] = []
    for i, frame in enumerate(raw):
        if not isinstance(frame, bytes) or not 0 < len(frame) <= MAX_SAMPLE_BYTES:
            raise f.fail("frames", f"item {i} must be 1 to {MAX_SAMPLE_BYTES} bytes of binary "
                                   f"data, got {type(frame).__name__} of length "
                                   f"{len(frame) if isinstance(frame, bytes | str) else '-'}")
        out.append(frame)
    check_crc(f, crc, samples_crc(out), "frames")
    return out


def trailer_record(maps: int, programs: int, entries: int, records: int) -> dict:
    return {"kind": "end", "maps": maps, "programs": programs, "entries": entries,
            "records": records}
