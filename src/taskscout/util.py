"""Small shared helpers: progress bars, thread budget."""

from __future__ import annotations

import contextlib
import os

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class _NullProgress:
    def add_task(self, *args, **kwargs):
        return 0

    def update(self, *args, **kwargs):
        pass


def make_progress(enabled: bool = True, *, extra: bool = True):
    """A rich progress bar on stderr (description, bar, steps, loss, dev score, elapsed, ETA);
    a no-op stand-in when disabled."""
    if not enabled:
        return contextlib.nullcontext(_NullProgress())
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if extra:
        columns += [
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("dev {task.fields[score]:.1f}"),
        ]
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=False)


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (default: available cores); returns it."""
    n = threads or available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
