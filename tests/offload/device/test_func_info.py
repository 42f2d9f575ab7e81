"""Global functions through the device: PROG_LOAD carries the function BTF and func_info, the
device verifies global functions once, as ``verify`` does for the object; snapshots keep the
functions, and restores and live migrations send them again.

Hostile BTF and records are refused with EINVAL naming the field, never a device fault.
"""

from __future__ import annotations

import errno
import functools
import re
import socket
import struct
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.checkpoint import checkpoint
from migrate.codec import decode, encode
from migrate.live import MigrationDestination, MigrationSource
from migrate.restore import restore
from offload.backends.kernel import KernelBackend, kernel_available
from offload.caps import load_profile
from offload.device import build_device
from offload.errors import ErrnoError
from offload.isa.codec import encode as encode_insns
from offload.loader import load_object
from offload.loader.btf import BtfType
from offload.loader.btf_encode import encode_btf
from offload.loader.btf_layout import BtfKind
from offload.loader.func_btf import function_btf, read_function_btf
from offload.program import ArgKind, FuncInfo, FuncProto, Linkage, resolve_map_references
from offload.verifier import VerifierError, verify
from offload.virtio import bpf_progs as p

LIBBPF = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf"
FUNCS, RULES = LIBBPF / "xdp_global_funcs.o", LIBBPF / "xdp_global_rules.o"
TAGS = LIBBPF / "xdp_global_tags.o"
FULL = load_profile("full")
PROGRAMS = [(path, name) for path in (FUNCS, RULES, TAGS) for name in load_object(path).programs]


def _verdict(run) -> int | str:
    """Instructions processed, or the last line of the refusal."""
    try:
        return run()
    except VerifierError as err:
        return err.reason
    except ErrnoError as err:  # the device's log: its last line is "insn N: reason"
        return re.sub(r"^insn \d+: ", "", str(err).strip().splitlines()[-1])


def _by_verify(path: Path, name: str) -> int | str:
    obj = load_object(path)
    spec = obj.programs[name]
    handles = {m: n for n, m in enumerate(obj.maps, start=1)}
    insns = resolve_map_references(spec.instructions, spec.map_refs, handles, program=name)
    maps = {handles[m]: s for m, s in obj.maps.items()}
    return _verdict(lambda: verify(insns, caps=FULL, maps=maps,
                                   functions=spec.functions).insns_processed)


def _loaded(path: Path):
    obj = load_object(path)
    pair = build_device("dut", FULL, seed=1)
    maps = {name: pair.driver.map_create(spec) for name, spec in obj.maps.items()}
    return obj, pair, maps


def _by_device(pair, maps, spec) -> int | str:
    def load() -> int:
        handle = pair.driver.prog_load(spec, maps=maps)
        return pair.device.objects.programs[handle].report.insns_processed
    return _verdict(load)


@pytest.mark.parametrize("path, name", PROGRAMS, ids=[n for _, n in PROGRAMS])
def test_the_device_verifies_as_verify_does(path: Path, name: str) -> None:
    obj, pair, maps = _loaded(path)
    assert _by_device(pair, maps, obj.programs[name]) == _by_verify(path, name)


def test_a_device_on_the_host_kernel_gets_the_same_tags() -> None:
    """The kernel backend hands the kernel the function BTF the device was sent, argument
    tags and prototype problems included: Linux gives the verdicts ``verify`` gives."""
    available, reason = kernel_available()
    if not available:
        pytest.skip(f"host-kernel backend unavailable: {reason}")
    obj = load_object(TAGS)
    for name, spec in obj.programs.items():
        backend = KernelBackend(FULL)
        try:
            pair = build_device("kernel", FULL, backend=backend)
            maps = {m: pair.driver.map_create(s) for m, s in obj.maps.items()}
            verdict = _by_device(pair, maps, spec)
        finally:
            backend.close()
        expected = _by_verify(TAGS, name)
        assert isinstance(verdict, int) == isinstance(expected, int), (name, verdict)
        if isinstance(expected, int):
            assert verdict == expected, name


def test_the_device_keeps_the_functions_it_was_sent() -> None:
    obj, pair, maps = _loaded(FUNCS)
    spec = obj.programs["xdp_global_accept"]
    handle = pair.driver.prog_load(spec, maps=maps)
    program = pair.device.objects.programs[handle]
    assert program.functions == spec.functions
    assert program.report.insns_processed == 117  # as Linux 6.18 counts it


def test_without_func_info_the_device_walks_every_call() -> None:
    """The same program without its functions' BTF: subprograms are static, inlined at each
    call, so more is processed and a call the prototype forbids is not refused."""
    obj, pair, maps = _loaded(FUNCS)
    bare = [replace(f, linkage=Linkage.STATIC, proto=None)
            for f in obj.programs["xdp_global_accept"].functions]
    spec = replace(obj.programs["xdp_global_accept"], functions=tuple(bare))
    assert function_btf(spec.functions) is None
    assert _by_device(pair, maps, spec) != 117
    void = obj.programs["xdp_global_void"]
    assert isinstance(_by_device(pair, maps, void), str)
    bare_void = replace(void, functions=tuple(replace(f, linkage=Linkage.STATIC, proto=None)
                                              for f in void.functions))
    assert isinstance(_by_device(pair, maps, bare_void), int)


# -- hostile BTF and records ------------------------------------------------------------------
def _request(btf: bytes, records: tuple[tuple[int, int], ...]) -> p.ProgLoadRequest:
    spec = load_object(RULES).programs["r_nested"]  # three functions, no maps
    return p.ProgLoadRequest(6, encode_insns(spec.instructions), "GPL", name="hostile",
                             btf=btf, func_info=tuple(p.FuncInfoRec(*r) for r in records))


@functools.cache
def _good() -> tuple[bytes, tuple[tuple[int, int], ...]]:
    funcs = function_btf(load_object(RULES).programs["r_nested"].functions)
    assert funcs is not None
    return funcs.btf, funcs.records


def _refusal(pair, request: p.ProgLoadRequest) -> str:
    with pytest.raises(ErrnoError) as info:
        pair.driver.command(request)
    assert info.value.errno == errno.EINVAL
    return str(info.value)


def _int_and_funcs(linkage: int = 1, proto_kind: BtfKind = BtfKind.FUNC_PROTO) -> bytes:
    types = [BtfType(1, BtfKind.INT, "int", size=4, int_encoding=1, int_bits=32),
             BtfType(2, proto_kind, type_id=1, size=4 if proto_kind == BtfKind.INT else 0)]
    for n in range(3):
        types.append(BtfType(3 + n, BtfKind.FUNC, f"f{n}", type_id=2,
                             linkage=linkage if n else 1))
    return encode_btf(types)


def test_hostile_function_btf_is_refused_naming_the_field() -> None:
    pair = build_device("dut", FULL)
    btf, records = _good()
    starts = [r[0] for r in records]
    assert len(records) == 3
    cases = [
        (_request(b"\x9f\xeb\x01\x00" + bytes(8), records), "btf: "),
        (_request(btf[:30], records), "btf: "),
        (_request(btf, records[:2]), "func_info_cnt: number of funcs in func_info (2) doesn't "
                                     "match number of subprogs (3)"),
        (_request(btf, ((0, records[0][1]), (starts[1] + 1, records[1][1]), records[2])),
         "func_info[1].insn_off: func_info BTF section doesn't match subprog layout"),
        (_request(btf, (records[0], (starts[1], 1), records[2])),
         "func_info[1].type_id: invalid type id 1 in func info"),
        (_request(btf, (records[0], records[1], (starts[2], 999))),
         "func_info[2].type_id: invalid type id 999 in func info"),
        (_request(_int_and_funcs(linkage=2), ((0, 3), (starts[1], 4), (starts[2], 5))),
         "func_info[1].type_id: FUNC [4] 'f1' has linkage 2"),
        (_request(_int_and_funcs(proto_kind=BtfKind.PTR), ((0, 3), (starts[1], 4),
                                                           (starts[2], 5))),
         "btf: FUNC [3] 'f0' refers to type [2], which is not a FUNC_PROTO"),
    ]
    for request, words in cases:
        assert words in _refusal(pair, request)
    assert not pair.device.objects.programs  # nothing was loaded
    assert isinstance(pair.driver.command(_request(btf, records)), p.ProgLoadResponse)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_function_btf_is_refused_or_read_never_a_fault(data) -> None:
    btf, records = _good()
    blob = bytearray(btf)
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    type_ids = [data.draw(st.integers(0, 40)) for _ in records]
    try:
        read_function_btf(bytes(blob), [(r[0], t) for r, t in zip(records, type_ids)],
                          [r[0] for r in records])
    except ErrnoError as err:
        assert err.errno == errno.EINVAL
        assert err.detail.split(":", 1)[0].startswith(("btf", "func_info"))


def test_the_btf_written_reads_back_to_the_same_functions() -> None:
    for path in (FUNCS, RULES, TAGS):
        for spec in load_object(path).programs.values():
            funcs = function_btf(spec.functions)
            assert funcs is not None
            back = read_function_btf(funcs.btf, funcs.records, [f.slot for f in spec.functions])
            assert back == spec.functions, spec.name


def test_an_unreadable_problem_still_refuses_every_call() -> None:
    proto_problem = FuncInfo(0, "f", Linkage.GLOBAL, None)
    assert function_btf([proto_problem]) is None  # no prototype: nothing is sent
    spec = load_object(FUNCS).programs["xdp_global_void"]
    odd = tuple(replace(f, proto=replace(f.proto, problem="something else"))
                if f.name == "mark" and f.proto is not None else f for f in spec.functions)
    funcs = function_btf(odd)
    assert funcs is not None
    back = read_function_btf(funcs.btf, funcs.records, [f.slot for f in odd])
    (mark,) = [f for f in back if f.name == "mark"]
    assert mark.proto is not None and "doesn't return scalar" in mark.proto.problem


# -- snapshots, restores, live migration ------------------------------------------------------
def _source():
    obj, pair, maps = _loaded(FUNCS)
    handle = pair.driver.prog_load(obj.programs["xdp_global_accept"], maps=maps)
    pair.driver.xdp_attach(handle)
    return obj, pair


def test_a_snapshot_keeps_the_functions_and_a_restore_sends_them() -> None:
    obj, source = _source()
    snapshot = decode(encode(checkpoint(source.device)))
    (state,) = snapshot.programs
    assert state.spec.functions == obj.programs["xdp_global_accept"].functions
    target = build_device("target", FULL, seed=2)
    restore(snapshot, target.driver)
    (program,) = target.device.objects.programs.values()
    assert program.functions == state.spec.functions
    assert program.report.insns_processed == 117  # global functions verified once again


def test_a_restore_keeps_argument_tags() -> None:
    """arg:nonnull travels as a decl tag in PROG_LOAD and as its own argument kind in the
    snapshot: the restored callee still reads its argument without a NULL check."""
    obj, pair, maps = _loaded(TAGS)
    spec = obj.programs["xdp_tags_accept"]
    pair.driver.prog_load(spec, maps=maps)
    snapshot = decode(encode(checkpoint(pair.device)))
    (state,) = snapshot.programs
    assert state.spec.functions == spec.functions
    assert any(a.kind == ArgKind.MEM_NONNULL for f in state.spec.functions
               for a in (f.proto.args if f.proto is not None else ()))
    target = build_device("target", FULL, seed=2)
    restore(snapshot, target.driver)
    (program,) = target.device.objects.programs.values()
    assert program.report.insns_processed == 37


def test_every_tag_problem_reads_back_with_its_reason() -> None:
    reasons = ["arg#1 has pointer tag, but is not a pointer type",
               "arg#0 has invalid combination of tags", "arg#2 has unsupported set of tags",
               "arg#0 should be `struct xdp_md *`",
               "arg#3 tag arg:trusted is not supported by the device"]
    functions = tuple(FuncInfo(slot, f"f{slot}", Linkage.GLOBAL, FuncProto(problem=reason))
                      for slot, reason in enumerate(reasons))
    funcs = function_btf(functions)
    assert funcs is not None
    back = read_function_btf(funcs.btf, funcs.records, range(len(reasons)))
    assert [f.proto.problem for f in back if f.proto is not None] == reasons


def test_a_live_migration_keeps_global_function_verification() -> None:
    obj, source = _source()
    dest = build_device("dest", FULL, seed=3)
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            MigrationDestination(dest).serve(b)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
    side = threading.Thread(target=serve, daemon=True)
    side.start()
    MigrationSource(source.device, downtime_target=0.05).run(a)
    side.join(30)
    assert not errors and not side.is_alive()
    program = dest.device.objects.programs[dest.device.attached]
    assert program.functions == obj.programs["xdp_global_accept"].functions
    assert program.report.insns_processed == 117


def test_the_records_are_in_the_request_the_driver_sends(monkeypatch) -> None:
    obj, pair, maps = _loaded(FUNCS)
    sent = []
    command = pair.driver.command
    monkeypatch.setattr(pair.driver, "command", lambda req, *a, **k: (sent.append(req),
                                                                      command(req, *a, **k))[1])
    pair.driver.prog_load(obj.programs["xdp_global_accept"], maps=maps)
    (request,) = sent
    assert request.btf is not None and request.btf[:2] == struct.pack("<H", 0xEB9F)
    assert [r.insn_off for r in request.func_info] == \
        [f.slot for f in obj.programs["xdp_global_accept"].functions]
