"""Progress bars on stderr (items/s, ETA), so `--json` output on stdout stays one clean object."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

stderr = Console(stderr=True, soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callable; silent when TUNELAB_PROGRESS=0 or stderr is not a terminal."""
    enabled = progress_enabled()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("[cyan]{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, console=stderr, disable=not enabled, transient=True) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            if speed:
                bar.update(task, rate=f"{speed:,.0f} it/s")

        yield advance


def progress_enabled() -> bool:
    """Bars only where someone watches: a terminal, and not TUNELAB_PROGRESS=0."""
    return os.environ.get("TUNELAB_PROGRESS", "1") != "0" and stderr.is_terminal


def say(message: str) -> None:
    """Human-readable status on stderr."""
    stderr.print(message, highlight=False, markup=False)
