"""Many devices at once: one connection and one thread each, a bounded number of SSH handshakes at once (sshd's
MaxStartups starts dropping unauthenticated connections past 10 by default), and every device ending with its
result or its one-line error, so one unreachable or failing board never stops the others."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable

from ..console import progress
from .base import Destination, Device

HANDSHAKES = 8  # at once: under sshd's MaxStartups 10 even with another client beside us
THREADS = 32  # devices in flight; the rest wait their turn


@dataclass
class Outcome:
    """One device's end: its ``result``, or ``error`` (one line); ``reached``: it was connected to."""

    device: str
    result: Any = None
    error: str | None = None
    reached: bool = False

    @property
    def passed(self) -> bool:
        """It gave a result, and the result (a check's report) did not fail."""
        return self.result is not None and getattr(self.result, "passed", True)


@dataclass
class FleetRun:
    """One command on many devices: ``what`` it ran ("verify", "profile", ...) on ``subject`` (a bundle, a
    model), and each device's Outcome, whose result has ``as_dict``."""

    what: str
    subject: str
    outcomes: list[Outcome]

    @property
    def exit_code(self) -> int:
        """0 every device passed, 2 none could be reached, else 1."""
        if all(o.passed for o in self.outcomes):
            return 0
        return 2 if not any(o.reached for o in self.outcomes) else 1

    def as_dict(self) -> dict:
        return {"what": self.what, "subject": self.subject, "passed": self.exit_code == 0, "devices": [
            {"device": o.device, "reached": o.reached, "error": o.error,
             self.what: o.result.as_dict() if o.result is not None else None} for o in self.outcomes]}


def run(what: str, subject: str, devices: str, work: Callable[[Device], Any], *, timeout: float,
        accept_new_host_key: bool = False) -> FleetRun:
    """``work(device)`` on every device ``devices`` names (an inventory or DESTs: inventory.py), in parallel."""
    from .inventory import destinations

    return FleetRun(what, subject, across(destinations(devices), work, timeout=timeout,
                                          accept_new_host_key=accept_new_host_key, what=what))


def across(destinations: list[Destination], work: Callable[[Device], Any], *, timeout: float,
           accept_new_host_key: bool = False, what: str = "checking") -> list[Outcome]:
    """``work(device)`` on every destination in parallel: their outcomes, in the order given, each device's end
    announced as it comes."""
    from .ssh import SshDevice

    handshakes = threading.BoundedSemaphore(HANDSHAKES)

    def one(destination: Destination) -> Outcome:
        outcome = Outcome(destination.text)
        try:
            with SshDevice(destination, timeout=timeout, accept_new_host_key=accept_new_host_key,
                           handshakes=handshakes) as place:
                outcome.reached = True
                outcome.result = work(place)
        except Exception as exc:  # noqa: BLE001 - whatever ends one device is its outcome, not the fleet's
            outcome.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return outcome

    outcomes: dict[str, Outcome] = {}
    with progress.step(f"{what} on {len(destinations)} devices", total=len(destinations)) as counting, \
            ThreadPoolExecutor(max_workers=min(THREADS, len(destinations))) as pool:
        for done in as_completed([pool.submit(one, d) for d in destinations]):
            outcome = done.result()
            outcomes[outcome.device] = outcome
            counting.update(len(outcomes))
            progress.phase(f"{outcome.device}: {'done' if outcome.error is None else outcome.error}")
    return [outcomes[d.text] for d in destinations]
