"""The prediction log's columnar buffer: whatever the chunking (JSON rows gathered in lists,
sealed into Arrow tables every ``chunk_rows`` rows, Arrow requests as their own chunks), the
file holds exactly the served rows in request order, checked against a reference built row by
row in plain Python; the buffer keeps no object per request (the garbage collector's gen-2
pauses were the service's p99); rows that cannot be converted or do not fit are dropped,
counted, and the log carries on."""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from model.serving.features import Batch
from model.serving.log import (
    REQUEST_TIME,
    ROLE,
    SCORE,
    SERVED_VERSION,
    SHADOW2_SCORE,
    SHADOW2_VERSION,
    SHADOW_SCORE,
    SHADOW_VERSION,
    PredictionLog,
    read_log,
)
from model.serving.models import Scored

T0 = 1_772_366_400.0  # 2026-03-01 12:00 UTC
NUMERIC = ["x", "y"]
CATEGORICAL = ["c"]


def _json(
    first: int, n: int, *, y_missing: bool = False, shadow: bool = False
) -> tuple[Scored, list[dict[str, Any]]]:
    """A JSON request of ``n`` rows as the encoder makes it (numeric: float64 views, NaN for a
    null; categorical: texts, None for a null), and the rows the log must hold."""
    ids = [f"r{first + i}" for i in range(n)]
    x = np.array([float(first + i) if (first + i) % 5 else np.nan for i in range(n)])
    y = None if y_missing else np.array([0.5 * (first + i) for i in range(n)])
    c = [None if (first + i) % 3 == 0 else f"k{(first + i) % 4}" for i in range(n)]
    scores = np.array([((first + i) % 10) / 10 for i in range(n)])
    shadow_scores = 1 - scores if shadow else None
    features: dict[str, Any] = {"x": x, "c": c}
    if y is not None:
        features["y"] = y
    batch = Batch(np.zeros((n, 2), np.float32), np.zeros((n, 1), np.int64), ids, features)
    versions = ["v0001" if i % 2 else "v0002" for i in range(n)]
    roles = ["production" if i % 2 else "challenger" for i in range(n)]
    scored = Scored(
        batch,
        scores,
        (scores >= 0.5).astype(np.int8),
        versions,
        roles,
        "v0003" if shadow else None,
        shadow_scores,
        "v0004" if shadow else None,  # a second shadow (a shadow challenger during a watch)
        None if shadow_scores is None else shadow_scores / 2,
    )
    expected = [
        {
            "id": ids[i],
            "x": None if math.isnan(x[i]) else float(x[i]),
            "y": None if y is None else float(y[i]),
            "c": c[i],
            SCORE: float(scores[i]),
            SERVED_VERSION: versions[i],
            ROLE: roles[i],
            SHADOW_VERSION: "v0003" if shadow else None,
            SHADOW_SCORE: float(shadow_scores[i]) if shadow_scores is not None else None,
            SHADOW2_VERSION: "v0004" if shadow else None,
            SHADOW2_SCORE: float(shadow_scores[i] / 2) if shadow_scores is not None else None,
        }
        for i in range(n)
    ]
    return scored, expected


def _arrow(first: int, n: int) -> tuple[Scored, list[dict[str, Any]]]:
    """An Arrow request (its features are Arrow arrays, as ``from_table`` makes them)."""
    ids = [f"a{first + i}" for i in range(n)]
    x = [float(first + i) if i else None for i in range(n)]
    y = [float(-i) for i in range(n)]
    c = [f"k{i}" if i % 2 else None for i in range(n)]
    features = {
        "x": pa.array(x, pa.float64()),
        "y": pa.array(y, pa.float64()),
        "c": pa.array(c, pa.string()),
    }
    scores = np.linspace(0.0, 1.0, n)
    batch = Batch(np.zeros((n, 2), np.float32), np.zeros((n, 1), np.int64), ids, features)
    scored = Scored(
        batch, scores, (scores >= 0.5).astype(np.int8), ["v0001"] * n, ["production"] * n
    )
    expected = [
        {
            "id": ids[i],
            "x": x[i],
            "y": y[i],
            "c": c[i],
            SCORE: float(scores[i]),
            SERVED_VERSION: "v0001",
            ROLE: "production",
            SHADOW_VERSION: None,
            SHADOW_SCORE: None,
            SHADOW2_VERSION: None,
            SHADOW2_SCORE: None,
        }
        for i in range(n)
    ]
    return scored, expected


def _log(folder: Path, **options: Any) -> PredictionLog:
    return PredictionLog(folder, "id", NUMERIC, CATEGORICAL, **options)


@pytest.mark.parametrize("chunk_rows", [1, 4, 1_000])
def test_any_chunking_writes_exactly_the_served_rows_in_order(
    tmp_path: Path, chunk_rows: int
) -> None:
    log = _log(tmp_path / "log", chunk_rows=chunk_rows)
    expected: list[dict[str, Any]] = []
    requests: list[tuple[Scored, list[dict[str, Any]]]] = [
        *(_json(i, 1) for i in range(9)),  # single rows across chunk boundaries
        _json(100, 6, shadow=True),  # several rows straddling a boundary
        _arrow(200, 3),  # an Arrow request between JSON runs
        _json(300, 2, y_missing=True),  # a column the request did not carry: all null
        _arrow(400, 2),
        _arrow(500, 1),  # Arrow after Arrow
        *(_json(600 + i, 1, shadow=bool(i % 2)) for i in range(5)),
    ]
    for k, (scored, rows) in enumerate(requests):
        log.append(scored, when=T0 + k)
        expected += [{REQUEST_TIME: int((T0 + k) * 1000), **row} for row in rows]
    assert log.pending == len(expected)
    assert log.flush() == len(expected)
    assert log.pending == 0 and log.counters.dropped == 0 and log.counters.files == 1
    table = read_log(tmp_path / "log")
    assert table is not None
    assert table.schema.field("x").type == pa.float64()
    assert table.schema.field("c").type == pa.string()
    got = table.to_pylist()
    for row in got:
        row[REQUEST_TIME] = int(row[REQUEST_TIME].timestamp() * 1000)
    assert got == expected


def test_the_buffer_keeps_no_object_per_request(tmp_path: Path) -> None:
    """Requests' objects (Scored, Batch, dicts, lists) die with the request: the number of
    objects the collector tracks does not grow with the buffered requests."""
    log = _log(tmp_path / "log", flush_rows=10**9)
    for k in range(50):  # warm up: the chunk lists exist
        log.append(_json(k, 1)[0], when=T0)
    gc.collect()
    before = len(gc.get_objects())
    for k in range(3_000):
        log.append(_json(k, 1)[0], when=T0)
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert log.pending == 3_050
    assert grown < 300, f"{grown} more tracked objects for 3,000 buffered requests"
    assert log.flush() == 3_050


def test_rows_that_cannot_be_converted_are_dropped_counted_and_the_log_carries_on(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path / "log", chunk_rows=3)
    good, expected = _json(0, 1)
    log.append(good, when=T0)
    bad, _ = _json(1, 2)
    bad.batch.features["c"] = [7, 8]  # not text: the chunk holding it cannot convert
    log.append(bad, when=T0)  # fills the chunk: sealing fails, its 3 rows dropped
    assert log.counters.dropped == 3 and log.counters.errors == 1
    assert "log rows not converted" in (log.counters.last_error or "")
    assert log.pending == 0
    log.append(good, when=T0)
    assert log.flush() == 1
    bad_open, _ = _json(5, 1)
    bad_open.batch.features["c"] = [9]
    log.append(bad_open, when=T0)  # the open chunk fails in the flush instead
    assert log.flush() == 0 and log.counters.dropped == 4 and log.counters.errors == 2
    table = read_log(tmp_path / "log")
    assert table is not None and table.column("id").to_pylist() == [expected[0]["id"]]
    assert log.counters.written == 1


def test_a_full_buffer_drops_new_rows_counted(tmp_path: Path) -> None:
    log = _log(tmp_path / "log", max_buffer_rows=5, chunk_rows=2)
    for k in range(4):
        log.append(_json(k, 1)[0], when=T0)
    log.append(_json(10, 2)[0], when=T0)  # 4 + 2 > 5: dropped whole
    log.append(_json(20, 1)[0], when=T0)  # 4 + 1 fits
    assert log.pending == 5 and log.counters.dropped == 2
    assert log.flush() == 5
    table = read_log(tmp_path / "log")
    assert table is not None
    assert table.column("id").to_pylist() == ["r0", "r1", "r2", "r3", "r20"]
