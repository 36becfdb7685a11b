"""The results store (results/store.py): a real SQLite file, written by many threads at once as a fleet does,
read back by key and by query."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from uninext_deploy.errors import UserError
from uninext_deploy.results import store


def _columns(device: str, p50: float, model: str = "uninext_t", precision: str = "int8") -> dict:
    return {"device": device, "machine": "aarch64", "model": model, "target": "ort", "precision": precision,
            "batch": 1, "runtime": "onnxruntime 1.23.2", "p50_ms": p50, "p90_ms": p50 * 1.1, "temperature_c": 51.0}


def test_sixteen_devices_write_at_once_and_each_timing_is_found_by_its_key(tmp_path):
    database = tmp_path / "store" / "results.sqlite"
    keys = [store.Key("b" * 64, f"{i:064x}", {"iters": 50, "warmup": 10, "threads": None}) for i in range(16)]
    start = threading.Barrier(len(keys))

    def write(i: int) -> None:
        start.wait(timeout=30)
        store.record(keys[i], _columns(f"board{i}", 10.0 + i), {"p50": 10.0 + i}, database)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [store.find(key, database).report for key in keys] == [{"p50": 10.0 + i} for i in range(16)]
    assert store.find(store.Key("b" * 64, keys[0].device_fingerprint, {"iters": 20}), database) is None
    with sqlite3.connect(database) as connection:  # a real SQLite file any tool reads
        assert connection.execute("SELECT COUNT(*) FROM timings").fetchone() == (16,)


def test_query_by_model_device_and_precision_newest_first(tmp_path):
    database = tmp_path / "results.sqlite"
    store.record(store.Key("a" * 64, "f1" * 32, {}), _columns("pi5", 30.0), {}, database)
    store.record(store.Key("c" * 64, "f1" * 32, {}), _columns("pi5", 12.0, precision="fp32"), {}, database)
    store.record(store.Key("a" * 64, "e2" * 32, {}), _columns("orin", 3.0, model="convmlp_s"), {}, database)
    assert [r["p50_ms"] for r in store.query(device="pi5", database=database)] in ([12.0, 30.0], [30.0, 12.0])
    assert [r["device"] for r in store.query(model="convmlp_s", database=database)] == ["orin"]
    assert [r["p50_ms"] for r in store.query(device="f1f1", precision="int8", database=database)] == [30.0]
    assert store.query(database=tmp_path / "none.sqlite") == []
    times = [r["measured_at"] for r in store.query(database=database)]
    assert times == sorted(times, reverse=True)


def test_a_store_that_cannot_be_written_is_one_line_naming_the_fix(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(UserError, match="cannot open the results store .*; set UNINEXT_RESULTS to a writable file"):
        store.record(store.Key("a" * 64, "f" * 64, {}), _columns("pi5", 1.0), {}, blocked / "results.sqlite")
