"""Through the retraining flow: a poisoned labels batch is quarantined and the cycle trains on
the others, and on all of them once the fixed batch is restored (issue 25, rule 1); labels for
a model whose target is ``rain`` become its next training batch (issue 24, item 3); a
``year=2016`` folder is a batch and ``notes.txt`` one warning (issue 24, item 4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.retraining import retraining
from model.cli import main
from model.data import load_manifest
from model.data.demo import make_customers, write_demo
from model.registry import ModelRegistry
from model.serving.features import Batch
from model.serving.log import PredictionLog
from model.serving.models import Scored
from model.settings import Settings

FAST: dict[str, Any] = {
    "num_epochs": 3,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "min_hours_between_trainings": 0.0,
}


def _manifest(settings: Settings, version: str | None) -> Any:
    assert version is not None
    meta = ModelRegistry(settings.models_dir).metadata(version)
    return load_manifest(settings.resolve(meta["data_manifest"]["path"]))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def run_warnings() -> Iterator[list[str]]:
    """The warnings the flow's tasks log (Prefect's run loggers do not reach caplog)."""
    handler = _Records()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def test_a_poisoned_labels_batch_is_quarantined_and_restored_once_fixed(
    prefect_harness: None, settings: Settings, run_warnings: list[str]
) -> None:
    write_demo(settings, rows=3_000, seed=4)
    assert retraining(**FAST).status == "promoted"
    good = settings.incoming_dir / "date=2030-01-01"
    good.mkdir(parents=True)
    make_customers(600, seed=4, batch=21).to_parquet(good / "part-0.parquet", index=False)
    poisoned = settings.incoming_dir / "date=2030-01-02"
    poisoned.mkdir()
    labelled = make_customers(600, seed=4, batch=22)
    truth = labelled["target"].to_numpy()
    labelled.assign(target=np.where(truth == 1, "yes", "maybe")).to_parquet(
        poisoned / "labels-0123456789abcdef.parquet", index=False
    )
    result = retraining(force_retrain=True, **FAST)  # used to fail on every cycle
    assert result.status in ("promoted", "rejected", "inconclusive")
    assert _manifest(settings, result.candidate_version).batches == ["date=2030-01-01"]
    held = settings.incoming_dir / ".quarantine" / "date=2030-01-02"
    assert (held / "reason.json").is_file() and not poisoned.exists()
    events = [
        e for e in ModelRegistry(settings.models_dir).history() if e["event"] == "quarantined"
    ]
    assert [e["batch"] for e in events] == ["date=2030-01-02"] and "'yes'" in events[0]["reason"]
    assert sum("Quarantined batch date=2030-01-02" in m for m in run_warnings) == 1
    fixed = held / "labels-0123456789abcdef.parquet"  # the labels fixed in place
    labelled.to_parquet(fixed, index=False)
    assert main(["batches", "restore", "date=2030-01-02"]) == 0
    result = retraining(force_retrain=True, **FAST)
    assert result.status in ("promoted", "rejected", "inconclusive")
    manifest = _manifest(settings, result.candidate_version)
    assert manifest.batches == ["date=2030-01-01", "date=2030-01-02"]
    assert manifest.rows == 3_000 + 1_200


def _log_rows(settings: Settings, frame: pd.DataFrame, features: list[str]) -> None:
    """``frame``'s rows as the scoring service logs them (served by v0001)."""
    log = PredictionLog(settings.predictions_dir / settings.model_name, "id", features, [])
    n = len(frame)
    values = frame[features].to_numpy(np.float64)
    batch = Batch(
        values.astype(np.float32),
        np.zeros((n, 0), np.int64),
        [str(i) for i in frame["id"]],
        {name: values[:, j] for j, name in enumerate(features)},
    )
    scores = np.full(n, 0.5)
    labels = np.ones(n, np.int8)
    log.append(Scored(batch, scores, labels, ["v0001"] * n, ["production"] * n))
    assert log.flush() == n


def test_labels_for_a_rain_model_are_its_next_training_batch(
    prefect_harness: None,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_warnings: list[str],
) -> None:
    config = tmp_path / "weather.toml"
    config.write_text('[models.demo]\ntarget_column = "rain"\nid_column = "id"\n')
    monkeypatch.setenv("RETRAIN_CONFIG", str(config))
    base = make_customers(3_000, seed=4).rename(columns={"target": "rain"})
    settings.raw_data_path.parent.mkdir(parents=True)
    base.to_parquet(settings.raw_data_path, index=False)
    assert retraining(**FAST).status == "promoted"
    served = make_customers(500, seed=4, batch=31)
    features = [c for c in served.columns if c not in ("id", "target")]
    _log_rows(settings, served, features)
    labels = tmp_path / "rain-labels.csv"
    served[["id", "target"]].rename(columns={"target": "rain"}).to_csv(labels, index=False)
    assert main(["labels", "add", str(labels), "--date", "2030-02-01"]) == 0  # no --target
    batch = next((settings.incoming_dir / "date=2030-02-01").iterdir())
    assert "rain" in pq.read_schema(batch).names
    # a year=2016 folder is a batch too, and notes.txt one warning
    year = settings.incoming_dir / "year=2016"
    year.mkdir()
    make_customers(400, seed=4, batch=32).rename(columns={"target": "rain"}).to_parquet(
        year / "part-0.parquet", index=False
    )
    (settings.incoming_dir / "notes.txt").write_text("delivered by hand\n")
    result = retraining(force_retrain=True, **FAST)
    assert result.status in ("promoted", "rejected", "inconclusive")
    manifest = _manifest(settings, result.candidate_version)
    assert manifest.batches == ["year=2016", "date=2030-02-01"]
    assert str(batch.resolve()) in [str(Path(s).resolve()) for s in manifest.sources]
    assert manifest.rows == 3_000 + 500 + 400 and manifest.spec.target == "rain"
    assert sum("notes.txt" in m for m in run_warnings) == 1
