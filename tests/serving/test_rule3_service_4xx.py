"""Issue 25, rule 3: the service answers every malformed body with a 4xx naming the problem,
a client that disconnects is a log line (not a traceback), and a request whose rows cannot be
logged is refused before it is scored, or it is logged; never served and silently dropped.

The probe's cases: JSON nested 100,000 deep (was 500, RecursionError); an Arrow body with a
duplicate column (500, KeyError); a uint64 of 2**64 - 1 (500, ArrowInvalid); a client
disconnecting mid-body (500 and a traceback); two concatenated Arrow streams (200, the second
ignored); ``id=1.5`` accepted but ``id=true`` refused; a string id for a model trained on
integer ids (then every cycle failed on the labelled batch); a request beyond the log's buffer
(served, its rows dropped)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from serving_models import build_registry

from deployments.scoring.app import ServeConfig, create_app
from model.serving.log import read_log

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}
ROW = {"id": 1, "x": 1.0, "c": "a", "city": "p"}


def arrow_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _detail(response: Any) -> str:
    return str(response.json()["detail"])


def test_json_nested_100000_deep_is_422(make_client: Callable[..., Any]) -> None:
    client = make_client()
    body = b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in _detail(r)


def test_an_arrow_body_with_a_duplicate_column_is_422(make_client: Callable[..., Any]) -> None:
    client = make_client()
    table = pa.table([[1], [1.0], [2.0], ["a"], ["p"]], names=["id", "x", "x", "c", "city"])
    r = client.post("/predict", content=arrow_body(table), headers=ARROW)
    assert r.status_code == 422 and "duplicate column names: ['x']" in _detail(r)


def test_a_uint64_of_2_64_minus_1_is_a_number_and_an_id_alike(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client = make_client()
    big = pa.table(
        {
            "id": pa.array([2**64 - 1, 0], pa.uint64()),
            "x": pa.array([1, 2**64 - 1], pa.uint64()),
            "c": ["a", "b"],
            "city": ["p", "q"],
        }
    )
    r = client.post("/predict", content=arrow_body(big), headers=ARROW)
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["predictions"]] == [str(2**64 - 1), "0"]
    as_json = client.post("/predict", json={"rows": [{**ROW, "x": 2**64 - 1}]})
    assert as_json.status_code == 200  # the same number by JSON: the same answer
    client.__exit__(None, None, None)
    log = read_log(tmp_path / "predictions" / "demo")
    assert log is not None and log.column("x").to_pylist()[1] == float(2**64 - 1)


def test_two_concatenated_arrow_streams_are_422(make_client: Callable[..., Any]) -> None:
    client = make_client()
    one = arrow_body(pa.table({k: [v] for k, v in ROW.items()}))
    r = client.post("/predict", content=one + one, headers=ARROW)
    assert r.status_code == 422 and "after the end of its Arrow stream" in _detail(r)
    assert client.post("/predict", content=one, headers=ARROW).status_code == 200


@pytest.mark.parametrize("ident", [1.5, True, False, {"a": 1}, [1]])
def test_an_id_is_a_string_or_an_integer_json_and_arrow_alike(
    make_client: Callable[..., Any], ident: Any
) -> None:
    client = make_client()
    r = client.post("/predict", json={"rows": [{**ROW, "id": ident}]})
    assert r.status_code == 422 and "column 'id'" in _detail(r)
    if isinstance(ident, float | bool):
        table = pa.table({**{k: [v] for k, v in ROW.items()}, "id": [ident]})
        r = client.post("/predict", content=arrow_body(table), headers=ARROW)
        assert r.status_code == 422 and "column 'id'" in _detail(r)
    whole = client.post("/predict", json={"rows": [{**ROW, "id": 7.0}]})
    assert whole.status_code == 200 and whole.json()["predictions"][0]["id"] == "7"


def test_a_text_id_for_a_model_trained_on_integer_ids_is_422(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    root = tmp_path / "home"
    registry = build_registry(root, manifest=True)
    config = ServeConfig(
        registry=registry.root, predictions_dir=root / "predictions", events=False, home=root
    )
    with TestClient(create_app(config)) as client:
        r = client.post("/predict", json={"rows": [ROW, {**ROW, "id": "c-42"}]})
        assert r.status_code == 422 and "row 1, column 'id'" in _detail(r)
        assert "integers" in _detail(r)
        text = pa.table({**{k: [v] for k, v in ROW.items()}, "id": ["abc"]})
        r = client.post("/predict", content=arrow_body(text), headers=ARROW)
        assert r.status_code == 422 and "integers" in _detail(r)
        ok = client.post("/predict", json={"rows": [{**ROW, "id": "42"}, {**ROW, "id": 43}]})
        assert ok.status_code == 200
    log = read_log(root / "predictions" / "demo")
    assert log is not None and sorted(log.column("id").to_pylist()) == ["42", "43"]


def test_a_client_that_disconnects_mid_body_is_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = build_registry(tmp_path)
    app = create_app(
        ServeConfig(registry=registry.root, predictions_dir=tmp_path / "p", events=False)
    )
    incoming = [
        {"type": "http.request", "body": b'{"rows": [{"id": 1, ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any("disconnected" in r.getMessage() for r in caplog.records)


def test_a_request_beyond_the_old_log_buffer_is_logged_whole(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client = make_client(max_rows=300_000, max_bytes=300_000_000)
    n = 250_000  # more than the 200,000 rows the log used to buffer at most
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "x": pa.array([float(i % 97) for i in range(n)]),
            "c": pa.array(["a", "b"] * (n // 2)),
            "city": pa.array(["p"] * n),
        }
    )
    r = client.post("/predict", content=arrow_body(table), headers=ARROW)
    assert r.status_code == 200 and len(r.json()["predictions"]) == n
    client.__exit__(None, None, None)  # shutdown flushes the log
    log = read_log(tmp_path / "predictions" / "demo")
    assert log is not None and log.num_rows == n


def test_rows_the_log_cannot_take_are_refused_before_they_are_scored(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client = make_client(flush_seconds=3600, flush_rows=10**6)
    log = client.app.state.service.log
    log.max_buffer_rows = 10  # the disk is not keeping up: 10 rows are waiting
    rows = [{**ROW, "id": i} for i in range(6)]
    assert client.post("/predict", json={"rows": rows}).status_code == 200
    r = client.post("/predict", json={"rows": rows})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "buffer is full" in _detail(r)
    assert log.counters.dropped == 0 and log.pending == 6
    client.__exit__(None, None, None)
    table = read_log(tmp_path / "predictions" / "demo")
    assert table is not None and table.num_rows == 6  # every row served is logged
