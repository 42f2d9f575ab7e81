"""The installed packages carry their type information: a ``py.typed`` marker each, shipped as
package data."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["offload", "migrate", "cli"])
def test_each_package_ships_a_py_typed_marker(package: str) -> None:
    assert (ROOT / package / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"][package]
