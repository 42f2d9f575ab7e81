from __future__ import annotations

from .report import LINES


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's own type
    if LINES:
        terminalreporter.section("backend differential summary")
        for line in LINES:
            terminalreporter.write_line(line)
