"""Start-up: the parser lists every command from cli.main's table and imports only the
chosen command's module, so ``--help`` costs argparse and rich, not the device stack."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

from cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("offload", "migrate", "service", "cryptography", "msgpack", "cli.cmd_", "cli.demo")


def commands(parser: argparse.ArgumentParser) -> list[tuple[str, str | None]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(a.dest, a.help) for a in sub._choices_actions]


def test_the_table_is_what_the_modules_register():
    for module, listed in COMMANDS:
        parser = argparse.ArgumentParser()
        importlib.import_module(module, "cli").register(parser.add_subparsers())
        assert commands(parser) == list(listed), module
    assert commands(build_parser(every=True)) == commands(build_parser([]))


def test_every_command_module_is_in_the_table():
    listed = {module for module, _ in COMMANDS}
    for path in (ROOT / "cli").glob("*.py"):
        if "\ndef register(" in path.read_text():
            assert f".{path.stem}" in listed, f"cli/main.py's COMMANDS lacks {path.name}"


def test_only_the_chosen_command_is_registered_in_full():
    parser = build_parser(["save", "--help"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "--sign" in sub.choices["save"].format_help()
    assert "--profile" not in sub.choices["verify"].format_help()
    args = parser.parse_args(["keygen", "--type", "aes", "-o", "k"])  # same module: full
    assert args.type == "aes" and callable(args.handler)


def loaded_after(*argv: str) -> list[str]:
    code = ("import sys, contextlib, io\n"
            "from cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main({list(argv)!r})\n"
            "print('\\n'.join(sorted(sys.modules)))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


def test_help_imports_no_command_and_no_device_stack():
    modules = loaded_after("--help")
    assert [m for m in modules if m.startswith(HEAVY)] == []
    keygen = loaded_after("keygen", "--help")
    assert "cli.cmd_snapshot" in keygen and "cli.cmd_device" not in keygen


def test_the_plugin_imports_only_what_it_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import sys, io; sys.stdin = io.StringIO('b7 00 00 00 2a 00 00 00 95 00 00 00 00 "
            "00 00 00'); from cli.bpf_plugin import main; main([]); "
            "print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    r0, modules = result.stdout.split("\n", 1)
    assert r0 == "2a"
    loaded = modules.split()
    for unused in ("offload.isa.asm", "offload.isa.disasm", "offload.loader", "rich"):
        assert unused not in loaded


def test_snapshot_commands_load_cryptography_only_for_keys():
    """A plain seal is a SHA-256 digest: save and restore without keys need no cryptography;
    signing, verifying and encrypting import it when used."""
    modules = loaded_after("restore", "--help")
    assert "cli.cmd_snapshot" in modules and "migrate.seal" in modules
    assert [m for m in modules if m.startswith("cryptography")] == []


def test_a_daemon_starts_without_what_it_needs_only_later():
    """``device serve`` until it listens: the device, the control socket and the method table,
    but not rich (a daemon logs), ELF reading (until an object is loaded) nor the snapshot,
    restore, proof and live-migration machinery (until a method needs it)."""
    code = ("import sys\n"
            "import cli.main, cli.cmd_device, service.daemon, service.methods, service.ports\n"
            "from service.device_service import DeviceService\n"
            "DeviceService('x', 'full')\n"
            "print('\\n'.join(sorted(sys.modules)))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    loaded = result.stdout.split()
    later = ("rich", "elftools", "migrate.live", "migrate.restore", "migrate.proof",
             "migrate.checkpoint", "migrate.codec", "offload.backends.kernel")
    packages = tuple(f"{name}." for name in later)
    assert [m for m in loaded if m in later or m.startswith(packages)] == []
    assert "offload.device.device" in loaded and "service.api" in loaded
