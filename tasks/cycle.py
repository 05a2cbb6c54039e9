"""Prefect task: settle what dead cycles left before a new cycle starts."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from model.cycle.recovery import recover_dead_cycles
from model.registry import ModelRegistry
from model.settings import get_settings


@task(name="recover_dead_cycles")
def recover_dead_cycles_task(run_id: str | None = None) -> dict[str, Any]:
    """Record ``failed`` for the candidates of cycles that died without a decision, and
    remove their scratch folders; log each. Returns what was done."""
    settings = get_settings()
    recovery = recover_dead_cycles(
        ModelRegistry(settings.models_dir), settings.runs_dir, run_id=run_id
    )
    logger = get_run_logger()
    for line in recovery.lines():
        logger.warning("Recovered: %s", line)
    return {
        "failed": [ev["version"] for ev in recovery.failed],
        "failed_events": [
            {"version": ev["version"], "error": ev["error"], "run_id": ev.get("run_id")}
            for ev in recovery.failed
        ],
        "removed_scratch": recovery.removed_scratch,
    }
