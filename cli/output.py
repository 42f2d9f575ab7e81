"""Where a command writes: rich on the terminal, JSON for scripts, errors on stderr, and
progress bars that only show on a terminal (scripts read clean output). The consoles are made
on first use: ``device serve`` logs through ``logging`` and starts without rich."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class Output:
    """``console`` (stdout) and ``err`` (stderr): given, or rich consoles made when first
    written to; ``err`` is ``console`` when only that was given (tests record both)."""

    def __init__(self, console: Console | None = None, err: Console | None = None) -> None:
        self._console = console
        self._err = err if err is not None else console

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        return self._console

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True)
        return self._err

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=_jsonable) + "\n")
        sys.stdout.flush()

    def error(self, message: str, label: str = "error") -> None:
        """One line, never wrapped (scripts and pipes read it whole)."""
        self.err.print(f"[bold red]{label}:[/bold red] {message}", highlight=False,
                       soft_wrap=True)

    @contextmanager
    def transfer(self, description: str, total: int,
                 show: bool = True) -> Iterator[ProgressTask]:
        """A byte-count progress bar on stderr, shown only when stderr is a terminal and
        ``show`` holds (commands pass ``not args.json``: scripts read clean output)."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TimeRemainingColumn(), console=self.err, transient=True,
                            disable=not (show and self.err.is_terminal))
        with progress:
            yield ProgressTask(progress, progress.add_task(description, total=total))


@dataclass
class ProgressTask:
    progress: Progress
    task: TaskID

    def advance(self, amount: float) -> None:
        self.progress.advance(self.task, amount)

    def update(self, completed: float, total: float | None = None,
               description: str | None = None) -> None:
        kwargs: dict[str, Any] = {"completed": completed}
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self.progress.update(self.task, **kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
