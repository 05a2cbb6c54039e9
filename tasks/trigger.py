"""Prefect task: gather the trigger state and decide whether this cycle retrains."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from model.cycle import RetrainingConfig, gather_trigger_state, select_sources
from model.cycle.triggers import TriggerParams, evaluate_triggers
from model.settings import get_settings
from tasks.events import emit_estimate_missed


@task(name="check_trigger")
def check_trigger(config: dict[str, Any], is_scheduled: bool = False) -> dict[str, Any]:
    """Evaluate every trigger; return the decision as plain data (for artifacts and history),
    with the data sources this cycle would train on (``sources``)."""
    logger = get_run_logger()
    cfg = RetrainingConfig(**config)
    settings = get_settings()
    sources = select_sources(settings, cfg)
    for warning in sources.ignored:  # once per cycle: what in incoming/ is not read
        logger.warning("Incoming: %s", warning)
    state = gather_trigger_state(settings, cfg, sources, is_scheduled=is_scheduled)
    params = TriggerParams(
        force_retrain=cfg.force_retrain,
        drift_report_path=cfg.drift_report_path,
        dataset_drift_threshold=cfg.dataset_drift_threshold,
        max_days_since_training=cfg.max_days_since_training,
        retrain_on_schedule=cfg.retrain_on_schedule,
        min_auc=cfg.min_auc,
        max_auc_drop=cfg.max_auc_drop,
        estimated_auc_margin=cfg.estimated_auc_margin,
        min_new_samples=cfg.min_new_samples,
        min_hours_between_trainings=cfg.min_hours_between_trainings,
    )
    for missed in state.estimates_missed:  # labels contradicted production's estimate
        emit_estimate_missed(cfg.model_name, missed)
        logger.warning("Label-free estimate contradicted by labels: %s", missed.get("check"))
    decision = evaluate_triggers(params, state)
    for check in decision.checks:
        logger.info("trigger %-13s fired=%-5s %s", check.name, check.counts, check.detail)
    result = decision.to_dict()
    result["markdown"] = decision.to_markdown()
    result["sources"] = sources.describe()
    result["drift_report_path"] = (state.drift or {}).get("report_path")
    result["checks"] = [{k: v for k, v in c.items() if k != "values"} for c in result["checks"]]
    return result
