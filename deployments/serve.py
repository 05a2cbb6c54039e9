"""Single-process alternative to the server + work pool + worker stack.

``python -m deployments.serve`` registers the same two deployments as ``prefect.yaml``
(``retraining/weekly`` with its cron and drift trigger, ``drift-monitor/daily``) against the
Prefect API in ``PREFECT_API_URL`` and executes their runs in this process until stopped:
one cron schedule per model of ``retraining.toml`` (parameter ``model_name``) and the drift
trigger that names its model; no concurrency limit on the retraining deployment (the flow's
per-model lock keeps one cycle per model at a time).
"""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from flows.drift_monitor import drift_monitor
from flows.retraining import retraining
from model.cycle.models_config import load_models_config

WEEKLY_CRON = "0 3 * * 1"
DAILY_CRON = "0 2 * * *"


def _per_model(cron: str, models: list[str]) -> list[DeploymentScheduleCreate]:
    return [
        DeploymentScheduleCreate(
            schedule=CronSchedule(cron=cron, timezone="UTC"),
            parameters={"model_name": model},
            slug=f"model-{model}",
        )
        for model in models
    ]


def main() -> None:
    models = load_models_config().names_in_order
    weekly = retraining.to_deployment(
        name="weekly",
        schedules=_per_model(WEEKLY_CRON, models),
        tags=["retraining"],
        triggers=[
            DeploymentEventTrigger(
                name="retrain-on-drift",
                match={"prefect.resource.id": "retraining.model.*"},
                expect={"retraining.drift.detected"},
                parameters={
                    "model_name": "{{ event.resource.name | default(None) }}",
                    "drift_report_path": "{{ event.payload.report_path | default(None) }}",
                },
            )
        ],
    )
    daily = drift_monitor.to_deployment(
        name="daily",
        schedules=_per_model(DAILY_CRON, models),
        concurrency_limit=len(models),
        tags=["retraining", "drift"],
    )
    serve(cast(RunnerDeployment, weekly), cast(RunnerDeployment, daily))


if __name__ == "__main__":
    main()
