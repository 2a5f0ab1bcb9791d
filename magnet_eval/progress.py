"""Rich progress bars: one look for every loop over files or steps."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, Optional, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


def _disabled() -> bool:
    return os.environ.get("MAGNET_EVAL_NO_PROGRESS") == "1"


def make_progress(*extra_columns) -> Progress:
    """A Progress with the standard columns (spinner, description, bar, n/N, elapsed, remaining)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        transient=False,
        disable=_disabled(),
    )


def track(iterable: Iterable[T], description: str, total: Optional[int] = None) -> Iterator[T]:
    """Iterate with a progress bar; `total` defaults to len(iterable) when it has one."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in iterable:
            yield item
            progress.advance(task)


def info(message: str) -> None:
    """A status line on stderr (keeps stdout clean for machine-readable output)."""
    console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}")


def fail(message: str) -> None:
    from rich.markup import escape

    # escaped (file names like "[id]-[0-10].wav" are not markup) and not wrapped (paths stay copyable)
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    sys.stderr.flush()
