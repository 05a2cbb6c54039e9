"""Two models in one working root through the real flows: each run reads and writes only its
model's folders, drift events name their model, and one deployment gets one schedule per
model (``deployments.schedules``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.schedules import CronSchedule
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import (  # noqa: F401  (pytest fixtures)
    asserting_events_worker,
    reset_worker_events,
)

from deployments.schedules import sync_schedules
from flows.drift_monitor import drift_monitor
from flows.retraining import retraining
from model.cycle.models_config import CONFIG_ENV
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings

FAST = "num_epochs = 3\nbatch_size = 256\npatience = 2\nn_bootstrap = 200\n"


@pytest.fixture
def two_models(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Settings]:
    config = tmp_path / "retraining.toml"
    config.write_text(f"[models.alpha]\n{FAST}\n[models.beta]\n{FAST}hidden_sizes = [8]\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.delenv("RETRAIN_MODEL_NAME")
    models = {name: settings.for_model(name) for name in ("alpha", "beta")}
    write_demo(models["alpha"], rows=1_500, seed=1)
    write_demo(models["beta"], rows=1_500, seed=2, drift=0.0, batches=1)
    return models


def test_each_model_runs_in_its_own_folders(
    prefect_harness: None, two_models: dict[str, Settings]
) -> None:
    alpha, beta = two_models["alpha"], two_models["beta"]
    first = retraining()  # no model named: the file's first table
    assert first.status == "promoted" and first.registry == str(alpha.models_dir)
    second = retraining(model_name="beta")
    assert second.status == "promoted" and second.registry == str(beta.models_dir)

    for model, other in ((alpha, beta), (beta, alpha)):
        registry = ModelRegistry(model.models_dir)
        assert [e["event"] for e in registry.history()] == ["registered", "compared", "promoted"]
        meta = registry.metadata("v0001")
        # trained on its own base data, prepared into its own folder
        assert meta["training_reason"]["sources"]["base"] == str(model.raw_data_path)
        assert model.resolve(meta["data_manifest"]["path"]).parent == model.prepared_dir
        assert not any(model.runs_dir.glob("*/candidate-*"))
        assert Artifact.get(f"trigger-decision-{model.model_name}") is not None
        reports = [p for p in model.reports_dir.rglob("*.json")]
        assert reports and not any(str(other.reports_dir) in str(p) for p in reports)
    # beta's table sets hidden_sizes, alpha's not: each run read its own table
    assert ModelRegistry(beta.models_dir).metadata("v0001")["architecture"]["hidden_sizes"] == [8]
    assert ModelRegistry(alpha.models_dir).metadata("v0001")["architecture"]["hidden_sizes"] == [
        64,
        32,
    ]


def test_the_drift_monitor_of_one_model_names_it_in_its_event(
    prefect_harness: None,
    two_models: dict[str, Settings],
    asserting_events_worker: EventsWorker,  # noqa: F811
    reset_worker_events: None,  # noqa: F811
) -> None:
    beta = two_models["beta"]
    assert retraining(model_name="beta").status == "promoted"
    ignored = beta.root / "unused-base.parquet"  # a drifted batch only; base data unchanged
    write_demo(beta, rows=1_500, seed=5, drift=0.8, batches=1, batch_rows=1_500, out=ignored)
    summary = drift_monitor(model_name="beta")
    assert summary["model_name"] == "beta" and summary["dataset_drift"] is True
    assert Path(summary["reports"]["json"]).is_relative_to(beta.reports_dir)
    asserting_events_worker.wait_until_empty()
    client = asserting_events_worker._client
    assert isinstance(client, AssertingEventsClient)
    events = [e for e in client.events if e.event == "retraining.drift.detected"]
    assert [(e.resource.id, e.resource.name) for e in events] == [("retraining.model.beta", "beta")]
    assert not (two_models["alpha"].models_dir / "history.jsonl").exists()


@flow(name="schedule-probe")
def _probe(model_name: str | None = None) -> str | None:
    return model_name


def test_one_schedule_per_model_and_a_slot_per_model(prefect_harness: None) -> None:
    deployment = _probe.to_deployment(
        name="weekly", schedules=[CronSchedule(cron="0 3 * * 1", timezone="UTC")]
    )
    dep_id = deployment.apply()
    for _ in range(2):  # idempotent
        done = sync_schedules(["alpha", "beta"], ("schedule-probe/weekly",))
        assert [(d.cron, d.models, d.concurrency_limit) for d in done] == [
            ("0 3 * * 1", ["alpha", "beta"], 2)
        ]
        with get_client(sync_client=True) as client:
            schedules = client.read_deployment_schedules(dep_id)
            gcl = client.read_deployment(dep_id).global_concurrency_limit
            limit = gcl.limit if gcl else None
        got = sorted((s.slug, json.dumps(s.parameters), s.schedule.cron) for s in schedules)
        assert got == [
            ("model-alpha", '{"model_name": "alpha"}', "0 3 * * 1"),
            ("model-beta", '{"model_name": "beta"}', "0 3 * * 1"),
        ]
        assert limit == 2
