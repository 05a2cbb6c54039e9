"""The flows read their settings by model name (issue 13), say what the cooldown suppressed,
and show every parameter's description in the run form of a deployed flow (issue 14)."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fakes import REPO_ROOT
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client

from flows.drift_monitor import drift_monitor
from flows.parameter_docs import FROM_CONFIG, literal_angles
from flows.retraining import retraining
from model.cycle.config import RetrainingConfig
from model.cycle.models_config import CONFIG_ENV, configurable_keys
from model.data import load_manifest
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings

CONFIG_TYPED = {"model_name", "incoming_path", "dataset_drift_threshold"}
"""drift_monitor's parameters typed like the configuration's (its others are its own)."""
FAST_TABLE = """
num_epochs = 3
batch_size = 256
patience = 2
n_bootstrap = 200
"""


@pytest.fixture
def demo_config(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The shipped [models.demo] table with fast training settings appended to it."""
    path = tmp_path / "retraining.toml"
    fast = {line.split("=")[0].strip() for line in FAST_TABLE.splitlines() if "=" in line}
    shipped = [
        line
        for line in (REPO_ROOT / "retraining.toml").read_text().splitlines()
        if line.split("=")[0].strip() not in fast
    ]
    path.write_text("\n".join(shipped) + "\n" + FAST_TABLE, encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    write_demo(settings, rows=2_000, seed=3)
    return path


def _run_name(state: Any) -> str:
    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(state.state_details.flow_run_id).name)


def _artifact(key: str) -> str:
    artifact = Artifact.get(key)
    assert artifact is not None
    return str(artifact.data)


def test_model_name_alone_runs_with_the_demo_settings_then_cooldown_shows(
    prefect_harness: None, settings: Settings, demo_config: Path, tmp_path: Path
) -> None:
    state = retraining(model_name="demo", return_state=True)
    result = state.result()
    assert result.status == "promoted"
    # the demo table's id column and base data were used (not the built-in hash / default)
    meta = ModelRegistry(settings.models_dir).metadata(result.candidate_version)
    manifest = load_manifest(settings.resolve(meta["data_manifest"]["path"]))
    assert manifest.spec.id_column == "id"
    assert meta["training_reason"]["sources"]["base"] == str(settings.raw_data_path)
    decision = _artifact("trigger-decision-demo")
    table = f"{demo_config} [models.demo]"
    assert f'| id_column | `"id"` | {table} |' in decision
    assert f"| num_epochs | `3` | {table} |" in decision
    assert "| dropout | `0.2` | built-in default |" in decision
    assert '| model_name | `"demo"` | parameter |' in decision

    # A drift report right after a training: drift fires, the 24 h cooldown suppresses it.
    report = tmp_path / "drift.json"
    report.write_text(json.dumps({"dataset_drift": True, "drift_share": 0.8}))
    state = retraining(model_name="demo", drift_report_path=str(report), return_state=True)
    skipped = state.result()
    assert skipped.status == "skipped"
    name = _run_name(state)
    assert name.startswith("demo · skip-cooldown-drift-20"), name
    assert len(name) == len("demo · skip-cooldown-drift-2026-11-28T031502")
    decision = _artifact("trigger-decision-demo")
    assert "**Cooldown**: drift fired but suppressed by the cooldown" in decision
    assert "min_hours_between_trainings 24 h" in decision and " until 20" in decision
    assert ModelRegistry(settings.models_dir).production().version == "v0001"  # type: ignore[union-attr]

    # A plain skip (nothing fired) keeps its plain name.
    state = retraining(model_name="demo", return_state=True)
    assert state.result().status == "skipped"
    assert re.fullmatch(r"demo · skip-\d{4}-\d\d-\d\dT\d{6}", _run_name(state))


def test_drift_monitor_reads_incoming_path(
    prefect_harness: None, settings: Settings, demo_config: Path, tmp_path: Path
) -> None:
    retraining(model_name="demo", force_retrain=True)
    write_demo(settings, rows=2_000, seed=3, drift=0.8, batches=1, batch_rows=800)
    elsewhere = tmp_path / "delivered"
    shutil.move(str(settings.incoming_dir), elsewhere)
    assert drift_monitor(model_name="demo", emit=False)["status"] == "skipped"  # config's: empty
    summary = drift_monitor(model_name="demo", incoming_path=str(elsewhere), emit=False)
    assert summary["status"] == "ok" and summary["dataset_drift"]
    assert summary["current"]["paths"] == [str(elsewhere / "date=2025-01-01")]
    assert summary["settings_sources"]["incoming_path"] == "parameter"
    assert summary["settings_sources"]["dataset_drift_threshold"].endswith("[models.demo]")


def test_a_bad_model_name_fails_the_run_before_any_work(
    prefect_harness: None, settings: Settings, demo_config: Path
) -> None:
    state = retraining(model_name="Demo_1", return_state=True)
    assert state.is_failed()
    assert "model name 'Demo_1' is not accepted" in str(state.message)
    state = retraining(model_name="nope", return_state=True)
    assert state.is_failed() and "no table [models.nope]; known models: demo" in str(state.message)
    assert not settings.models_dir.exists()


def test_deployed_parameter_schema_has_every_description_and_default(
    prefect_harness: None,
) -> None:
    """Deploy to the (real) test server and read the run form's schema back."""
    for flow_obj in (retraining, drift_monitor):
        deployment_id = flow_obj.to_deployment(name="schema-check").apply()
        with get_client(sync_client=True) as client:
            schema = client.read_deployment(deployment_id).parameter_openapi_schema
        assert schema is not None
        props = schema["properties"]
        signature = inspect.signature(flow_obj.fn).parameters
        assert list(sorted(props, key=lambda k: props[k]["position"])) == list(signature)
        for name, param in signature.items():
            prop = props[name]
            description = prop.get("description") or ""
            assert description.strip(), f"{flow_obj.name}.{name} has no description"
            assert prop.get("default") == param.default, name
            shared = name in CONFIG_TYPED if flow_obj is drift_monitor else True
            field = RetrainingConfig.model_fields.get(name) if shared else None
            if field is not None:  # independent reference: the field's own description
                expected = literal_angles(str(field.description).rstrip("."))  # <x> as code
                assert description.startswith(expected), name
            if param.default is None and name in configurable_keys():
                assert FROM_CONFIG in description, name
            elif name != "model_name":
                assert f"(default: {json.dumps(param.default)})" in description, name
    retraining_props = _schema_of(retraining)
    assert "else [64, 32])" in retraining_props["hidden_sizes"]["description"]
    assert 'RETRAIN_MODEL_NAME, else "demo"' in retraining_props["model_name"]["description"]
    order = [
        "force_retrain",
        "min_hours_between_trainings",
        "data_path",
        "id_column",
        "primary_metric",
        "guardrails",
        "num_epochs",
        "device",
    ]  # trigger, data, gate, then training
    positions = [retraining_props[k]["position"] for k in order]
    assert positions == sorted(positions)


def _schema_of(flow_obj: Any) -> dict[str, Any]:
    deployment_id = flow_obj.to_deployment(name="schema-check").apply()
    with get_client(sync_client=True) as client:
        schema = client.read_deployment(deployment_id).parameter_openapi_schema
    return dict(schema["properties"])


@pytest.mark.parametrize(
    ("resource", "payload", "expected"),
    [
        (
            {"prefect.resource.id": "retraining.model.churn", "prefect.resource.name": "churn"},
            {"report_path": "/r/drift.json"},
            {"model_name": "churn", "drift_report_path": "/r/drift.json"},
        ),
        (  # an event without them: None, so the run takes RETRAIN_MODEL_NAME and computes drift
            {"prefect.resource.id": "retraining.model.demo"},
            {},
            {"model_name": None, "drift_report_path": None},
        ),
    ],
)
def test_the_drift_trigger_passes_the_event_model_name(
    resource: dict[str, str], payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    """prefect.yaml's trigger parameters rendered the way Prefect's server renders them."""
    import datetime as dt

    import yaml
    from prefect.server.events.actions import RunDeployment
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    doc = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    weekly = next(d for d in doc["deployments"] if d["name"] == "weekly")
    assert weekly["parameters"] == {}  # the default model; schedules name theirs
    params = dict(weekly["triggers"][0]["parameters"])
    RunDeployment._upgrade_v1_templates(params)
    event = ReceivedEvent(
        occurred=dt.datetime.now(dt.UTC),
        event="retraining.drift.detected",
        resource=resource,
        payload=payload,
        id="00000000-0000-0000-0000-000000000001",
    )
    context = HydrationContext(render_jinja=True, jinja_context={"event": event})
    assert hydrate(params, context) == expected
