"""Steps announced by the code that does them, shown by whatever reporter the caller installed.

Library code says what it is doing, however deep it sits, and takes no callback for it::

    with progress.step("simplifying the ONNX graph"):
        ...
    with progress.step("calibrating on 32 samples", total=32) as calibrating:
        ...  # calibrating.advance(len(batch)) as each batch is read
    progress.phase("writing the archive")  # the next part of the enclosing step

The reporter lives in a context variable (``with reporting(reporter):``), so a callback need not be threaded
through every signature from the CLI down to the quantizer. With none installed, the default for Python API
callers, a step costs a context-variable lookup and shows nothing. A context variable does not follow work
into another thread; code that advances a count from one (the emulated-ARM workers' readers) holds on to its
Step instead.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, TypeVar

T = TypeVar("T")


class Reporter(Protocol):
    """Shows steps: told when each starts, when its count moves, and when it ends (``ok``: without an error)."""

    def started(self, step: Step) -> None: ...

    def advanced(self, step: Step) -> None: ...

    def finished(self, step: Step, ok: bool) -> None: ...


@dataclass(eq=False)  # a step is itself, not its text: reporters key their rows by it
class Step:
    """One announced step: ``text``, its nesting ``depth`` (0: the outermost), and ``done`` of ``total`` for a
    counted one (``total`` None: it only says what it does)."""

    text: str
    total: int | None = None
    depth: int = 0
    done: int = 0
    since: float = field(default_factory=time.monotonic)
    parent: Step | None = field(default=None, repr=False)
    reporter: Reporter | None = field(default=None, repr=False)  # None: nobody is watching
    is_phase: bool = False
    _phase: Step | None = field(default=None, repr=False)  # the part of this step under way (phase())
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, by: int = 1) -> None:
        """``by`` more done (held at ``total``: a quantizer may read a sample twice)."""
        with self._lock:
            self.done = self.done + by if self.total is None else min(self.done + by, self.total)
        if self.reporter:
            self.reporter.advanced(self)

    def update(self, done: int) -> None:
        """``done`` so far, as counted elsewhere (summed over worker processes)."""
        with self._lock:
            self.done = done
        if self.reporter:
            self.reporter.advanced(self)

    def counts(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn``, advancing this step by one after each call (a runner called once a batch)."""
        def counted(*args, **kwargs):
            result = fn(*args, **kwargs)
            self.advance()
            return result
        return counted

    def _end_phase(self, ok: bool) -> None:
        if self._phase is not None:
            self._phase._end_phase(ok)
            if self.reporter:
                self.reporter.finished(self._phase, ok)
            self._phase = None


_reporter: ContextVar[Reporter | None] = ContextVar("uninext_deploy_progress_reporter", default=None)
_current: ContextVar[Step | None] = ContextVar("uninext_deploy_progress_step", default=None)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Show every step announced inside the block on ``reporter`` (None: leave the caller's, if any)."""
    if reporter is None:
        yield
        return
    root = Step("", depth=-1, reporter=reporter)  # holds phases announced outside any step
    tokens = _reporter.set(reporter), _current.set(root)
    ok = False
    try:
        yield
        ok = True
    finally:
        root._end_phase(ok)
        _current.reset(tokens[1])
        _reporter.reset(tokens[0])


@contextmanager
def step(text: str, total: int | None = None) -> Iterator[Step]:
    """A step lasting the block, nested in the step (or phase) under way; ``total``: it counts to that."""
    reporter, parent = _reporter.get(), _current.get()
    if reporter is None or parent is None:
        yield Step(text, total)
        return
    current = Step(text, total, parent.depth + 1, parent=parent, reporter=reporter)
    reporter.started(current)
    token = _current.set(current)
    ok = False
    try:
        yield current
        ok = True
    finally:
        current._end_phase(ok)
        _current.reset(token)
        reporter.finished(current, ok)


def phase(text: str, *, done: int = 0, total: int | None = None) -> Step:
    """The next part of the innermost step: it lasts until the next phase of that step or its end, and steps
    started meanwhile nest in it. For sequential code that would otherwise be re-indented into ``with``
    blocks; a function announcing phases continues the sequence of its caller's step (wrap it in step() to
    nest it instead). ``done`` of ``total``: where this part stands in a counted sequence."""
    reporter, current = _reporter.get(), _current.get()
    if reporter is None or current is None:
        return Step(text, total, done=done)
    owner = current.parent if current.is_phase else current
    owner._end_phase(True)
    part = Step(text, total, owner.depth + 1, done, parent=owner, reporter=reporter, is_phase=True)
    owner._phase = part
    reporter.started(part)
    _current.set(part)  # undone when the owner's with-block resets the variable
    return part
