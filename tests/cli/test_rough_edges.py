"""The rough edges a new user hit, each pinned: bare programs as asm writes them, the exit code
of an unreadable file on every command, a refused plan shown once, map loads by name."""

from __future__ import annotations

import pytest

from .conftest import run_main


@pytest.fixture
def programs(tmp_path, capsys):
    (tmp_path / "x.s").write_text("mov %r0, 2\nexit\n")
    code, _, err = run_main(capsys, "asm", str(tmp_path / "x.s"), "-o", str(tmp_path / "x.bin"))
    assert code == 0, err
    return tmp_path


@pytest.mark.parametrize("name", ["x.bin", "x.s"])
def test_verify_raw_takes_what_asm_wrote_and_assembler_text(programs, capsys, name):
    code, out, err = run_main(capsys, "verify", "--raw", str(programs / name), "--json")
    assert code == 0, err
    assert '"accepted"' in out or "accept" in out


def test_verify_raw_refuses_bytes_that_are_no_program_as_usage(programs, capsys):
    (programs / "noise.dat").write_bytes(bytes(range(200, 256)))
    code, _, err = run_main(capsys, "verify", "--raw", str(programs / "noise.dat"))
    assert code == 2 and "is not text" in err


@pytest.mark.parametrize("args", [
    ("verify", "{missing}.o"), ("verify", "--raw", "{missing}.bin"), ("disasm", "{missing}.s"),
    ("run", "{missing}.s"), ("inspect", "{missing}.snap"),
    ("diff", "{missing}.snap", "{missing}2.snap"),
    ("restore", "{missing}.snap", "--device", "{missing}.sock"),
    ("load", "{missing}.o", "--device", "{missing}.sock"),
    ("demo", "--object", "{missing}.o"),
])
def test_a_missing_file_exits_2_on_every_command(capsys, tmp_path, args):
    missing = str(tmp_path / "nope")
    code, _, err = run_main(capsys, *(a.format(missing=missing) for a in args))
    assert code == 2, err
    assert "No such file" in err and "Traceback" not in err


def test_a_refused_plan_is_shown_once_with_a_one_line_error(capsys):
    code, out, err = run_main(capsys, "demo", "--target", "legacy-nic")
    assert code == 1
    assert "map verdicts" in out and "incompatible" in out  # the plan's table
    assert err.count("PERCPU_ARRAY") == 0 and len(err.strip().splitlines()) == 1
    assert "re-verified on restore" not in out + err


def test_the_reasons_of_a_refusal_are_not_repeated_in_its_message():
    from migrate.checkpoint import checkpoint
    from migrate.restore import IncompatibleTarget, restore
    from offload.caps import load_profile
    from offload.device import build_device
    from tests.migrate.live.conftest import device_for

    source = device_for("firewall")
    target = build_device("B", load_profile("legacy-nic"))
    with pytest.raises(IncompatibleTarget) as info:
        restore(checkpoint(source.device), target.driver)
    message = str(info.value)
    assert "re-verified" not in message and ".;" not in message
    assert message.count("it shares state with map 'verdicts'") == 3  # once per object


def test_inspect_names_the_map_of_each_map_load(capsys, tmp_path):
    from migrate import store
    from migrate.checkpoint import checkpoint
    from migrate.seal import Seal
    from tests.migrate.live.conftest import device_for

    store.save(tmp_path / "a.snap", checkpoint(device_for("firewall").device), Seal())
    code, out, err = run_main(capsys, "inspect", str(tmp_path / "a.snap"))
    assert code == 0, err
    assert "map_fd(0)" not in out and "lddw %r1, map_fd(blocked_v4)" in out
