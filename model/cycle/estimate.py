"""Production's label-free performance estimate on new data (CBPE, :mod:`model.drift.cbpe`).

The cycle layer does what the drift package may not: it loads production from the registry,
scores its validation split (the prepared folder its manifest names) to fit the calibration,
scores the new batch, and reads production's holdout AUC interval recorded at its promotion.
The estimate goes into the drift report (``performance_estimate``) and the
``estimated_auc_drop`` trigger's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from model.drift.cbpe import Calibrator, estimate_performance, fit_calibrator, realised_auc
from model.errors import DriftInputError, RetrainError

if TYPE_CHECKING:
    from model.cycle.config import RetrainingConfig
    from model.cycle.triggers import TriggerState
    from model.settings import Settings
    from model.training.artifact import LoadedModel

TRIGGER = "estimated_auc_drop"


def production_calibration(
    settings: Settings, version: str, model: LoadedModel
) -> tuple[Calibrator, float | None]:
    """Calibration of ``model`` (production ``version``) on its validation split, and its
    realised AUC there. A missing manifest or split, or one class only, is a
    :class:`DriftInputError` naming it."""
    from model.data import encode_target, load_manifest, load_split
    from model.registry import ModelRegistry

    meta = ModelRegistry(settings.models_dir).metadata(version)
    ref = (meta.get("data_manifest") or {}).get("path")
    if not ref:
        raise DriftInputError(
            f"production model {version}: model.json has no data_manifest.path, so no "
            "validation split to calibrate the performance estimate on"
        )
    folder = settings.resolve(ref)
    try:
        manifest = load_manifest(folder)
        val = load_split(manifest, "val")
    except (OSError, RetrainError) as exc:
        raise DriftInputError(
            f"production model {version}: validation split of {folder} unreadable ({exc})"
        ) from exc
    target = manifest.spec.target
    if target not in val.columns or val.empty:
        raise DriftInputError(f"{folder}: validation split has no rows or no {target!r}")
    y = encode_target(val[target], f"{folder} (val)")
    if y.min() == y.max():
        raise DriftInputError(
            f"{folder}: validation split has one class only ({len(y):,} rows): "
            "cannot calibrate the performance estimate"
        )
    scores = model.predict_proba(val)
    return fit_calibrator(scores, y), realised_auc(y, scores)


def estimate_production(
    settings: Settings,
    version: str,
    model: LoadedModel,
    current: pd.DataFrame,
    *,
    holdout_auc: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """CBPE of production on ``current`` (the JSON form), with the realised numbers when
    ``current`` has production's target column, and production's reference AUCs beside it."""
    if current.empty:
        raise DriftInputError("performance estimate: the new data has no rows")
    calibrator, validation_auc = production_calibration(settings, version, model)
    target = model.spec.target
    labels = None
    if target in current.columns and current[target].notna().all():
        from model.data import encode_target

        labels = encode_target(current[target], "new data")
    est = estimate_performance(
        model.predict_proba(current),
        calibrator,
        model.decision_threshold,
        labels=labels,
        seed=seed,
    )
    est.reference = {
        "version": version,
        "validation_auc": validation_auc,
        "holdout_auc": holdout_auc,
    }
    return est.to_dict()


def estimate_or_reason(
    settings: Settings, version: str, model: LoadedModel, current: pd.DataFrame
) -> dict[str, Any]:
    """:func:`estimate_production`, or ``{"available": False, "reason": ...}`` when it cannot
    be made (so the drift report still comes out, and says why)."""
    from model.registry import ModelRegistry

    holdout = ModelRegistry(settings.models_dir).holdout_auc(version)
    try:
        return {
            "available": True,
            **estimate_production(settings, version, model, current, holdout_auc=holdout),
        }
    except RetrainError as exc:
        return {"available": False, "reason": str(exc)}


def estimate_for_trigger(
    state: TriggerState,
    settings: Settings,
    config: RetrainingConfig,
    paths: Sequence[Path],
    version: str,
) -> None:
    """Fill ``state.estimated_auc`` and ``state.production_holdout_auc`` for the
    ``estimated_auc_drop`` trigger (only when ``estimated_auc_margin`` is set); a reason in
    ``state.notes`` when there is nothing to estimate on."""
    if config.estimated_auc_margin is None:
        return
    from model.data import read_table
    from model.registry import ModelRegistry
    from model.training.artifact import load_model

    registry = ModelRegistry(settings.models_dir)
    state.production_holdout_auc = registry.holdout_auc(version)
    if not paths:
        state.notes[TRIGGER] = "no incoming batch to estimate on"
        return
    model = load_model(registry.version_path(version))
    est = estimate_or_reason(settings, version, model, read_table(list(paths)))
    if not est["available"]:
        state.notes[TRIGGER] = est["reason"]
        return
    state.estimated_auc = {
        "auc": est["auc"],
        "auc_ci_low": est["auc_ci_low"],
        "auc_ci_high": est["auc_ci_high"],
        "n_rows": est["n_rows"],
        "realised_auc": (est.get("realised") or {}).get("auc"),
        "paths": [settings.relative(Path(p)) for p in paths],
    }
