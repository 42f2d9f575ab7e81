"""A writer killed while writing leaves no file behind: the data goes to an unnamed file, or,
where there is none, to a temporary name that the next write in the folder removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from migrate import atomic_file
from migrate.atomic_file import atomic_output, remove_stale_temporaries, write_atomic

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from migrate import atomic_file
if sys.argv[2] == "named":
    atomic_file._unnamed = lambda directory, mode: None
with atomic_file.atomic_output(sys.argv[1]) as out:
    out.write(b"new" * 100_000)
    out.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # killed here, in the middle of the save
"""


def _killed_writer(target: Path, how: str) -> None:
    """Run a writer until it is in the middle of writing ``target``, then kill -9 it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), how], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def test_a_killed_save_leaves_nothing_and_the_old_file(tmp_path):
    target = tmp_path / "a.snap"
    write_atomic(target, b"old")
    if atomic_file._unnamed(tmp_path, 0o600) is None:
        pytest.skip("this filesystem has no O_TMPFILE")
    _killed_writer(target, "unnamed")
    assert sorted(os.listdir(tmp_path)) == ["a.snap"]
    assert target.read_bytes() == b"old"


def test_without_unnamed_files_the_next_save_removes_what_a_killed_one_left(tmp_path):
    target = tmp_path / "a.snap"
    write_atomic(target, b"old")
    _killed_writer(target, "named")
    left = [n for n in os.listdir(tmp_path) if n != "a.snap"]
    assert len(left) == 1 and left[0].startswith(".a.snap.") and left[0].endswith(".tmp")
    # a temporary file of a writer still running is not touched
    alive = tmp_path / f".b.snap.{os.getppid()}-{'0' * 12}.tmp"
    alive.write_bytes(b"in progress")
    write_atomic(tmp_path / "b.snap", b"new")  # any later save in the folder
    assert sorted(os.listdir(tmp_path)) == sorted(["a.snap", "b.snap", alive.name])
    assert target.read_bytes() == b"old"
    assert remove_stale_temporaries(tmp_path) == []


def test_a_failed_write_removes_its_temporary_and_keeps_the_target(tmp_path, monkeypatch):
    target = tmp_path / "k.key"
    for unnamed in (True, False):
        if not unnamed:
            monkeypatch.setattr(atomic_file, "_unnamed", lambda directory, mode: None)
        write_atomic(target, b"old", 0o644)
        with pytest.raises(RuntimeError), atomic_output(target) as out:
            out.write(b"half")
            raise RuntimeError("the snapshot could not be read")
        assert sorted(os.listdir(tmp_path)) == ["k.key"] and target.read_bytes() == b"old"
        write_atomic(target, b"new", 0o644)
        assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o644
