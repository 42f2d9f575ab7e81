"""Running the real command in subprocesses; device daemons come from tests/service."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.service.conftest import (  # noqa: F401 - fixtures and helpers the tests share
    FIXTURES,
    ROOT,
    DaemonProcess,
    answers,
    daemons,
    held_commit,
    migration_until,
    state_home,
)


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``offload-migrate ARGS`` as a person runs it (no terminal: plain output)."""
    env = dict(os.environ, COLUMNS="120", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """The command in this process (for commands without a daemon): exit code, what stdout
    and stderr would show."""
    import io

    from rich.console import Console

    from cli.main import main

    out = Console(record=True, width=120, file=io.StringIO())
    err = Console(record=True, width=120, file=io.StringIO())
    code = main(list(args), out, err)
    captured = capsys.readouterr()
    return code, captured.out + out.export_text(), captured.err + err.export_text()


def cli_here(*args: str) -> subprocess.CompletedProcess[str]:
    """:func:`cli` run in this process: the same exit code, stdout and stderr, without a
    Python start-up and the command's imports each time (about a second under load). A
    daemon (``device serve``) still gets its own process."""
    import contextlib
    import io

    from rich.console import Console

    from cli.main import main

    if args[:2] == ("device", "serve"):
        return cli(*args)
    out = Console(width=120, file=io.StringIO(), color_system=None, force_terminal=False)
    err = Console(width=120, file=io.StringIO(), color_system=None, force_terminal=False)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(args), out, err)
    return subprocess.CompletedProcess(["offload-migrate", *args], code,
                                       stdout.getvalue() + out.file.getvalue(),
                                       stderr.getvalue() + err.file.getvalue())
