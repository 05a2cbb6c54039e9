"""Production's label-free performance estimate on new data (CBPE, :mod:`model.drift.cbpe`).

The cycle layer does what the drift package may not: it loads production from the registry,
scores its validation split (the prepared folder its manifest names) to fit the calibration,
scores the new batch, and reads production's holdout AUC interval recorded at its promotion.
The estimate goes into the drift report (``performance_estimate``) and the
``estimated_auc_drop`` trigger's state. It is held against reality (:mod:`model.live.estimates`):
an estimate on rows that already have labels is checked at once; one on the scoring service's
prediction log is recorded and checked once its labels arrive (:func:`check_pending_estimates`).
A miss makes production's estimates unreliable until production changes: the report says so,
and the trigger uses the realised AUC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from model import clock
from model.drift.cbpe import (
    DEFAULT_CHECK_ROWS,
    Calibrator,
    check_estimate,
    estimate_performance,
    fit_calibrator,
    realised_auc,
)
from model.errors import DriftInputError, RetrainError
from model.live import estimates

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
    settings: Settings,
    version: str,
    model: LoadedModel,
    current: pd.DataFrame,
    parts: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """:func:`estimate_production`, or ``{"available": False, "reason": ...}`` when it cannot
    be made (so the drift report still comes out, and says why). ``parts``: ``current`` by
    batch name; the batches that have labels and were never checked are held against them
    (:func:`check_labelled_batches`); then whether production's estimates are reliable."""
    from model.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir)
    holdout = registry.holdout_auc(version)
    try:
        out = {
            "available": True,
            **estimate_production(settings, version, model, current, holdout_auc=holdout),
        }
    except RetrainError as exc:
        return {"available": False, "reason": str(exc)}
    if parts:
        checked = check_labelled_batches(settings, registry, version, model, parts)
        if checked is not None:
            out["check"] = checked["check"]
            out["checked_batches"] = checked["batches"]
            if checked["missed"]:
                out["missed_event"] = checked["id"]
    return with_reliability(out, registry.history(), version)


def check_labelled_batches(
    settings: Settings,
    registry: Any,
    version: str,
    model: LoadedModel,
    parts: Mapping[str, pd.DataFrame],
) -> dict[str, Any] | None:
    """Hold production's estimate against the labels of the batches in ``parts`` that have
    them and were never checked (each labelled row is checked once), at the level of its k-th
    check (:func:`model.live.estimates.check_level`); record the check (``estimate_checked``)
    and return the event, or None when there are no such rows (or too few of a class)."""
    from model.data import encode_target

    target = model.spec.target
    events = registry.history()
    done = estimates.checked_batches(events, version)
    fresh = {
        name: frame
        for name, frame in parts.items()
        if name not in done and target in frame.columns and frame[target].notna().all()
    }
    if not fresh:
        return None
    frame = pd.concat(list(fresh.values()), ignore_index=True)
    labels = encode_target(frame[target], "new data")
    if min(int(labels.sum()), int(labels.size - labels.sum())) < 100:
        return None
    calibrator, _ = production_calibration(settings, version, model)
    k = estimates.checks_so_far(events, version) + 1
    check = check_estimate(
        model.predict_proba(frame), labels, calibrator, alpha=estimates.check_level(k)
    )
    return dict(
        registry.record(
            estimates.CHECKED,
            version=version,
            batches=sorted(fresh),
            missed=check.missed,
            check=check.to_dict(),
            k=k,
        )
    )


def with_reliability(
    est: dict[str, Any], events: Sequence[Mapping[str, Any]], version: str
) -> dict[str, Any]:
    """``est`` with ``reliable`` (False once a recorded check found that labels contradicted an
    estimate of ``version`` while it is production) and why."""
    miss = estimates.estimate_miss(events, version)  # recorded checks only
    if miss is not None:
        check = miss.get("check") or {}
        est["reliable"] = False
        est["unreliable_because"] = (
            f"labels contradicted an estimate of {version} ({miss.get('time', '')[:10]}: "
            f"realised AUC {check.get('realised_auc', float('nan')):.3f} vs estimated "
            f"{check.get('expected_auc', float('nan')):.3f}); unreliable until production changes"
        )
        est["contradicted_by"] = check
    else:
        est["reliable"] = True
    return est


def record_estimate(
    settings: Settings, version: str, est: Mapping[str, Any], paths: Sequence[str | Path]
) -> dict[str, Any] | None:
    """Record an estimate of ``version`` on the scoring service's prediction log (``paths``:
    its day folders) as ``estimated``: it is checked once its labels arrive
    (:func:`check_pending_estimates`). Estimates on other data are not recorded (labelled
    batches are checked at once, :func:`check_labelled_batches`). Returns the event, or None."""
    from model.registry import ModelRegistry

    if not est.get("available", True) or est.get("auc") is None or not paths:
        return None
    numbers = {k: est.get(k) for k in ("auc", "auc_ci_low", "auc_ci_high", "n_rows")}
    log_root = settings.predictions_dir.resolve()
    in_log = [p for p in paths if Path(p).resolve().is_relative_to(log_root)]
    days = sorted({d for d in (estimates.day_of(str(p)) for p in in_log) if d})
    if not days or len(in_log) != len(paths):
        return None
    return dict(
        ModelRegistry(settings.models_dir).record(
            estimates.ESTIMATED, version=version, days=days, source="prediction-log", **numbers
        )
    )


def check_pending_estimates(
    settings: Settings,
    rows: pd.DataFrame | None = None,
    *,
    check_rows: int = DEFAULT_CHECK_ROWS,
    alpha: float = 0.05,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Check, once, the newest recorded estimate of production on the prediction log whose
    days now have ``check_rows`` labelled rows (``rows``: the labelled log, read when None and
    an estimate waits); older pending estimates it covers are superseded. Returns the new
    ``estimate_checked`` events."""
    from model.registry import ModelRegistry
    from model.training.artifact import load_model

    registry = ModelRegistry(settings.models_dir)
    prod = registry.production()
    if prod is None:
        return []
    events = registry.history()
    waiting = estimates.pending(events, prod.version)
    if waiting and rows is None:
        from model.live.outcome import labelled

        rows = labelled(settings.root, settings.model_name, now or clock.now(), 0.0)
    covered = estimates.checked_days(events, prod.version)  # each day's rows checked once
    for ev in reversed(waiting):
        assert rows is not None
        days = [d for d in ev.get("days") or [] if d not in covered]
        found = estimates.labelled_scores(rows, prod.version, days)
        if found.n < check_rows or found.labels.min() == found.labels.max():
            continue
        model = load_model(registry.version_path(prod.version))
        calibrator, _ = production_calibration(settings, prod.version, model)
        k = estimates.checks_so_far(events, prod.version) + 1
        level = estimates.check_level(k, alpha)
        check = check_estimate(found.scores, found.labels, calibrator, alpha=level)
        numbers = {k: ev.get(k) for k in ("auc", "auc_ci_low", "auc_ci_high", "n_rows")}
        return [
            registry.record(
                estimates.CHECKED,
                version=prod.version,
                estimate=ev["id"],
                days=days,
                k=k,
                missed=check.missed,
                check=check.to_dict(),
                estimated=numbers,
                superseded=estimates.superseded(waiting, ev) or None,
            )
        ]
    return []


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
    frame = read_table(list(paths))
    parts = {Path(paths[0]).name: frame} if len(paths) == 1 else None
    est = estimate_or_reason(settings, version, model, frame, parts)
    if not est["available"]:
        state.notes[TRIGGER] = est["reason"]
        return
    realised = (est.get("realised") or {}).get("auc")
    if realised is None:
        realised = (est.get("contradicted_by") or {}).get("realised_auc")
    state.estimated_auc = {
        "auc": est["auc"],
        "auc_ci_low": est["auc_ci_low"],
        "auc_ci_high": est["auc_ci_high"],
        "n_rows": est["n_rows"],
        "realised_auc": realised,
        "reliable": est.get("reliable", True),
        "unreliable_because": est.get("unreliable_because"),
        "paths": [settings.relative(Path(p)) for p in paths],
    }
    if est.get("missed_event"):  # this batch's labels contradicted the estimate (recorded)
        state.estimates_missed.append(missed_event(est, version))


def missed_event(est: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The recorded check of ``est`` that missed, as the ``retraining.estimate.missed`` event
    reads it."""
    return {
        "id": est.get("missed_event"),
        "version": version,
        "check": est.get("check"),
        "batches": est.get("checked_batches"),
    }
