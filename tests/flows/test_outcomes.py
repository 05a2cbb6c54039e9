"""Runs say how they ended: final run names and one event per outcome (promoted, rejected,
skipped — with the cooldown named — and failed), on the demo data through the Prefect harness."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prefect.client.orchestration import get_client

import tasks.events
from flows.retraining import retraining
from model.data.demo import write_demo
from model.settings import Settings

FAST: dict[str, Any] = {
    "num_epochs": 3,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "min_hours_between_trainings": 0.0,
}
STAMP = r"\d{4}-\d\d-\d\dT\d{6}"


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def record(event: str, resource: dict[str, str], payload: dict[str, Any]) -> None:
        sent.append({"event": event, "resource": resource, "payload": payload})

    monkeypatch.setattr(tasks.events, "emit_event", record)
    return sent


def _run(**params: Any) -> tuple[str, Any]:
    state = retraining(**params, return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]
    return run.name, state


def test_names_and_events_for_each_outcome(
    prefect_harness: None, settings: Settings, events: list[dict[str, Any]]
) -> None:
    write_demo(settings, rows=2_500, seed=7)
    name, _ = _run(**FAST)
    assert re.fullmatch(rf"demo · retrain-no-production-{STAMP}-PROMOTED-v0001", name), name
    assert [e["event"] for e in events] == ["retraining.model.promoted"]
    promoted = events[-1]
    assert promoted["resource"] == {
        "prefect.resource.id": "retraining.model.demo",
        "prefect.resource.name": "demo",
    }
    assert promoted["payload"]["version"] == "v0001"
    assert promoted["payload"]["report_path"].endswith("comparison.html")

    name, _ = _run(force_retrain=True, improvement_threshold=0.2, **FAST)
    assert re.fullmatch(rf"demo · retrain-force-{STAMP}-REJECTED-v0002", name), name
    assert events[-1]["event"] == "retraining.model.rejected"
    assert events[-1]["payload"]["version"] == "v0002" and events[-1]["payload"]["reasons"]

    name, state = _run(**FAST)  # nothing new: skipped
    assert re.fullmatch(rf"demo · skip-{STAMP}", name), name
    with get_client(sync_client=True) as client:  # the model's tag, on the run itself
        run = client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]
    assert "model:demo" in run.tags, run.tags

    # a name the user chose is kept, with the outcome appended
    chosen = retraining.with_options(flow_run_name="nightly-check")(**FAST, return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(chosen.state_details.flow_run_id)  # type: ignore[arg-type]
    assert run.name == "nightly-check · skipped" and "model:demo" in run.tags, run
    assert events[-1]["event"] == "retraining.cycle.skipped"
    assert events[-1]["payload"]["suppressed"] is None

    # a drift report with dataset drift, held by a 24 h cooldown: the name says so
    report = settings.root / "drift.json"
    report.write_text('{"dataset_drift": true, "drift_share": 0.8}')
    params = {**FAST, "min_hours_between_trainings": 24.0, "drift_report_path": str(report)}
    name, _ = _run(**params)
    assert re.fullmatch(rf"demo · skip-cooldown-drift-{STAMP}", name), name
    assert events[-1]["event"] == "retraining.cycle.skipped"
    assert events[-1]["payload"]["suppressed"] == "drift"

    # a run that fails: FAILED in the name, and a failed event
    name, state = _run(force_retrain=True, data_path=str(settings.root / "nope.csv"), **FAST)
    assert state.is_failed()
    assert re.fullmatch(rf"demo · retrain-force-{STAMP}-FAILED", name), name
    assert events[-1]["event"] == "retraining.cycle.failed"
    assert events[-1]["payload"]["error"]


def test_inconclusive_outcome_is_named_and_sent(
    prefect_harness: None, settings: Settings, events: list[dict[str, Any]]
) -> None:
    write_demo(settings, rows=2_500, seed=8)
    _run(**FAST)
    # another seed on the same data: no real difference, and far too few rows to decide on
    params = {**FAST, "min_class_count": 1_000_000, "improvement_threshold": 0.0, "seed": 43}
    name, _ = _run(force_retrain=True, **params)
    assert re.fullmatch(rf"demo · retrain-force-{STAMP}-INCONCLUSIVE-v0002", name), name
    assert events[-1]["event"] == "retraining.model.inconclusive"
    assert events[-1]["payload"]["version"] == "v0002"
