"""The offload-migrate command: conformance, asm, disasm and run."""

from __future__ import annotations

import io
import json

from rich.console import Console

from cli.main import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main


def console():
    return Console(record=True, width=120, file=io.StringIO())


def test_help_and_usage(capsys):
    assert main(["--help"]) == EXIT_OK
    assert "examples:" in capsys.readouterr().out
    assert main(["frobnicate"]) == EXIT_USAGE


def test_asm_disasm_run(tmp_path, capsys):
    source = tmp_path / "prog.s"
    source.write_text("mov %r0, 1\nldxb %r2, [%r1+1]\nadd %r0, %r2\nexit\n")
    out = tmp_path / "prog.bin"
    assert main(["asm", str(source), "-o", str(out)], console()) == EXIT_OK
    assert out.read_bytes()[:1] == b"\xb7" and len(out.read_bytes()) == 32
    assert main(["disasm", str(out), "--json"], console()) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    assert [entry["text"] for entry in listing] == ["mov %r0, 1", "ldxb %r2, [%r1+1]",
                                                    "add %r0, %r2", "exit"]
    assert main(["run", str(out), "--mem", "00 29", "--json"], console()) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["r0"] == 42


def test_refusals_exit_1_with_the_reason(tmp_path):
    source = tmp_path / "bad.s"
    source.write_text("ldxw %r0, [%r1]\nexit\n")
    term = console()
    assert main(["run", str(source)], term) == EXIT_REFUSED
    assert "no memory is mapped" in term.export_text()
    assert main(["run", str(tmp_path / "missing.s")], console()) == EXIT_USAGE


def test_conformance_command(capsys):
    term = console()
    assert main(["conformance"], term) == EXIT_OK
    text = term.export_text()
    assert "bpf_conformance │   313 │  313 │    0" in text
    assert main(["conformance", "--json"], console()) == EXIT_OK
    verdicts = json.loads(capsys.readouterr().out)
    assert {v["status"] for v in verdicts} == {"pass", "exception"}


def test_binary_files_are_refused_not_crashed_on(tmp_path):
    junk = tmp_path / "junk.s"
    junk.write_bytes(bytes(range(128, 256)))
    term = console()
    # a file that is no program is the user's to fix: usage (docs/control-socket.md)
    assert main(["disasm", str(junk)], term) == EXIT_USAGE
    assert "is not text" in term.export_text()
    assert main(["run", str(junk)], console()) == EXIT_USAGE
