"""What an export costs in memory on this machine: its peak resident memory, which the INT8 export records
in the manifest and prints, so a user sees what a bigger calibration set or input will take before running
out (calibration itself is flat in the number of samples: :mod:`.ranges`)."""

from __future__ import annotations

from pathlib import Path

from ..device.timing import peak_rss_mb


def restart_peak() -> None:
    """Start this process's peak resident memory afresh, so the next ``peak_mb()`` is the peak since now and not
    of earlier work in the same process (an API caller's, a test session's). Linux resets it through
    /proc/self/clear_refs; where that is refused, ``peak_mb()`` stays the process's peak, an upper bound."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb() -> int:
    """The peak resident memory in MB since ``restart_peak`` (or since the process began)."""
    return round(peak_rss_mb())
