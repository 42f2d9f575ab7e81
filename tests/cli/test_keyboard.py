"""Keys in cbreak mode on a pseudo-terminal, and the terminal's settings back afterwards:
after a normal end, an exception and SIGTERM."""

from __future__ import annotations

import io
import os
import pty
import signal
import termios

import pytest

from cli.keyboard import cbreak_keys


@pytest.fixture
def terminal():
    leader, follower = pty.openpty()
    stream = os.fdopen(follower, "r")
    yield leader, stream
    stream.close()
    os.close(leader)


def lflags(stream) -> int:
    return termios.tcgetattr(stream.fileno())[3]


def test_keys_arrive_one_at_a_time_and_the_mode_is_restored(terminal):
    leader, stream = terminal
    before = termios.tcgetattr(stream.fileno())
    assert lflags(stream) & termios.ICANON and lflags(stream) & termios.ECHO
    with cbreak_keys(stream) as read:
        assert not lflags(stream) & (termios.ICANON | termios.ECHO)
        assert read(0.01) is None
        os.write(leader, b"q")
        assert read(1.0) == "q"
        os.write(leader, b"\x1b[Z")
        assert read(1.0) == "\x1b[Z"
    assert termios.tcgetattr(stream.fileno()) == before


def test_an_exception_and_sigterm_restore_the_terminal(terminal):
    _, stream = terminal
    before = termios.tcgetattr(stream.fileno())
    with pytest.raises(RuntimeError), cbreak_keys(stream):
        raise RuntimeError("the view failed")
    assert termios.tcgetattr(stream.fileno()) == before
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), cbreak_keys(stream):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0) if hasattr(signal, "sigtimedwait") else None
    assert termios.tcgetattr(stream.fileno()) == before
    assert signal.getsignal(signal.SIGTERM) is handler


def test_without_a_terminal_it_only_waits():
    with cbreak_keys(io.StringIO()) as read:
        assert read(0.01) is None
