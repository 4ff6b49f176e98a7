"""Progress of a ``proximity rank`` run on stderr, never on stdout (which may carry the JSON).

On a terminal: Rich progress bars, one per backbone (and per control pass). Anywhere else (a
pipe, ``| tee``, a CI log): plain lines — one when a task starts, one every :data:`EVERY`
seconds while it runs, one when it is done — so that a long run is never a silent wait.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import TaskID

#: Seconds between two plain progress lines of one task.
EVERY = 15.0


def _label(task: str) -> str:
    return "decoding sample" if task == "sample" else task


class BarProgress:
    """Rich progress bars on a terminal."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), console=console, transient=False)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self):
        self._p.__enter__()
        return self

    def __exit__(self, *a):
        return self._p.__exit__(*a)

    def __call__(self, task: str, done: int, total: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._p.add_task(_label(task), total=total)
        self._p.update(self._tasks[task], completed=done, total=total)


class LineProgress:
    """Plain progress lines (``efficientnet_lite0.in1k: 64/100 images, 12 s``) without a terminal."""

    def __init__(self, console: Console, every: float = EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self._console, self._every, self._clock = console, every, clock
        self._tasks: dict[str, list[float]] = {}      # task -> [started, last line]

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def __call__(self, task: str, done: int, total: int) -> None:
        now = self._clock()
        state = self._tasks.get(task)
        if state is None:
            state = self._tasks[task] = [now, float("-inf")]
        finished = done >= total
        if not finished and now - state[1] < self._every:
            return
        if finished and state[1] == float("inf"):       # said already
            return
        state[1] = float("inf") if finished else now
        took = f", {now - state[0]:.0f} s" if now - state[0] >= 1 else ""
        self._console.print(f"{_label(task)}: {done}/{total} images{' done' if finished else ''}{took}",
                            markup=False, emoji=False, highlight=False, soft_wrap=True)


def progress_for(console: Console, quiet: bool):
    """The progress reporter of a run: bars on a terminal, lines elsewhere, none with --quiet."""
    if quiet:
        return None
    return BarProgress(console) if console.is_terminal else LineProgress(console)
