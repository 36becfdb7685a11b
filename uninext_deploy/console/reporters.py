"""How steps (progress.py) are shown: live rows on a terminal, one line per step for logs and pipes."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                           TimeElapsedColumn)
from rich.text import Text

from .progress import Reporter, Step


class LineReporter:
    """One line per step on ``stream`` (default: stderr at the time of writing), ``[   12.3 s] text``: the
    seconds since the reporter was made, then the text indented by depth and, for a counted step, its count.
    A counted step repeats its line as it advances, at most every ``every`` seconds, so a log shows a long
    step moving without a line per batch. The outermost step's end is ``[  ... s] done``."""

    def __init__(self, stream: TextIO | None = None, every: float = 10.0):
        self.stream, self.every = stream, every
        self.start = time.monotonic()
        self._shown: dict[Step, float] = {}  # counted step -> when its line was last written
        self._lock = threading.Lock()  # counts may move on reader threads

    def started(self, step: Step) -> None:
        with self._lock:
            self._write(step)

    def advanced(self, step: Step) -> None:
        with self._lock:
            if time.monotonic() - self._shown.get(step, 0.0) >= self.every:
                self._write(step)

    def finished(self, step: Step, ok: bool) -> None:
        with self._lock:
            self._shown.pop(step, None)
            if ok and step.depth == 0:
                self._line("done")

    def _write(self, step: Step) -> None:
        count = f" ({step.done}/{step.total})" if step.total is not None else ""
        self._line("  " * step.depth + step.text + count)
        if step.total is not None:
            self._shown[step] = time.monotonic()

    def _line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"[{time.monotonic() - self.start:7.1f} s] {text}\n")
        stream.flush()


class _IfCounted(ProgressColumn):
    """``column`` for a counted step; nothing for one that only says what it does (rich would pulse a bar)."""

    def __init__(self, column: ProgressColumn):
        super().__init__()
        self.column = column

    def render(self, task):
        return self.column.render(task) if task.total is not None else Text("")


class LiveReporter:
    """A row per step under way on rich ``bars``: spinner, text indented by depth, a bar and done/total for a
    counted step, its elapsed time; a step's row goes when it ends."""

    def __init__(self, bars: Progress):
        self.bars = bars
        self._tasks = {}

    def started(self, step: Step) -> None:
        self._tasks[step] = self.bars.add_task("  " * step.depth + step.text, total=step.total, completed=step.done)

    def advanced(self, step: Step) -> None:
        self.bars.update(self._tasks[step], completed=step.done)

    def finished(self, step: Step, ok: bool) -> None:
        self.bars.remove_task(self._tasks.pop(step))


@contextmanager
def shown_on(console: Console, terminal: bool) -> Iterator[Reporter]:
    """The reporter for ``console``: live rows when it is a ``terminal`` (cleared at the end), else lines."""
    if not terminal:
        yield LineReporter()
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), _IfCounted(BarColumn(bar_width=30)),
               _IfCounted(MofNCompleteColumn()), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        yield LiveReporter(bars)
