"""The scoring service in process (FastAPI TestClient): scores against the library's pandas
path, every bad request kind (status, message, nothing logged), API key, swaps, shadow mode,
challenger routing and a log that cannot write."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from model.artifact import load_model
from model.errors import ModelLoadError
from model.registry import ModelRegistry
from model.serving import challenger_share
from model.serving.log import read_log
from model.serving.models import ModelHolder, ScoringModel

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")

ROWS = [
    {"id": 10, "x": 1.5, "c": "a", "city": "q"},
    {"id": 11, "x": None, "c": "b", "city": "never-seen"},
    {"id": "k-12", "x": -3, "c": None, "city": "t"},
    {"id": 13.0, "x": 7.25, "c": "zz", "city": None},
]


def reference_scores(registry: ModelRegistry, version: str, rows: list[dict[str, Any]]) -> Any:
    """The library's own pandas path (LoadedModel.predict_proba), independent of the
    service's encoder."""
    frame = pd.DataFrame(rows).astype({"c": object, "city": object})
    frame["x"] = frame["x"].astype(float)
    return load_model(registry.version_path(version)).predict_proba(frame)


def logged(tmp_path: Path) -> int:
    table = read_log(tmp_path / "predictions" / "demo")
    return 0 if table is None else table.num_rows


def arrow_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_json_scores_match_the_library_and_rows_are_logged(
    make_client: Callable[..., Any], registry: ModelRegistry, tmp_path: Path
) -> None:
    client = make_client()
    r = client.post("/predict", json={"rows": ROWS})
    assert r.status_code == 200
    out = r.json()["predictions"]
    expected = reference_scores(registry, "v0001", ROWS)
    np.testing.assert_allclose([p["score"] for p in out], expected, rtol=1e-6)
    assert [p["id"] for p in out] == ["10", "11", "k-12", "13"]
    assert [p["label"] for p in out] == [int(s >= 0.5) for s in expected]
    assert {p["version"] for p in out} == {"v0001"} and {p["role"] for p in out} == {"production"}
    client.__exit__(None, None, None)  # shutdown flushes the log
    table = read_log(tmp_path / "predictions" / "demo")
    assert table is not None and table.num_rows == 4
    assert table.column("id").to_pylist() == ["10", "11", "k-12", "13"]
    assert table.column("x").to_pylist() == [1.5, None, -3.0, 7.25]
    assert table.column("city").to_pylist() == ["q", "never-seen", "t", None]
    np.testing.assert_allclose(table.column("__served_score__").to_pylist(), expected, rtol=1e-6)
    assert set(table.column("__served_version__").to_pylist()) == {"v0001"}
    assert set(table.column("__role__").to_pylist()) == {"production"}


@pytest.mark.parametrize("kind", ["arrow", "parquet"])
def test_arrow_and_parquet_bodies_score_like_json(
    make_client: Callable[..., Any], registry: ModelRegistry, kind: str
) -> None:
    rows = [{**r, "id": str(r["id"])} for r in ROWS]
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [("id", pa.string()), ("x", pa.float64()), ("c", pa.string()), ("city", pa.string())]
        ),
    )
    if kind == "arrow":
        body, ctype = arrow_body(table), "application/vnd.apache.arrow.stream"
    else:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        body, ctype = sink.getvalue(), "application/vnd.apache.parquet"
    client = make_client()
    r = client.post("/predict", content=body, headers={"content-type": ctype})
    assert r.status_code == 200, r.text
    expected = reference_scores(registry, "v0001", ROWS)
    np.testing.assert_allclose([p["score"] for p in r.json()["predictions"]], expected, rtol=1e-6)
    # Arrow out when asked for
    r = client.post(
        "/predict",
        content=body,
        headers={"content-type": ctype, "accept": "application/vnd.apache.arrow.stream"},
    )
    answer = ipc.open_stream(r.content).read_all()
    np.testing.assert_allclose(answer.column("score").to_pylist(), expected, rtol=1e-6)


JSON = "application/json"
BAD_REQUESTS = [
    # (name, body, content type, status, words the message must hold)
    (
        "missing feature",
        {"rows": [ROWS[0], {"id": 1, "x": 1.0, "c": "a"}]},
        JSON,
        422,
        ["row 1", "missing feature 'city'"],
    ),
    (
        "wrong type",
        {"rows": [ROWS[0], ROWS[1], {**ROWS[0], "x": "12"}]},
        JSON,
        422,
        ["row 2", "column 'x'", "expected a number", "'12'"],
    ),
    (
        "bool as number",
        {"rows": [{**ROWS[0], "x": True}]},
        JSON,
        422,
        ["row 0", "column 'x'", "expected a number"],
    ),
    (
        "wrong categorical type",
        {"rows": [{**ROWS[0], "c": [1]}]},
        JSON,
        422,
        ["row 0", "column 'c'", "expected a string"],
    ),
    (
        "non-finite",
        b'{"rows": [{"id": 1, "x": Infinity, "c": "a", "city": "p"}]}',
        JSON,
        422,
        ["row 0", "column 'x'", "non-finite number inf"],
    ),
    (
        "NaN",
        b'{"rows": [{"id": 1, "x": 1, "c": "a", "city": "p"}, '
        b'{"id": 2, "x": NaN, "c": "a", "city": "p"}]}',
        JSON,
        422,
        ["row 1", "column 'x'", "non-finite number nan"],
    ),
    (
        "NaN beside a null",
        b'{"rows": [{"id": 1, "x": null, "c": "a", "city": "p"}, '
        b'{"id": 2, "x": NaN, "c": "a", "city": "p"}]}',
        JSON,
        422,
        ["row 1", "column 'x'", "non-finite number nan"],
    ),
    (
        "huge integer",
        b'{"rows": [{"id": 1, "x": 1' + b"0" * 400 + b', "c": "a", "city": "p"}]}',
        JSON,
        422,
        ["row 0", "column 'x'", "non-finite"],
    ),
    (
        "beyond float32",
        {"rows": [{**ROWS[0], "x": 1e39}]},
        JSON,
        422,
        ["row 0", "column 'x'", "non-finite"],
    ),
    ("too many rows", {"rows": [ROWS[0]] * 6}, JSON, 413, ["6 rows", "limit is 5", "--max-rows"]),
    (
        "too many bytes",
        {"rows": [{**ROWS[0], "pad": "p" * 5000}]},
        JSON,
        413,
        ["bytes", "limit is 4,096", "--max-bytes"],
    ),
    ("not JSON", b"{rows", JSON, 422, ["not valid JSON"]),
    ("no rows key", {"data": []}, JSON, 422, ['{"rows"']),
    ("empty rows", {"rows": []}, JSON, 422, ["no rows"]),
    ("row not an object", {"rows": [ROWS[0], 5]}, JSON, 422, ["row 1", "expected an object"]),
    ("bad id", {"rows": [{**ROWS[0], "id": [1]}]}, JSON, 422, ["row 0", "column 'id'"]),
    ("content type", b"x=1", "text/plain", 415, ["'text/plain'", "application/json"]),
    ("broken arrow", b"not arrow", "application/vnd.apache.arrow.stream", 422, ["not a readable"]),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_are_refused_named_and_never_logged(
    make_client: Callable[..., Any],
    tmp_path: Path,
    body: Any,
    ctype: str,
    status: int,
    words: list[str],
) -> None:
    client = make_client(max_rows=5, max_bytes=4096)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/predict", content=content, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    for word in words:
        assert word in detail, detail
    metrics = client.get("/metrics").text
    assert f'retrain_serve_requests_total{{status="{status}"}} 1' in metrics
    client.__exit__(None, None, None)
    assert logged(tmp_path) == 0


def test_arrow_body_errors_name_the_column_and_row(make_client: Callable[..., Any]) -> None:
    client = make_client()
    arrow = {"content-type": "application/vnd.apache.arrow.stream"}
    no_city = pa.table({"id": [1], "x": [1.0], "c": ["a"]})
    r = client.post("/predict", content=arrow_body(no_city), headers=arrow)
    assert r.status_code == 422 and "column 'city': missing feature" in r.json()["detail"]
    no_x = pa.table({"id": [1], "c": ["a"], "city": ["p"]})  # a numeric feature missing
    r = client.post("/predict", content=arrow_body(no_x), headers=arrow)
    assert r.status_code == 422 and "column 'x': missing feature" in r.json()["detail"]
    inf = pa.table({"id": [1, 2], "x": [1.0, float("inf")], "c": ["a", "b"], "city": ["p", "q"]})
    r = client.post("/predict", content=arrow_body(inf), headers=arrow)
    assert r.status_code == 422 and "row 1, column 'x': non-finite" in r.json()["detail"]
    text_x = pa.table({"id": [1], "x": ["1"], "c": ["a"], "city": ["p"]})
    r = client.post("/predict", content=arrow_body(text_x), headers=arrow)
    assert r.status_code == 422 and "column 'x': expected numbers" in r.json()["detail"]


def test_api_key_is_required_when_configured_and_beyond_localhost(
    make_client: Callable[..., Any], registry: ModelRegistry, tmp_path: Path
) -> None:
    from deployments.scoring.app import ServeConfig, ServeConfigError

    with pytest.raises(ServeConfigError, match=r"--host 0\.0\.0\.0: binding beyond 127\.0\.0\.1"):
        ServeConfig(registry.root, tmp_path, host="0.0.0.0").check()
    ServeConfig(registry.root, tmp_path, host="0.0.0.0", api_key="k").check()
    client = make_client(api_key="sesame")
    r = client.post("/predict", json={"rows": ROWS})
    assert r.status_code == 401 and "x-api-key" in r.json()["detail"]
    assert client.get("/version").status_code == 401
    assert client.get("/health").status_code == 200
    r = client.post("/predict", json={"rows": ROWS}, headers={"X-API-Key": "sesame"})
    assert r.status_code == 200


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_promotion_is_followed_and_a_broken_version_keeps_the_old_one(
    make_client: Callable[..., Any], registry: ModelRegistry
) -> None:
    client = make_client()

    def served() -> str:
        return str(
            client.post("/predict", json={"rows": ROWS[:1]}).json()["predictions"][0]["version"]
        )

    assert served() == "v0001"
    registry.promote("v0002", "test", force=True)
    wait_for(lambda: served() == "v0002")
    doc = client.get("/version").json()
    assert doc["production"]["version"] == "v0002"
    assert doc["production"]["sha256"] == load_model(registry.version_path("v0002")).sha256
    # v0003 breaks after registration: the service keeps serving v0002 and says why
    registry.promote("v0003", "test", force=True)
    pt = registry.version_path("v0003") / "model.pt"
    pt.chmod(0o644)
    pt.write_bytes(b"corrupt")
    wait_for(lambda: client.get("/version").json()["last_reload_error"] is not None)
    assert served() == "v0002"
    assert "v0003" in client.get("/version").json()["last_reload_error"]
    metrics = client.get("/metrics").text
    assert "retrain_serve_reload_errors_total 1" in metrics
    assert "retrain_serve_reloads_total 1" in metrics


def test_challenger_routing_follows_the_hash_split(
    make_client: Callable[..., Any], registry: ModelRegistry
) -> None:
    registry.set_challenger("v0002", 30.0)
    client = make_client()
    rows = [{"id": i, "x": float(i), "c": "a", "city": "p"} for i in range(400)]
    out = client.post("/predict", json={"rows": rows}).json()["predictions"]
    expected = challenger_share([str(i) for i in range(400)]) < 30.0
    assert [p["role"] == "challenger" for p in out] == expected.tolist()
    assert {p["version"] for p in out if p["role"] == "challenger"} == {"v0002"}
    chal = reference_scores(registry, "v0002", rows)
    prod = reference_scores(registry, "v0001", rows)
    np.testing.assert_allclose([p["score"] for p in out], np.where(expected, chal, prod), rtol=1e-6)


def test_shadow_challenger_scores_every_row_unreturned(
    make_client: Callable[..., Any], registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.set_challenger("v0002", 50.0)
    client = make_client(shadow="challenger")
    out = client.post("/predict", json={"rows": ROWS}).json()["predictions"]
    assert {p["role"] for p in out} == {"production"}  # no routing in shadow mode
    np.testing.assert_allclose(
        [p["score"] for p in out], reference_scores(registry, "v0001", ROWS), rtol=1e-6
    )
    assert client.get("/version").json()["shadow"]["version"] == "v0002"
    client.__exit__(None, None, None)
    table = read_log(tmp_path / "predictions" / "demo")
    assert table is not None
    assert set(table.column("__shadow_version__").to_pylist()) == {"v0002"}
    np.testing.assert_allclose(
        table.column("__shadow_score__").to_pylist(),
        reference_scores(registry, "v0002", ROWS),
        rtol=1e-6,
    )


def test_shadow_previous_production_after_a_promotion(registry: ModelRegistry) -> None:
    holder = ModelHolder(registry.root, shadow="previous")
    holder.refresh()
    assert holder.current is not None and holder.current.shadow is None
    registry.promote("v0002", "t", force=True)
    assert holder.refresh()
    current = holder.current
    assert current is not None and current.production.version == "v0002"
    assert current.shadow is not None and current.shadow.version == "v0001"
    # only the configured models are held: v0003 is never loaded
    assert {m.version for m in current.models()} == {"v0001", "v0002"}
    assert not holder.refresh()  # unchanged registry: no swap


def test_no_production_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no production model yet"):
        ModelHolder(tmp_path / "empty").refresh()


def test_a_failing_loader_keeps_the_old_set(registry: ModelRegistry) -> None:
    def loader(root: Path, version: str) -> ScoringModel:
        if version == "v0002":
            raise ModelLoadError("v0002: disk on fire")
        return ScoringModel.load(root, version)

    holder = ModelHolder(registry.root, loader=loader)
    holder.refresh()
    before = holder.current
    registry.promote("v0002", "t", force=True)
    assert not holder.refresh()
    assert holder.current is before and holder.reload_errors == 1
    assert not holder.refresh() and holder.reload_errors == 1  # reported once


def test_a_log_that_cannot_write_drops_counted_and_the_service_answers(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the log folder should be")
    client = make_client(predictions_dir=blocker)
    for _ in range(3):
        assert client.post("/predict", json={"rows": ROWS}).status_code == 200

    def dropped() -> bool:
        return "retrain_serve_log_rows_dropped_total 12" in client.get("/metrics").text

    wait_for(dropped)
    assert "retrain_serve_log_rows_written_total 0" in client.get("/metrics").text
    assert client.post("/predict", json={"rows": ROWS}).status_code == 200


def test_json_and_arrow_requests_flush_together_in_order(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client = make_client(flush_seconds=60)
    arrow = pa.table({"id": ["a1", "a2"], "x": [5.0, None], "c": ["b", "a"], "city": ["p", "q"]})
    client.post("/predict", json={"rows": ROWS[:2]})
    client.post(
        "/predict",
        content=arrow_body(arrow),
        headers={"content-type": "application/vnd.apache.arrow.stream"},
    )
    client.post("/predict", json={"rows": ROWS[2:]})
    client.__exit__(None, None, None)
    files = list((tmp_path / "predictions" / "demo").rglob("part-*.parquet"))
    assert len(files) == 1  # one flush, one file
    table = read_log(tmp_path / "predictions" / "demo")
    assert table is not None
    assert table.column("id").to_pylist() == ["10", "11", "a1", "a2", "k-12", "13"]
    assert table.column("x").to_pylist() == [1.5, None, 5.0, None, -3.0, 7.25]
    assert table.column("c").to_pylist() == ["a", "b", "b", "a", None, "zz"]
