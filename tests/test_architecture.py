"""The layers of docs/architecture.md, checked on the import graph.

grimp sees every import: at module level, inside functions and under TYPE_CHECKING. The
offload layers are read from the import-linter contract in pyproject.toml, so the test and
``lint-imports`` check one list.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Top-level packages, highest first; ``service`` sits between the command and migration.
TOP = [name for name in ("cli", "service", "migrate", "offload")
       if importlib.util.find_spec(name) is not None]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*TOP, exclude_type_checking_imports=False, cache_dir=None)


def offload_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c.get("containers") == ["offload"])
    return [[tail.strip() for tail in layer.split("|")] for layer in contract["layers"]]


def cycles(edges: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges.get(target, ()))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def unit_edges(graph: grimp.ImportGraph, container: str) -> dict[str, set[str]]:
    """Imports between the children of ``container`` (subpackages and modules)."""
    depth = container.count(".") + 2
    edges: dict[str, set[str]] = {}
    for module in graph.find_descendants(container):
        importer = ".".join(module.split(".")[:depth])
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(container + "."):
                target = ".".join(imported.split(".")[:depth])
                if target != importer:
                    edges.setdefault(importer, set()).add(target)
    return edges


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []
    toy = grimp.ImportGraph()
    for module in ("toy", "toy.a", "toy.a.x", "toy.b"):
        toy.add_module(module)
    toy.add_import(importer="toy.a.x", imported="toy.b")
    toy.add_import(importer="toy.b", imported="toy.a")
    assert cycles(unit_edges(toy, "toy")) == [{"toy.a", "toy.b"}]


def test_no_cycles_between_offload_subpackages(graph: grimp.ImportGraph) -> None:
    edges = unit_edges(graph, "offload")
    assert len(edges) > 10
    assert cycles(edges) == []


def test_no_cycles_between_modules(graph: grimp.ImportGraph) -> None:
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert len(edges) > 200
    assert cycles(edges) == []


def test_top_level_packages_import_only_downwards(graph: grimp.ImportGraph) -> None:
    assert TOP[0] == "cli" and TOP[-2:] == ["migrate", "offload"]
    assert graph.find_illegal_dependencies_for_layers(layers=TOP) == set()


def test_offload_layers_import_only_downwards(graph: grimp.ImportGraph) -> None:
    layers = offload_layers()
    placed = {tail for layer in layers for tail in layer}
    children = {module.split(".")[1] for module in graph.find_children("offload")}
    assert children == placed, "every offload subpackage has a place in the layers"
    illegal = graph.find_illegal_dependencies_for_layers(
        layers=[grimp.Layer(*layer, independent=True) for layer in layers],
        containers={"offload"})
    assert illegal == set()


def test_caps_is_data(graph: grimp.ImportGraph) -> None:
    allowed = ("offload.caps", "offload.uapi", "offload.errors", "offload.helpers")
    imported = {target for module in graph.find_descendants("offload.caps")
                for target in graph.find_modules_directly_imported_by(module)}
    assert imported and all(t.startswith(allowed) for t in imported), sorted(imported)
