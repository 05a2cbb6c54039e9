"""The trigger state a cycle gathers from the registry, the batches and drift, for
:func:`model.cycle.triggers.evaluate_triggers`: production's age and recorded holdout AUC, the
new rows since its training, its AUC on the newest labelled batch, its label-free estimate
(CBPE) and whether labels have contradicted that estimate, and the data's drift.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from model.cycle.config import (
    DataSources,
    RetrainingConfig,
    auc_or_none,
    parse_time,
    utcnow,
)
from model.settings import Settings


def parquet_rows(folder: Path) -> int:
    """Row count of a batch (Parquet from the footers, CSV read): ``source_rows``."""
    from model.data.read import source_rows

    return source_rows(folder)


def _recorded_test_auc(registry: Any, version: str, meta: dict[str, Any]) -> float | None:
    """Production's holdout AUC when it was compared — the lower bound of its interval
    (DeLong, at the comparison's level), not the point estimate that won the comparison
    (inflated by selection) — else its validation AUC."""
    compared = registry.last_event("compared", version=version) or {}
    auc = (compared.get("candidate_auc") or {}).get("ci_low")
    if auc is None:
        auc = (compared.get("metrics") or {}).get("auc", {}).get("candidate")
    if auc is None:
        auc = ((meta.get("metrics") or {}).get("validation") or {}).get("auc")
    return float(auc) if auc is not None else None


def gather_trigger_state(
    settings: Settings,
    config: RetrainingConfig,
    sources: DataSources,
    *,
    is_scheduled: bool,
    now: dt.datetime | None = None,
) -> Any:
    """Fill a :class:`~model.cycle.triggers.TriggerState` from registry, batches and drift."""
    from model.cluster import with_engine
    from model.cycle.estimate import estimate_for_trigger
    from model.cycle.evaluation import trained_batches
    from model.cycle.monitor import drift_for_trigger
    from model.cycle.triggers import TriggerState
    from model.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir)
    prod = registry.production()
    state = TriggerState(now=now or utcnow(), is_scheduled=is_scheduled)
    state.has_production = prod is not None
    registered = registry.last_event("registered")
    state.last_training_at = parse_time((registered or {}).get("time"))
    if prod is not None:
        meta = registry.metadata(prod.version)
        state.production_version = prod.version
        state.production_trained_at = parse_time(meta.get("trained_at"))
        state.production_test_auc = _recorded_test_auc(registry, prod.version, meta)
        trained = trained_batches(settings, meta)
        if trained is None:
            state.notes["volume"] = "production's training data manifest is unknown"
        else:
            new = [b for b in sources.all_batches if b.name not in trained]
            state.new_rows_since_training = sum(parquet_rows(b) for b in new)
        _measure_recent_auc(state, config, sources, registry, prod.version)
        if config.estimated_auc_margin is not None:  # labels that arrived check old estimates
            from model.cycle.estimate import check_pending_estimates

            for checked in check_pending_estimates(settings, now=state.now):
                if checked.get("missed"):
                    state.estimates_missed.append(checked)
        estimate_for_trigger(state, settings, config, sources.all_batches[-1:], prod.version)
    drift, note = drift_for_trigger(
        with_engine(settings, config.data_engine),
        config.drift_report_path,
        config.dataset_drift_threshold,
        batches=sources.all_batches,
        min_drifted_features=config.min_drifted_features,
    )
    state.drift = drift
    if drift is None:
        state.notes["drift"] = note
    return state


def _measure_recent_auc(
    state: Any, config: RetrainingConfig, sources: DataSources, registry: Any, version: str
) -> None:
    """Production's AUC on the newest labelled batch, when a degradation trigger is set."""
    if config.min_auc is None and config.max_auc_drop is None:
        state.notes["degradation"] = "min_auc and max_auc_drop are not set"
        return
    if not sources.all_batches:
        state.notes["degradation"] = "no incoming batch to score"
        return
    from model.data import encode_target, read_table
    from model.training.artifact import load_model

    newest = sources.all_batches[-1]
    frame = read_table(newest)
    if config.target_column not in frame.columns:
        state.notes["degradation"] = f"{newest}: no labels ({config.target_column!r} missing)"
        return
    model = load_model(registry.version_path(version))
    y = encode_target(frame[config.target_column], str(newest))
    state.production_auc_recent = auc_or_none(y, model.predict_proba(frame))
    state.production_auc_rows = len(frame)
