"""The method table and its one validator: what a peer's map becomes, what it may not be, and
the documentation that lists every method with its fields."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path

import pytest

from service import api
from service.device_service import DeviceService
from service.errors import ErrorKind, InvalidRequest, Refused
from service.methods import METHODS, call, lookup, markdown
from service.params import U64, field_types, parse_params, to_wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "control-socket.md"


def refused(method: str, params: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_params(lookup(method).params, params, method)
    assert info.value.kind == ErrorKind.INVALID and info.value.errno == errno.EINVAL
    return info.value


def test_a_well_formed_map_becomes_the_typed_parameters():
    params = parse_params(api.LoadParams, [{"object": b"\x7fELF", "program": ["a", "b"],
                                            "map_sizes": {"m": 4}, "attach": True,
                                            "section": None}], "load")
    assert params == api.LoadParams(object=b"\x7fELF", program=["a", "b"], map_sizes={"m": 4},
                                    attach=True)
    assert parse_params(api.NoParams, [], "ping") == api.NoParams()
    assert parse_params(api.MigrateStartParams, [{"to": "x", "downtime_target": 1}],
                        "migrate.start").downtime_target == 1.0
    commit = parse_params(api.RestoreCommitParams, [{"transfer": 1, "source": {
        "device_id": "ab" * 16, "name": "A", "generation": 3}}], "restore.commit")
    assert commit.source == api.StampParams("ab" * 16, "A", 3)


@pytest.mark.parametrize("method, params, field, words", [
    ("load", {}, "object", "is missing"),
    ("load", {"object": "text"}, "object", "must be bin, not str"),
    ("load", {"object": b"", "attach": 1}, "attach", "must be bool, not int"),
    ("load", {"object": b"", "program": ["a", 7]}, "program[1]", "must be str, not int"),
    ("load", {"object": b"", "map_sizes": {"m": 1 << 32}}, "map_sizes.m", "0 to 4294967295"),
    ("load", {"object": b"", "map_sizes": {"m": True}}, "map_sizes.m", "must be int, not bool"),
    ("load", {"object": b"", "types": {1: "xdp"}}, "types", "keys"),
    ("load", {"object": b"", "objekt": b""}, "objekt", "has no parameter 'objekt'"),
    ("map.update", {"map": b"m", "key": b"", "value": b""}, "map", "must be int or str"),
    ("map.update", {"map": 1, "key": "k", "value": b""}, "key", "must be bin, not str"),
    ("map.update", {"map": 1, "key": b"", "value": b"", "flags": -1}, "flags", "0 to"),
    ("map.update", {"map": 1, "key": b"", "value": b"", "flags": U64 + 1}, "flags", "0 to"),
    ("checkpoint.read", {"transfer": 1, "offset": -5}, "offset", "0 to"),
    ("checkpoint.read", {"transfer": 1.5, "offset": 0}, "transfer", "must be int, not float"),
    ("inject", {"frames": [b""] * (api.MAX_INJECT + 1)}, "frames", "at most 10000"),
    ("inject", {"frames": b"not a list"}, "frames", "must be [bin], not bin"),
    ("events.read", {"max": 0}, "max", "1 to 10000"),
    ("migrate.start", {"to": "x", "downtime_target": float("nan")}, "downtime_target", "finite"),
    ("restore.commit", {"transfer": 1, "source": {"device_id": "ab", "name": "A"}},
     "source.generation", "is missing"),
    ("restore.commit", {"transfer": 1, "source": {"device_id": "ab", "name": "A",
                                                  "generation": 1, "x": 1}}, "source.x", "x"),
    ("ping", {"anything": 1}, "anything", "its parameters: none"),
])
def test_each_fault_is_refused_naming_its_field(method, params, field, words):
    err = refused(method, [params])
    assert err.field == field and words in str(err) and repr(method) in str(err)


@pytest.mark.parametrize("params", [[1], [{}, {}], "params", 7, None, [[{}]], [b"x"]])
def test_params_that_are_not_one_map_are_refused(params):
    assert "one map" in str(refused("status", params))


def test_parameter_names_must_be_strings():
    assert "must be strings" in str(refused("load", [{b"object": b""}]))


def test_unknown_methods_and_connection_methods_through_call():
    service = DeviceService("T", "full", seed=1)
    with pytest.raises(InvalidRequest) as info:
        call(service, "frobnicate")
    assert info.value.errno == errno.ENOSYS and "known: attach" in str(info.value)
    with pytest.raises(InvalidRequest) as info:
        call(service, "migrate.incoming")
    assert info.value.errno == errno.EPROTO
    assert call(service, "ping", {}) == {"name": "T", "profile": "full"}
    with pytest.raises(Refused) as missing:
        call(service, "map.items", {"map": 99})
    assert missing.value.errno == errno.ENOENT and missing.value.kind == ErrorKind.REFUSED


def test_results_go_back_as_maps_by_field_name():
    result = api.LoadResult(maps={"m": 1}, programs={"p": api.LoadedProgram(2, 3, 4, 5)},
                            attached=None, refused={"q": api.LoaderRefusal("s", "co-re", "r")})
    assert to_wire(result) == {
        "maps": {"m": 1}, "attached": None,
        "programs": {"p": {"id": 2, "insns_processed": 3, "states": 4, "peak_states": 5}},
        "refused": {"q": {"section": "s", "kind": "co-re", "reason": "r"}}}
    assert to_wire(api.MapItemsResult([(b"k", b"v")])) == {"items": [[b"k", b"v"]]}


def test_the_table_is_complete_and_every_int_has_a_range():
    handled = {m.handler.__name__ for m in METHODS.values() if m.handler is not None}
    assert {name for name, m in METHODS.items() if m.handler is None} == {"migrate.incoming"}
    assert all(callable(getattr(DeviceService, name)) for name in handled)
    for method in METHODS.values():
        for cls in (method.params, method.result):
            assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
        hints = field_types(method.params)
        for f in dataclasses.fields(method.params):
            if hints[f.name] in (int, int | None):
                assert "range" in f.metadata, f"{method.name}.{f.name} has no range"


def test_the_document_lists_every_method_with_its_fields():
    text = DOC.read_text()
    begin, end = "<!-- methods: begin (generated) -->\n", "<!-- methods: end -->"
    documented = text[text.index(begin) + len(begin):text.index(end)]
    assert documented == markdown(), ("docs/control-socket.md's method table is stale; "
                                       "replace it with the output of python -m service.methods")
    for name, method in METHODS.items():
        row = next(line for line in documented.splitlines() if line.startswith(f"| `{name}` |"))
        for f in dataclasses.fields(method.params) + dataclasses.fields(method.result):
            assert f"`{f.name}" in row, (name, f.name)
