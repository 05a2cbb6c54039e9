"""Single-process alternative to the server + work pool + worker stack.

``python -m deployments.serve`` registers the same two deployments as ``prefect.yaml``
(``retraining/weekly`` with its cron and drift trigger, ``drift-monitor/daily``) against the
Prefect API in ``PREFECT_API_URL`` and executes their runs in this process until stopped.
"""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from flows.drift_monitor import drift_monitor
from flows.retraining import retraining

WEEKLY_CRON = "0 3 * * 1"
DAILY_CRON = "0 2 * * *"
MODEL = "demo"
"""The model both deployments run for (its table in retraining.toml)."""


def main() -> None:
    weekly = retraining.to_deployment(
        name="weekly",
        schedules=[CronSchedule(cron=WEEKLY_CRON, timezone="UTC")],
        concurrency_limit=1,
        parameters={"model_name": MODEL},  # the rest from retraining.toml [models.demo]
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
        schedules=[CronSchedule(cron=DAILY_CRON, timezone="UTC")],
        concurrency_limit=1,
        parameters={"model_name": MODEL},
        tags=["retraining", "drift"],
    )
    serve(cast(RunnerDeployment, weekly), cast(RunnerDeployment, daily))


if __name__ == "__main__":
    main()
