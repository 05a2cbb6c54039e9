"""Drift of the production model's data: the registry gives the reference and the model.

Part of the cycle layer because it reads the registry (``model.registry``) and loads the
production model (``model.artifact``) on top of :mod:`model.drift`, which does neither.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.data.batches import is_partition_name
from model.drift import (
    DriftReport,
    DriftSettings,
    detect_drift,
    drift_from_report_file,
    newest_batches,
    read_frame,
    report_folder,
    spec_for_reference,
    summary_of,
    table_rows,
    write_reports,
)
from model.errors import DriftInputError, RetrainError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd

    from model.data import FeatureSpec
    from model.settings import Settings


def _production_metadata(settings: Settings) -> tuple[Any, dict[str, Any]] | None:
    from model.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir)
    info = registry.production()
    if info is None:
        return None
    return info, registry.metadata(info.version)


def production_medians(settings: Settings) -> dict[str, float]:
    """The numeric training medians production learned (``{}`` without a production model):
    the values a schema change is imputed with."""
    found = _production_metadata(settings)
    if found is None:
        return {}
    numeric = ((found[1].get("preprocessing") or {}).get("numeric")) or {}
    return {c: float(v["median"]) for c, v in numeric.items() if "median" in v}


def reference_for_production(settings: Settings) -> tuple[Path, FeatureSpec]:
    """The production model's training split and feature spec (its drift reference)."""
    from model.data import FeatureSpec, load_manifest

    found = _production_metadata(settings)
    if found is None:
        raise DriftInputError(f"no production model in {settings.models_dir}")
    info, meta = found
    manifest_ref = meta.get("data_manifest") or {}
    if not manifest_ref.get("path"):
        raise DriftInputError(
            f"production model {info.version}: model.json has no data_manifest.path "
            "(the training data it was built from)"
        )
    folder = settings.resolve(manifest_ref["path"])
    if not folder.exists():
        raise DriftInputError(
            f"production model {info.version}: training data {folder} does not exist"
        )
    manifest = load_manifest(folder)
    spec = manifest.spec
    if meta.get("feature_spec"):
        known = set(FeatureSpec.__dataclass_fields__)
        spec = FeatureSpec.from_dict({k: v for k, v in meta["feature_spec"].items() if k in known})
    return manifest.split_path("train"), spec


ALL_BATCHES = 1_000_000
"""``newest_batches(folder, ALL_BATCHES)``: every batch of an incoming folder."""
NO_NEW_DATA = "no new data since production was trained"
"""The monitor's skip reason when production's training data holds every incoming batch."""


def batch_name(path: Path) -> str:
    """The id of the batch ``path`` is (``model.data.batches.batch_id``): a batch directly in
    the incoming folder is named by its name; a file inside a batch folder by that folder."""
    return next((p for p in path.parent.parts if is_partition_name(p)), path.name)


@dataclass
class Selection:
    """Which incoming batches a drift check compares, and why (``describe()`` is in the
    report's ``current.selection``). ``judged``: compared batches a rejected or inconclusive
    candidate was already trained on (batch -> ``"v0003 (rejected)"``)."""

    paths: list[Path]
    rule: str
    judged: dict[str, str] = field(default_factory=dict)
    skip: str | None = None

    @property
    def blocked(self) -> str | None:
        """Why a drift alarm on these batches must not trigger a retraining (None: it may)."""
        if not self.paths or not self.judged:
            return None
        if any(batch_name(p) not in self.judged for p in self.paths):
            return None
        who = ", ".join(sorted(set(self.judged.values())))
        return (
            f"the batches production has not seen were already judged by {who}; "
            "waiting for a newer batch"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "batches": [batch_name(p) for p in self.paths],
            "judged": dict(self.judged),
            "blocked": self.blocked,
        }


def judged_batches(settings: Settings) -> dict[str, str]:
    """Batches a rejected or inconclusive candidate was trained on: batch -> who judged it
    (the decision event's ``batches``, else the candidate's data manifest)."""
    from model.cycle.evaluation import trained_batches
    from model.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir)
    judged: dict[str, str] = {}
    for event in registry.history():
        if event.get("event") not in ("rejected", "inconclusive") or not event.get("version"):
            continue
        names = event.get("batches")
        if names is None:
            try:
                names = trained_batches(settings, registry.metadata(event["version"]))
            except (RetrainError, OSError):  # the candidate was garbage-collected
                names = None
        for name in names or ():
            judged[str(name)] = f"{event['version']} ({event['event']})"
    return judged


def select_batches(
    settings: Settings,
    batches: Sequence[str | os.PathLike[str]] | None = None,
    n_batches: int | None = None,
) -> Selection:
    """The incoming batches production has not been trained on (all of them, or the newest
    ``n_batches`` of them), from ``batches`` (default: ``settings.incoming_dir``'s).

    Production's training batches come from its prepared manifest; when that is unknown,
    the newest ``n_batches`` (default 1) batches are compared.
    """
    from model.cycle.evaluation import trained_batches

    found = _production_metadata(settings)
    every = (
        [Path(b) for b in batches]
        if batches is not None
        else newest_batches(settings.incoming_dir, ALL_BATCHES)
    )
    seen = trained_batches(settings, found[1]) if found is not None else None
    if seen is None:
        paths = every[-(n_batches or 1) :]
        return Selection(
            paths,
            f"newest {n_batches or 1} batch(es): production's training batches are unknown",
            skip=None if paths else "no incoming batch",
        )
    unseen = [b for b in every if batch_name(b) not in seen]
    paths = unseen[-n_batches:] if n_batches else unseen
    rule = "batches production has not been trained on"
    if n_batches:
        rule = f"newest {n_batches} of the {rule}"
    if not paths:
        held = f"its training data holds all {len(every)}" if every else "no incoming batch"
        return Selection([], rule, skip=f"{NO_NEW_DATA} ({held})")
    judged = judged_batches(settings)
    return Selection(
        paths,
        rule,
        {batch_name(p): judged[batch_name(p)] for p in paths if batch_name(p) in judged},
    )


def batch_labels(paths: Sequence[Path]) -> dict[str, Path]:
    """Each batch by its label in reports: its ``date=…`` name, or its path."""
    labels: dict[str, Path] = {}
    for p in paths:
        label = batch_name(p) if p.is_dir() else str(p)
        labels[label if label not in labels else str(p)] = p
    return labels


def read_batches(paths: Sequence[Path]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The batches concatenated (:func:`concat_batches`), and each on its own (for the
    report's schema changes)."""
    parts = {label: read_frame(p) for label, p in batch_labels(paths).items()}
    return concat_batches(parts), parts


def concat_batches(parts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The batches concatenated. A column a batch holds only missing values of is left out
    of that batch first, so its all-``None`` values do not turn the others' numbers into
    objects."""
    import pandas as pd

    if len(parts) == 1:
        return next(iter(parts.values()))
    frames = [f.drop(columns=[c for c in f.columns if f[c].isna().all()]) for f in parts.values()]
    return pd.concat(frames, ignore_index=True, sort=False)


def drift_for_production(
    settings: Settings,
    current_paths: Sequence[str | os.PathLike[str]] | None = None,
    drift_settings: DriftSettings | None = None,
    *,
    n_batches: int | None = None,
    with_model: bool = True,
    incoming: str | os.PathLike[str] | None = None,
    batches: Sequence[str | os.PathLike[str]] | None = None,
) -> DriftReport | None:
    """Drift of the new data against the production model's training data.

    The new data is ``current_paths``, else every incoming batch (of ``batches``, default
    ``settings.incoming_dir``'s) production was not trained on (see :func:`select_batches`),
    concatenated; which ones is the report's ``current["selection"]``. Returns None when there
    is no production model or no new data. With ``with_model``, the production model's score
    distribution is compared too, and its performance on the current data is estimated
    without labels (``performance_estimate``, :mod:`model.cycle.estimate`). ``incoming``: the
    folder of batches (default ``settings.incoming_dir``), when ``batches`` is not given.
    """
    if _production_metadata(settings) is None:
        return None
    if batches is None and incoming is not None:
        batches = newest_batches(incoming, ALL_BATCHES)
    if current_paths:
        selection = Selection([Path(p) for p in current_paths], "given")
    else:
        selection = select_batches(settings, batches, n_batches)
    if not selection.paths:
        return None
    paths = selection.paths
    ref_path, spec = reference_for_production(settings)
    scorer = None
    model_info = None
    if with_model:
        from model.artifact import load_model
        from model.registry import ModelRegistry

        info = ModelRegistry(settings.models_dir).production()
        if info is not None:
            scorer = load_model(info.path)
            model_info = {"version": info.version, "path": settings.relative(Path(info.path))}
    names = settings.relative(ref_path), [settings.relative(p) for p in paths]
    from model.cycle.streaming import streamed_drift, streamed_size

    estimate = streamed_size(settings, [ref_path, *paths])
    current: pd.DataFrame | None
    if estimate is None:
        reference = read_frame(ref_path)
        current, parts = read_batches(paths)
        report = detect_drift(
            reference,
            current,
            spec,
            drift_settings,
            model=scorer,
            model_info=model_info,
            current_parts=parts,
            reference_path=names[0],
            current_path=names[1],
        )
    else:
        labels = batch_labels(paths)
        report, parts = streamed_drift(
            settings, ref_path, labels, spec, drift_settings, scorer, model_info, names
        )
        report.current["streamed"] = {
            "memory_budget": settings.memory_budget,
            "in_memory_estimate": estimate,
        }
        current = concat_batches(parts) if parts else None
    report.current["selection"] = selection.describe()
    if scorer is not None and model_info is not None and current is not None:  # CBPE too
        from model.cycle.estimate import estimate_or_reason, record_estimate

        est = estimate_or_reason(settings, model_info["version"], scorer, current, parts)
        if "streamed" in report.current and est.get("available"):
            est["sampled_from"] = report.current["rows"]
        record_estimate(settings, model_info["version"], est, paths)  # the log: checked later
        report.performance_estimate = est
    return report


def prediction_log_current(settings: Settings, model_name: str) -> list[Path]:
    """The scoring service's prediction-log days (``date=…`` folders) of ``model_name`` from
    the day production was trained on: unlabelled new data, by request date."""
    import datetime as dt

    from model.serving.log import prediction_log_batches

    found = _production_metadata(settings)
    trained = str((found[1].get("trained_at") if found else None) or "")[:10]
    try:
        since = dt.date.fromisoformat(trained) if trained else None
    except ValueError:
        since = None
    return prediction_log_batches(settings.predictions_dir, model_name, since)


def monitor_drift(
    settings: Settings,
    reference: str | os.PathLike[str] | None = None,
    current: Sequence[str | os.PathLike[str]] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    n_batches: int | None = None,
    drift_settings: DriftSettings | None = None,
    with_model: bool = True,
    target: str = "target",
    id_column: str | None = None,
    incoming: str | os.PathLike[str] | None = None,
    batches: Sequence[str | os.PathLike[str]] | None = None,
    prediction_log: str | None = None,
) -> dict[str, Any]:
    """Compute drift, write the reports, and return a JSON-able summary.

    Without ``reference``: the production model's training data (and its scores, with
    ``with_model``) against the batches production was not trained on (:func:`select_batches`;
    ``status`` ``"skipped"`` with reason :data:`NO_NEW_DATA` when there are none). With
    ``reference``: the newest ``n_batches`` (default 1) incoming batches. ``current`` overrides
    the batches. ``blocked`` (in the summary) says why an alarm must not trigger a retraining:
    a rejected or inconclusive candidate already trained on every compared batch.
    ``prediction_log`` (a model name): the current data is that model's prediction log
    since production was trained (:func:`prediction_log_current`), unless ``current``.
    """
    blocked = None
    if prediction_log is not None and not current:
        current = prediction_log_current(settings, prediction_log)
        if not current:
            why = "no prediction-log rows since production was trained"
            return {"status": "skipped", "reason": why, "dataset_drift": False}
    if batches is None and incoming is not None:
        batches = newest_batches(incoming, ALL_BATCHES)
    if reference is None:
        if _production_metadata(settings) is None:
            reason = "no production model (no reference)"
            return {"status": "skipped", "reason": reason, "dataset_drift": False}
        selection = (
            Selection([Path(p) for p in current], "given")
            if current
            else select_batches(settings, batches, n_batches)
        )
        if not selection.paths:
            why = selection.skip or NO_NEW_DATA
            return {"status": "skipped", "reason": why, "dataset_drift": False}
        blocked = selection.blocked
        report = drift_for_production(
            settings, selection.paths, drift_settings, with_model=with_model
        )
        if report is None:  # production went away meanwhile
            return {"status": "skipped", "reason": NO_NEW_DATA, "dataset_drift": False}
        report.current["selection"] = selection.describe()
    else:
        every = [Path(b) for b in batches] if batches is not None else None
        paths = (
            [Path(p) for p in current]
            if current
            else (
                every[-(n_batches or 1) :]
                if every is not None
                else newest_batches(settings.incoming_dir, n_batches or 1)
            )
        )
        if not paths:
            return {"status": "skipped", "reason": "no incoming batch", "dataset_drift": False}
        ref = read_frame(reference)
        spec = spec_for_reference(ref, target=target, id_column=id_column)
        frame, parts = read_batches(paths)
        report = detect_drift(
            ref,
            frame,
            spec,
            drift_settings,
            reference_path=str(reference),
            current_path=[str(p) for p in paths],
            current_parts=parts,
        )
    folder = Path(out_dir) if out_dir is not None else report_folder(settings)
    files = write_reports(report, folder)
    return {
        "status": "ok",
        **summary_of(report, str(files["json"].resolve())),
        "blocked": blocked,
        "reports": {k: str(v.resolve()) for k, v in files.items()},
        "reference": report.reference,
        "current": report.current,
        "table": table_rows(report),
        "performance_estimate": report.performance_estimate,
    }


def drift_for_trigger(
    settings: Settings,
    drift_report_path: str | os.PathLike[str] | None = None,
    dataset_drift_threshold: float = 0.5,
    *,
    current_paths: Sequence[str | os.PathLike[str]] | None = None,
    n_batches: int | None = None,
    with_model: bool = True,
    batches: Sequence[str | os.PathLike[str]] | None = None,
    min_drifted_features: int | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """``TriggerState.drift`` and a note: from the report file when given, else computed.

    A given report that is missing or malformed raises :class:`DriftInputError`. Without one,
    drift of the batches production was not trained on (of ``batches``) is computed and its
    reports written under ``reports_dir/drift/``; ``(None, why)`` when there is nothing to
    compare (no production model, :data:`NO_NEW_DATA`) or when a rejected or inconclusive
    candidate already judged every one of those batches.
    """
    if drift_report_path is not None:
        return drift_from_report_file(drift_report_path), f"report {drift_report_path}"
    summary = monitor_drift(
        settings,
        current=current_paths,
        n_batches=n_batches,
        drift_settings=DriftSettings(
            dataset_drift_threshold=dataset_drift_threshold,
            min_drifted_features=min_drifted_features,
        ),
        with_model=with_model,
        batches=batches,
    )
    if summary["status"] == "skipped":
        return None, str(summary["reason"])
    if summary["blocked"]:
        verdict = "dataset drift" if summary["dataset_drift"] else "no dataset drift"
        return None, f"{verdict} ({summary['report_path']}), but {summary['blocked']}"
    return summary_of(summary, summary["report_path"], source="computed"), "computed"
