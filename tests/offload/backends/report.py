"""Lines the differential tests want shown after the run (agreement rates, counts).

Tests append here; ``conftest.pytest_terminal_summary`` prints them under their own heading,
so the rates appear in a normal ``pytest -q`` run without ``-s``. (Under pytest-xdist the
workers' lines stay in the workers; each test also records them with ``record_property``.)
"""

from __future__ import annotations

LINES: list[str] = []


def report(record_property, key: str, line: str) -> None:
    LINES.append(line)
    record_property(key, line)
    print(line)
