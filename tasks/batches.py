"""Prefect task: a cycle's door check of its incoming batches (``model.cycle.quarantine``)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.events import emit_event

from model.cycle.config import RetrainingConfig
from model.cycle.quarantine import screen_cycle
from model.settings import get_settings
from tasks.events import QUARANTINED_EVENT, model_resource


@task(name="screen_batches")
def screen_batches(config: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Check the batches production was not trained on; quarantine each bad one (logged as a
    warning, announced as ``retraining.batch.quarantined``). Returns what was done."""
    cfg = RetrainingConfig(**config)
    screening = screen_cycle(get_settings(), cfg, run_id)
    logger = get_run_logger()
    if screening.note:
        logger.warning("%s", screening.note)
    for q in screening.quarantined:
        logger.warning(
            "Quarantined batch %s (the cycle goes on without it): %s; after fixing it: "
            "retrain --model %s batches restore %s",
            q.batch,
            q.reason,
            cfg.model_name,
            q.path.name,
        )
        emit_event(
            event=QUARANTINED_EVENT,
            resource=model_resource(cfg.model_name),
            payload={**q.to_dict(), "flow_run_id": run_id},
        )
    return {
        "checked": screening.checked,
        "quarantined": [q.to_dict() for q in screening.quarantined],
        "contract": screening.contract,
    }
