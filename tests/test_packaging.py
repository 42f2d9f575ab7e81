"""What an install holds: each package's ``py.typed`` marker, the demo's object and the
profiles as package data, ``cli/`` as ``offload_migrate_cli`` (no top-level ``cli`` in
site-packages), and an installed command that runs its demo from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = {"offload": "offload", "migrate": "migrate", "cli": "offload_migrate_cli"}


@pytest.mark.parametrize("package", ["offload", "migrate", "cli"])
def test_each_package_ships_a_py_typed_marker(package: str) -> None:
    assert (ROOT / package / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"][INSTALLED[package]]


def test_the_demo_object_is_the_fixture() -> None:
    shipped = ROOT / "cli" / "demo_objects" / "xdp_firewall_v4.o"
    assert shipped.read_bytes() == (ROOT / "fixtures" / "xdp" / "xdp_firewall_v4.o").read_bytes()


def test_an_install_runs_the_demo_and_the_verbs_from_another_folder(tmp_path: Path) -> None:
    """The files a wheel installs (setuptools' build_py, the step that fills the wheel),
    imported from a folder that is not the checkout."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    built = subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
         "build_py", "--build-lib", str(tmp_path / "lib")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    lib = tmp_path / "lib"
    assert sorted(p.name for p in lib.iterdir()) == ["migrate", "offload",
                                                     "offload_migrate_cli", "service"]
    assert (lib / "offload_migrate_cli" / "demo_objects" / "xdp_firewall_v4.o").is_file()
    assert (lib / "offload" / "caps" / "profiles" / "smartnic.toml").is_file()
    assert not list(lib.rglob("__pycache__"))
    [info] = tmp_path.glob("*.egg-info")
    scripts = (info / "entry_points.txt").read_text()
    assert "offload-migrate = offload_migrate_cli.main:main" in scripts
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = ("import sys, offload, offload_migrate_cli\n"
              f"assert offload.__file__.startswith({str(lib)!r}), offload.__file__\n"
              f"assert offload_migrate_cli.__file__.startswith({str(lib)!r})\n"
              "from offload_migrate_cli.main import main\n"
              "sys.exit(main(['demo']) or main(['map', 'dump', '--help']))\n")
    ran = subprocess.run([sys.executable, "-c", script], cwd=elsewhere,
                         env=dict(env, PYTHONPATH=str(lib), COLUMNS="100"),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "same verdicts" in ran.stdout and "offload-migrate map dump name verdicts" in ran.stdout
