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


def _tree(model: Settings) -> dict[str, int]:
    """Every file of the model's folders with its size."""
    folders = (model.data_dir, model.models_dir, model.reports_dir, model.runs_dir)
    return {
        str(p): p.stat().st_size
        for folder in folders
        if folder.exists()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(".lock")
    }


def test_each_model_runs_in_its_own_folders(
    prefect_harness: None, two_models: dict[str, Settings]
) -> None:
    alpha, beta = two_models["alpha"], two_models["beta"]
    first = retraining()  # no model named: the file's first table
    beta_before = _tree(beta)
    assert first.status == "promoted" and first.registry == str(alpha.models_dir)
    assert _tree(beta) == beta_before  # alpha's run left beta's folders as they were
    alpha_after = _tree(alpha)
    second = retraining(model_name="beta")
    assert second.status == "promoted" and second.registry == str(beta.models_dir)
    assert _tree(alpha) == alpha_after
    # nothing in the single-model places
    root = alpha.root
    assert not (root / "models" / "registry.json").exists()
    assert sorted(p.name for p in (root / "data").iterdir()) == ["alpha", "beta"]
    assert sorted(p.name for p in (root / "reports").iterdir()) == ["alpha", "beta"]

    for model in (alpha, beta):
        registry = ModelRegistry(model.models_dir)
        assert [e["event"] for e in registry.history()] == ["registered", "compared", "promoted"]
        meta = registry.metadata("v0001")
        # trained on its own base data, prepared into its own folder
        assert meta["training_reason"]["sources"]["base"] == str(model.raw_data_path)
        assert model.resolve(meta["data_manifest"]["path"]).parent == model.prepared_dir
        assert not any(model.runs_dir.glob("*/candidate-*"))
        assert Artifact.get(f"trigger-decision-{model.model_name}") is not None
        assert any(model.reports_dir.rglob("comparison.json"))
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


def test_one_schedule_per_model_created_before_the_old_ones_go(prefect_harness: None) -> None:
    deployment = _probe.to_deployment(
        name="weekly", schedules=[CronSchedule(cron="0 3 * * 1", timezone="UTC")]
    )
    dep_id = deployment.apply()

    def schedules() -> list[tuple[str | None, str, str, bool]]:
        with get_client(sync_client=True) as client:
            found = client.read_deployment_schedules(dep_id)
        return sorted(
            (s.slug, json.dumps(s.parameters), s.schedule.cron, s.active)  # type: ignore[union-attr]
            for s in found
        )

    for _ in range(2):  # idempotent
        done = sync_schedules(["alpha", "beta"], ("schedule-probe/weekly",))
        assert [(d.cron, d.models) for d in done] == [("0 3 * * 1", ["alpha", "beta"])]
        assert schedules() == [
            ("model-alpha", '{"model_name": "alpha"}', "0 3 * * 1", True),
            ("model-beta", '{"model_name": "beta"}', "0 3 * * 1", True),
        ]
    # a paused model stays paused; a removed model's schedule goes; a new one is added
    with get_client(sync_client=True) as client:
        beta = next(s for s in client.read_deployment_schedules(dep_id) if s.slug == "model-beta")
        client.update_deployment_schedule(
            dep_id, beta.id, active=False, parameters=beta.parameters, slug=beta.slug
        )
    sync_schedules(["beta", "gamma"], ("schedule-probe/weekly",))
    assert schedules() == [
        ("model-beta", '{"model_name": "beta"}', "0 3 * * 1", False),
        ("model-gamma", '{"model_name": "gamma"}', "0 3 * * 1", True),
    ]
