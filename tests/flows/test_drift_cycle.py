"""Drift in a continuous loop (issue 13): the monitor compares only the batches production
has not seen, so drift clears after a drift-triggered promotion, and batches a rejected
candidate was trained on do not re-trigger until a newer batch arrives. Events are read from
Prefect's asserting events client: what was actually emitted."""

from __future__ import annotations

import json
import re
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import (  # noqa: F401  (pytest fixtures)
    asserting_events_worker,
    reset_worker_events,
)

from flows.drift_monitor import DRIFT_EVENT, drift_monitor
from flows.retraining import retraining
from model.cycle.monitor import NO_NEW_DATA
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings

FAST: dict[str, Any] = {
    "num_epochs": 4,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "id_column": "id",
    "min_hours_between_trainings": 0.0,
}


def drift_events(worker: EventsWorker) -> list[Any]:
    worker.wait_until_empty()
    client = worker._client
    assert isinstance(client, AssertingEventsClient)
    return [e for e in client.events if e.event == DRIFT_EVENT]


def history(settings: Settings) -> list[dict[str, Any]]:
    lines = (settings.models_dir / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_drift_clears_after_a_drift_triggered_promotion(
    prefect_harness: None,
    settings: Settings,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    write_demo(settings, rows=2_500, seed=7)
    assert retraining(**FAST).status == "promoted"  # v0001 on the base data only
    assert drift_monitor()["reason"].startswith(NO_NEW_DATA)  # no batch yet
    write_demo(settings, rows=2_500, seed=7, drift=0.8, batches=1, batch_rows=3_000)
    batch = next(settings.incoming_dir.iterdir()).name

    first = drift_monitor()
    assert first["status"] == "ok" and first["dataset_drift"] is True
    assert first["current"]["selection"]["batches"] == [batch]
    events = drift_events(asserting_events_worker)
    assert len(events) == 1

    # what the retraining/weekly deployment's trigger does with the event
    result = retraining(drift_report_path=events[0].payload["report_path"], **FAST)
    assert result.trigger == "drift"
    assert result.status == "promoted", result.reasons
    assert result.production_version == "v0002"

    state = drift_monitor(return_state=True)
    second = state.result()
    assert second["status"] == "skipped"
    with get_client(sync_client=True) as client:  # the run's name says what it found
        name = client.read_flow_run(state.state_details.flow_run_id).name
    assert re.fullmatch(r"demo · drift-\d{4}-\d\d-\d\d-no-new-data", name), name
    assert second["reason"] == f"{NO_NEW_DATA} (its training data holds all 1)"
    assert len(drift_events(asserting_events_worker)) == 1  # nothing new emitted
    # and the retraining flow's own drift trigger agrees
    skipped = retraining(**FAST)
    assert skipped.status == "skipped"
    drift_check = next(c for c in history(settings)[-1]["checks"] if c["name"] == "drift")
    assert not drift_check["checked"] and NO_NEW_DATA in drift_check["detail"]


def test_batches_judged_by_a_rejected_candidate_wait_for_a_newer_batch(
    prefect_harness: None,
    settings: Settings,
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    write_demo(settings, rows=2_500, seed=7)
    assert retraining(**FAST).status == "promoted"
    write_demo(settings, rows=2_500, seed=7, drift=0.8, batches=1, batch_rows=2_000)
    batch = next(settings.incoming_dir.iterdir()).name
    rejected = retraining(force_retrain=True, improvement_threshold=0.5, **FAST)
    assert rejected.status == "rejected"
    assert history(settings)[-1]["batches"] == [batch]  # what the candidate was judged on
    assert ModelRegistry(settings.models_dir).production().version == "v0001"  # type: ignore[union-attr]

    judged = drift_monitor()
    assert judged["dataset_drift"] is True  # production still faces the drift ...
    assert judged["current"]["selection"]["judged"] == {batch: "v0002 (rejected)"}
    assert "already judged by v0002 (rejected)" in judged["blocked"]
    assert drift_events(asserting_events_worker) == []  # ... but it does not re-trigger
    retrain = retraining(**FAST)
    assert retrain.status == "skipped"
    drift_check = next(c for c in history(settings)[-1]["checks"] if c["name"] == "drift")
    assert not drift_check["checked"] and "already judged" in drift_check["detail"]

    write_demo(settings, rows=2_500, seed=7, drift=0.8, batches=1, batch_rows=2_000)
    newer = drift_monitor()
    assert newer["blocked"] is None and newer["dataset_drift"] is True
    assert len(newer["current"]["selection"]["batches"]) == 2  # every unseen batch
    assert len(drift_events(asserting_events_worker)) == 1
