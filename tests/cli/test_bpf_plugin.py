"""offload-bpf-plugin speaks the bpf_conformance plugin protocol."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import pytest

from cli import bpf_plugin
from offload.conformance.suite import all_cases, outcome, parse_case
from offload.isa import encode

PLUGIN = shutil.which("offload-bpf-plugin") or str(
    __import__("pathlib").Path(sys.executable).with_name("offload-bpf-plugin"))


def spaced_hex(data: bytes) -> str:
    """The runner's encoding: two hex digits and two spaces per byte."""
    return "".join(f"{byte:02x}  " for byte in data)


def call(argv, stdin, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = bpf_plugin.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_process_protocol_result_and_memory():
    program = "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"
    done = subprocess.run([PLUGIN], input=program, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "2a", "")
    load = "79 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00"  # ldxdw r0, [r1]
    done = subprocess.run([PLUGIN, spaced_hex(bytes(range(1, 9)))], input=load,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "807060504030201")


def test_process_protocol_error():
    bad = "61 10 08 00 00 00 00 00 95 00 00 00 00 00 00 00"  # ldxw r0, [r1+8] past the end
    done = subprocess.run([PLUGIN, "00 01 02 03"], input=bad, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "invalid read of 4 byte(s)" in done.stderr and "at insn 0" in done.stderr


def test_usage_and_bad_hex(monkeypatch, capsys):
    assert call(["--nope"], "", monkeypatch, capsys)[0] == 2
    code, out, err = call([], "zz", monkeypatch, capsys)
    assert (code, out) == (1, "") and "not hex" in err


@pytest.mark.parametrize("path", all_cases()[::7], ids=lambda p: p.name)
def test_plugin_agrees_with_the_engine_on_the_suites(path, monkeypatch, capsys):
    """Through the protocol, each sampled case gives exactly what the engine gives."""
    case = parse_case(path)
    if case.result is None and case.error is None:
        pytest.skip("assembler-only case")
    kind, value = outcome(case)
    try:
        from offload.conformance.suite import case_program
        program_hex = spaced_hex(encode(case_program(case)))
    except Exception:  # noqa: BLE001 - the text itself is the refusal
        assert kind == "error"
        return
    argv = [spaced_hex(case.memory)] if case.memory else []
    code, out, err = call(argv, program_hex, monkeypatch, capsys)
    if kind == "error":
        assert code == 1 and err.strip()
    else:
        assert code == 0 and int(out, 16) == value


ELF = __import__("pathlib").Path(__file__).resolve().parents[2] / "fixtures" / "plugin" / \
    "sum_memory.o"


def test_elf_objects_as_the_runner_writes_them():
    """``--elf``: function ``main`` in ``.text``, as bpf_conformance's ELF writer places it."""
    program = spaced_hex(ELF.read_bytes())
    done = subprocess.run([PLUGIN, "--elf"], input=program, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "2a")
    done = subprocess.run([PLUGIN, spaced_hex(b"\x01\x02\x03"), "--elf"], input=program,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "30")


def test_elf_refusals(monkeypatch, capsys):
    code, out, err = call(["--elf"], spaced_hex(b"\x7fELF" + bytes(60)), monkeypatch, capsys)
    assert code == 1 and out == "" and "cannot load the ELF object" in err
    fixtures = ELF.parents[1] / "xdp" / "xdp_firewall.o"
    code, out, err = call(["--elf"], spaced_hex(fixtures.read_bytes()), monkeypatch, capsys)
    assert code == 1 and "uses maps" in err
