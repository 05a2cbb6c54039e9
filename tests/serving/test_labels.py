"""``retrain labels add``: late labels joined to the prediction log by id; every label row
accounted for; re-adding adds nothing; the batch prepares with the log's columns excluded;
the live gate's adapter sees the labels; retention (``retrain gc --predictions-days``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.cli import main
from model.data import RESERVED_LOG_COLUMNS, prepare
from model.errors import DataValidationError
from model.live import labelled_log
from model.serving.features import Batch
from model.serving.labels import add_labels
from model.serving.log import PredictionLog, log_files, prediction_log_batches, prune_log
from model.serving.models import Scored

DAY = 86_400.0
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()


def served(log: PredictionLog, ids: list[str], x: list[float], version: str, when: float) -> None:
    n = len(ids)
    batch = Batch(
        np.zeros((n, 1), np.float32),
        np.zeros((n, 1), np.int64),
        ids,
        {"x": x, "c": ["a"] * n},
    )
    scores = np.linspace(0.1, 0.9, n)
    log.append(
        Scored(batch, scores, (scores >= 0.5).astype(np.int8), [version] * n, ["production"] * n),
        when=when,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A RETRAIN_HOME whose log holds ids 0..9 (x = id) served by v0001 on day 0, and ids
    5..7 served again by v0002 on day 1 (x = 100 + id)."""
    log = PredictionLog(tmp_path / "predictions" / "demo", "id", ["x"], ["c"])
    served(log, [str(i) for i in range(10)], [float(i) for i in range(10)], "v0001", T0)
    served(log, ["5", "6", "7"], [105.0, 106.0, 107.0], "v0002", T0 + DAY)
    assert log.flush() == 13
    return tmp_path


def write_labels(path: Path, rows: list[tuple[object, object]]) -> Path:
    pd.DataFrame(rows, columns=["customer", "churned"]).to_csv(path, index=False)
    return path


def add(home: Path, labels: Path) -> dict[str, object]:
    result = add_labels(
        labels,
        log_folder=home / "predictions" / "demo",
        incoming_dir=home / "data" / "incoming",
        id_column="customer",
        label_column="churned",
        day=dt.date(2026, 3, 5),
    )
    assert result.accounted() == result.rows
    return result.to_dict()


def test_labels_join_the_newest_served_row_and_every_row_is_counted(home: Path) -> None:
    labels = write_labels(
        home / "labels.csv",
        [
            (1, 0),
            (5, 1),
            (6, 0),
            (6, 0),  # duplicate, same label
            (7, 1),
            (7, 0),  # conflicting: 7 is not used
            (42, 1),  # never served
            (None, 1),  # no id
            (8, None),  # no label
        ],
    )
    got = add(home, labels)
    assert {k: got[k] for k in got if k not in ("labels_file", "batch")} == {
        "rows": 9,
        "added": 3,
        "no_id": 1,
        "no_label": 1,
        "duplicates": 1,
        "conflicting": 2,
        "never_served": 1,
        "already_added": 0,
    }
    batch = Path(str(got["batch"]))
    assert batch.parent.name == "date=2026-03-05" and batch.name.startswith("labels-")
    table = pq.read_table(batch).to_pandas().sort_values("customer")
    assert table["customer"].tolist() == [1, 5, 6]  # the labels file's ids, its type
    assert table["x"].tolist() == [1.0, 105.0, 106.0]  # features as served, newest row
    assert table["target"].tolist() == [0, 1, 0]
    assert table["__served_version__"].tolist() == ["v0001", "v0002", "v0002"]
    # re-adding the same file adds nothing twice
    again = add(home, labels)
    assert again["added"] == 0 and again["already_added"] == 3 and again["batch"] is None
    assert len(list((home / "data" / "incoming").rglob("*.parquet"))) == 1


def test_the_live_gate_adapter_sees_the_joined_labels(home: Path) -> None:
    add(home, write_labels(home / "labels.csv", [(1, 0), (2, 1), (9, 1)]))
    rows = labelled_log.load_labelled(
        home / "predictions" / "demo", as_of=dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    )
    assert sorted(zip(rows["id"], rows["__label__"], strict=True)) == [
        ("1", 0),
        ("2", 1),
        ("9", 1),
    ]


def test_bad_labels_files_are_named(home: Path, tmp_path: Path) -> None:
    labels = write_labels(home / "labels.csv", [(1, 0)])
    with pytest.raises(DataValidationError, match=r"labels\.csv: no label column 'nope'"):
        add_labels(
            labels,
            log_folder=home / "predictions" / "demo",
            incoming_dir=home / "incoming",
            id_column="customer",
            label_column="nope",
        )
    with pytest.raises(DataValidationError, match="no prediction log"):
        add_labels(
            labels,
            log_folder=tmp_path / "elsewhere",
            incoming_dir=home / "incoming",
            id_column="customer",
            label_column="churned",
        )


def test_cli_labels_add_prints_counts_and_bad_input_exits_2(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RETRAIN_HOME", str(home))
    labels = write_labels(home / "labels.csv", [(1, 0), (3, 1), (77, 1)])
    args = ["labels", "add", str(labels), "--id-column", "customer", "--label-column"]
    assert main([*args, "churned", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == 2 and out["never_served"] == 1
    assert main([*args, "wrong"]) == 2
    assert "no label column 'wrong'" in capsys.readouterr().err


def test_a_labelled_batch_prepares_with_the_log_columns_excluded(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = pd.DataFrame(
        {
            "customer": np.arange(100, 300),
            "x": np.linspace(0, 1, 200),
            "c": ["a", "b"] * 100,
            "target": [0, 1] * 100,
        }
    )
    base_path = home / "base.parquet"
    base.to_parquet(base_path, index=False)
    incoming = home / "data" / "incoming"
    other = incoming / "date=2026-03-01" / "part-0.parquet"
    other.parent.mkdir(parents=True)
    base.assign(customer=base["customer"] + 1000).to_parquet(other, index=False)
    add(home, write_labels(home / "labels.csv", [(i, i % 2) for i in range(10)]))
    manifest = prepare([base_path, incoming], home / "prepared", id_column="customer")
    assert sorted(manifest.spec.features) == ["c", "x"]
    assert manifest.rows == 200 + 200 + 10
    assert any("labels-" in s for s in manifest.sources)
    assert "__served_version__" not in caplog.text  # expected there: no warning


def test_reserved_names_never_become_features_when_inferred(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "target": [0, 1] * 20})
    for name in RESERVED_LOG_COLUMNS:
        frame[name] = 1.0
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    manifest = prepare([path], tmp_path / "prepared", detect_id=False)
    assert manifest.spec.features == ["x"]
    assert set(RESERVED_LOG_COLUMNS) <= set(manifest.spec.excluded)


def test_prediction_log_batches_by_request_date_and_retention(home: Path) -> None:
    folder = home / "predictions" / "demo"
    days = [p.name for p in prediction_log_batches(home / "predictions", "demo")]
    assert days == ["date=2026-03-01", "date=2026-03-02"]
    newer = prediction_log_batches(home / "predictions", "demo", since=dt.date(2026, 3, 2))
    assert [p.name for p in newer] == ["date=2026-03-02"]
    (folder / "date=2026-03-02" / ".part-dead.parquet.tmp").write_bytes(b"partial")
    assert len(log_files(folder)) == 2  # temporary names are never log files
    kept = prune_log(home / "predictions", 3, today=dt.date(2026, 3, 5), dry_run=True)
    assert [p.name for p in kept.deleted] == ["date=2026-03-01"] and (
        folder / "date=2026-03-01"
    ).exists()
    prune_log(home / "predictions", 3, today=dt.date(2026, 3, 5))
    assert [p.name for p in prediction_log_batches(home / "predictions", "demo")] == [
        "date=2026-03-02"
    ]


def test_a_failed_write_drops_counted_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing: the rows are dropped and counted, no file (temporary or
    Parquet) is left, and the next flush works again."""
    import model.serving.log as module

    log = PredictionLog(tmp_path / "log", "id", ["x"], ["c"])
    served(log, ["1"], [1.0], "v0001", T0)
    original = module.pq.write_table

    def full_disk(table: pa.Table, where: object, **kwargs: object) -> None:
        original(table, where, **kwargs)  # a partial file exists under the temporary name
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module.pq, "write_table", full_disk)
    assert log.flush() == 0
    assert log.counters.dropped == 1 and "No space left" in str(log.counters.last_error)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(module.pq, "write_table", original)
    served(log, ["2"], [2.0], "v0001", T0)
    assert log.flush() == 1 and log.counters.written == 1
