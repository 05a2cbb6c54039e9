"""The drift-monitor flow on a temporary Prefect server: reports, artifacts and the event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prefect.artifacts import Artifact
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import (  # noqa: F401  (pytest fixtures)
    asserting_events_worker,
    reset_worker_events,
)

from flows.drift_monitor import DRIFT_EVENT, drift_monitor
from model.settings import Settings


def customers(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows) + seed * 10**6,
            "age": rng.normal(35 + 10 * shift, 10, rows),
            "income": rng.normal(65_000 + 30_000 * shift, 20_000, rows),
            "region": rng.choice(["n", "e", "s", "w"], rows),
            "target": rng.integers(0, 2, rows),
        }
    )


def write_batch(settings: Settings, day: str, frame: pd.DataFrame) -> Path:
    folder = settings.incoming_dir / f"date={day}"
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part-0.parquet", index=False)
    return folder


@pytest.fixture
def reference(settings: Settings) -> Path:
    path = settings.data_dir / "reference.parquet"
    path.parent.mkdir(parents=True)
    customers(3000, 1).to_parquet(path, index=False)
    return path


def drift_events(worker: EventsWorker) -> list[Any]:
    worker.wait_until_empty()
    client = worker._client
    assert isinstance(client, AssertingEventsClient)
    return [e for e in client.events if e.event == DRIFT_EVENT]


def test_drift_detected_emits_event_and_writes_reports(
    prefect_harness: None,
    settings: Settings,
    reference: Path,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    write_batch(settings, "2026-01-01", customers(1000, 2))
    write_batch(settings, "2026-01-02", customers(1000, 3, shift=0.8))
    summary = drift_monitor(reference_path=str(reference), with_model=False)

    assert summary["status"] == "ok"
    assert summary["dataset_drift"] is True
    assert set(summary["drifted_features"]) == {"age", "income"}
    assert summary["current"]["paths"] == [str(settings.incoming_dir / "date=2026-01-02")]
    report = Path(summary["report_path"])
    assert report.is_file() and report.parent.parent == settings.reports_dir / "drift"
    assert {p.name for p in report.parent.iterdir()} == {"drift.json", "drift.md", "drift.html"}

    events = drift_events(asserting_events_worker)
    assert len(events) == 1
    event = events[0]
    assert event.resource.id == "retraining.model.demo"
    assert event.payload == {
        "drift_share": pytest.approx(2 / 3),
        "drifted_features": summary["drifted_features"],
        "report_path": str(report),
    }

    markdown = Artifact.get("drift-report-demo")
    assert "Dataset drift detected" in str(getattr(markdown, "data", None))
    assert Artifact.get("drift-features-demo") is not None


def test_no_drift_no_event(
    prefect_harness: None,
    settings: Settings,
    reference: Path,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    write_batch(settings, "2026-01-01", customers(1000, 2, shift=0.8))
    write_batch(settings, "2026-01-02", customers(1000, 3))
    write_batch(settings, "2026-01-03", customers(1000, 4))
    summary = drift_monitor(reference_path=str(reference), newest_batches=2, with_model=False)
    assert summary["status"] == "ok"
    assert summary["dataset_drift"] is False
    assert summary["current"]["rows"] == 2000
    assert drift_events(asserting_events_worker) == []


def test_nothing_to_compare_is_skipped(
    prefect_harness: None,
    settings: Settings,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    write_batch(settings, "2026-01-01", customers(100, 2))
    summary = drift_monitor()  # no production model: no reference
    assert summary["status"] == "skipped"
    assert "no production model" in summary["reason"]
    assert drift_events(asserting_events_worker) == []


def test_cli_emit_sends_the_event(
    prefect_harness: None,
    settings: Settings,
    reference: Path,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    from model.cli import main

    batch = write_batch(settings, "2026-01-05", customers(1000, 5, shift=0.8))
    out = settings.reports_dir / "cli"
    argv = ["drift", "--reference", str(reference), "--current", str(batch), "--out", str(out)]
    assert main([*argv, "--emit"]) == 0
    events = drift_events(asserting_events_worker)
    assert len(events) == 1
    assert events[0].resource.id == "retraining.model.demo"
    assert events[0].payload["report_path"] == str((out / "drift.json").resolve())


def test_min_drifted_features_makes_one_drifted_feature_dataset_drift(
    prefect_harness: None,
    settings: Settings,
    reference: Path,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    batch = customers(1000, 3)
    write_batch(settings, "2026-01-01", batch.assign(age=batch["age"] + 8))  # 1 of 3 features
    quiet = drift_monitor(reference_path=str(reference), with_model=False)
    assert quiet["drifted_features"] == ["age"] and quiet["dataset_drift"] is False
    assert drift_events(asserting_events_worker) == []
    loud = drift_monitor(reference_path=str(reference), with_model=False, min_drifted_features=1)
    assert loud["dataset_drift"] is True
    report = json.loads(Path(loud["report_path"]).read_text())
    assert report["dataset_drift_reasons"] == ["1 drifted feature >= min_drifted_features 1"]
    assert len(drift_events(asserting_events_worker)) == 1
