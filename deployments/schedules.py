"""One schedule per configured model on each scheduled deployment.

``prefect deploy --all`` creates the deployments of ``prefect.yaml`` with one schedule each,
which runs the default model. This replaces each scheduled deployment's schedules by the same
cron once per model of ``retraining.toml``, with ``parameters={"model_name": <model>}`` and the
slug ``model-<model>`` (so the UI shows whose schedule it is): one deployment serves every
model. Idempotent: run it after every ``prefect deploy`` (which puts back the yaml's single
schedule) and every change of the configuration; ``make stack-up`` runs it after deploying.

    python -m deployments.schedules            # against PREFECT_API_URL
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule

from model.cycle.models_config import load_models_config
from model.errors import RetrainError

SCHEDULED_DEPLOYMENTS = (
    "retraining/weekly",
    "drift-monitor/daily",
    "challenger-evaluation/daily",
    "post-promotion-watch/daily",
)
SLUG_PREFIX = "model-"


@dataclass
class Synced:
    deployment: str
    cron: str
    models: list[str]


def sync_schedules(
    models: list[str], deployments: tuple[str, ...] = SCHEDULED_DEPLOYMENTS
) -> list[Synced]:
    """Give each deployment one schedule per model (its current cron); a deployment that is
    missing or has no cron schedule is an error."""
    if not models:
        raise RetrainError("no models to schedule: retraining.toml has no [models.<name>] table")
    done: list[Synced] = []
    with get_client(sync_client=True) as client:
        for name in deployments:
            done.append(_sync_one(client, name, models))
    return done


def _sync_one(client: SyncPrefectClient, name: str, models: list[str]) -> Synced:
    """Create the missing per-model schedules first, then delete the others (the yaml's
    unnamed one, a removed model's): a failure never leaves the deployment unscheduled, and a
    model's schedule that exists keeps its cron and its active flag (paused stays paused)."""
    try:
        deployment = client.read_deployment_by_name(name)
    except Exception as exc:  # ObjectNotFound, or the server refused
        raise RetrainError(
            f"deployment {name}: not found ({type(exc).__name__}); deploy first"
        ) from None
    current = client.read_deployment_schedules(deployment.id)
    crons = [s for s in current if isinstance(s.schedule, CronSchedule)]
    yaml_schedule = next((s for s in crons if not (s.slug or "").startswith(SLUG_PREFIX)), None)
    base = yaml_schedule or (crons[0] if crons else None)
    if base is None:
        raise RetrainError(f"deployment {name}: has no cron schedule to copy per model")
    cron = base.schedule
    assert isinstance(cron, CronSchedule)
    wanted = {f"{SLUG_PREFIX}{model}": model for model in models}
    have = {s.slug for s in current}
    missing = [slug for slug in wanted if slug not in have]
    if missing:
        client.create_deployment_schedules(
            deployment.id,
            [
                DeploymentScheduleCreate(
                    schedule=CronSchedule(cron=cron.cron, timezone=cron.timezone),
                    active=yaml_schedule.active if yaml_schedule else True,
                    parameters={"model_name": wanted[slug]},
                    slug=slug,
                )
                for slug in missing
            ],
        )
    for schedule in current:
        if schedule.slug not in wanted:
            client.delete_deployment_schedule(deployment.id, schedule.id)
    return Synced(name, cron.cron, list(models))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--deployment",
        action="append",
        metavar="FLOW/NAME",
        help="only these deployments (default: the four scheduled ones of prefect.yaml)",
    )
    args = parser.parse_args(argv)
    try:
        models = load_models_config().names_in_order
        done = sync_schedules(models, tuple(args.deployment or SCHEDULED_DEPLOYMENTS))
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for item in done:
        print(f"{item.deployment}: '{item.cron}' for {', '.join(item.models)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
