"""The results store: every timing of a bundle on a device, in one SQLite database (the standard library's
sqlite3: one file, safe for the fleet's threads and for two commands at once), keyed by what decides the
numbers: the bundle's content (``bundle_sha256``, over every file: devices.base.tree_digest), the device
(``device_fingerprint``: devices.base.fingerprint, its name and the probe's facts that decide speed) and how it
was timed (``settings``: runs, warm-up, threads). Timing the same bundle the same way on the same device again
reuses the row unless --fresh; `uninext-deploy results` queries it.

The database is ``$UNINEXT_RESULTS`` if set, else ``$XDG_DATA_HOME/uninext-deploy/results.sqlite`` (default
``~/.local/share``): kept data, not a cache a cleaner may empty."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError

SCHEMA = """CREATE TABLE IF NOT EXISTS timings (
    bundle_sha256 TEXT NOT NULL, device_fingerprint TEXT NOT NULL, settings TEXT NOT NULL,
    device TEXT NOT NULL, machine TEXT, model TEXT NOT NULL, target TEXT NOT NULL, precision TEXT NOT NULL,
    batch INTEGER, runtime TEXT, p50_ms REAL, p90_ms REAL, temperature_c REAL, measured_at TEXT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (bundle_sha256, device_fingerprint, settings))"""
COLUMNS = ("measured_at", "model", "target", "precision", "batch", "device", "machine", "runtime", "p50_ms",
           "p90_ms", "temperature_c", "bundle_sha256", "device_fingerprint", "settings")
BUSY_SECONDS = 30  # a writer waits this long for another (16 fleet threads each write one row)


def path() -> Path:
    if os.environ.get("UNINEXT_RESULTS"):
        return Path(os.environ["UNINEXT_RESULTS"])
    root = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(root, "uninext-deploy", "results.sqlite")


@dataclass(frozen=True)
class Key:
    """What a timing is the timing of: this bundle, on this device, timed this way (``settings``: a dict)."""

    bundle_sha256: str
    device_fingerprint: str
    settings: dict

    @property
    def settings_text(self) -> str:
        return json.dumps(self.settings, sort_keys=True)


@dataclass(frozen=True)
class Found:
    report: dict  # what was stored: the timing's as_dict()
    measured_at: str


def _connect(database: Path) -> sqlite3.Connection:
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(database, timeout=BUSY_SECONDS)
        connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for the fleet's writers
        connection.execute(SCHEMA)
    except (OSError, sqlite3.Error) as exc:
        raise UserError(f"cannot open the results store {database}: {exc}; set UNINEXT_RESULTS to a writable "
                        "file") from None
    return connection


def find(key: Key, database: Path | None = None) -> Found | None:
    """The stored timing of ``key``, else None."""
    with closing(_connect(database or path())) as connection:
        row = connection.execute(
            "SELECT report, measured_at FROM timings WHERE bundle_sha256 = ? AND device_fingerprint = ? "
            "AND settings = ?", (key.bundle_sha256, key.device_fingerprint, key.settings_text)).fetchone()
    return Found(json.loads(row[0]), row[1]) if row else None


def record(key: Key, columns: dict, report: dict, database: Path | None = None) -> str:
    """Store (or replace) the timing of ``key``: ``columns`` (device, machine, model, target, precision, batch,
    runtime, p50_ms, p90_ms, temperature_c) to query by, and the whole ``report``; returns its measured_at."""
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    values = {"bundle_sha256": key.bundle_sha256, "device_fingerprint": key.device_fingerprint,
              "settings": key.settings_text, **columns, "measured_at": measured_at, "report": json.dumps(report)}
    with closing(_connect(database or path())) as connection, connection:
        connection.execute(f"INSERT OR REPLACE INTO timings ({', '.join(values)}) VALUES "
                           f"({', '.join('?' * len(values))})", list(values.values()))
    return measured_at


def query(model: str | None = None, device: str | None = None, precision: str | None = None,
          target: str | None = None, database: Path | None = None) -> list[dict]:
    """The stored timings, newest first, of ``model``, ``device`` (its name, or the start of its fingerprint),
    ``precision`` and ``target`` where given: one dict of COLUMNS each."""
    database = database or path()
    if not database.is_file():
        return []
    where, values = [], []
    for column, value in (("model", model), ("precision", precision), ("target", target)):
        if value is not None:
            where.append(f"{column} = ?")
            values.append(value)
    if device is not None:
        where.append("(device = ? OR device_fingerprint LIKE ?)")
        values += [device, f"{device}%"]
    with closing(_connect(database)) as connection:
        rows = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM timings"
                                  + (f" WHERE {' AND '.join(where)}" if where else "")
                                  + " ORDER BY measured_at DESC", values).fetchall()
    return [dict(zip(COLUMNS, row)) for row in rows]
