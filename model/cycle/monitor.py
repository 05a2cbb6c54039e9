"""Drift of the production model's data: the registry gives the reference and the model.

Part of the cycle layer because it reads the registry (``model.registry``) and loads the
production model (``model.artifact``) on top of :mod:`model.drift`, which does neither.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from model.errors import DriftInputError

if TYPE_CHECKING:
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


def drift_for_production(
    settings: Settings,
    current_paths: Sequence[str | os.PathLike[str]] | None = None,
    drift_settings: DriftSettings | None = None,
    *,
    n_batches: int = 1,
    with_model: bool = True,
    incoming: str | os.PathLike[str] | None = None,
) -> DriftReport | None:
    """Drift of the newest incoming batch(es) against the production model's training data.

    Returns None when there is no production model or no incoming data. With
    ``with_model``, the production model's score distribution is compared too, and its
    performance on the current data is estimated without labels (``performance_estimate``,
    :mod:`model.cycle.estimate`).
    """
    if _production_metadata(settings) is None:
        return None
    paths = (
        [Path(p) for p in current_paths]
        if current_paths
        else newest_batches(incoming or settings.incoming_dir, n_batches)
    )
    if not paths:
        return None
    ref_path, spec = reference_for_production(settings)
    reference = read_frame(ref_path)
    current = read_frame(paths)
    scorer = None
    model_info = None
    if with_model:
        from model.artifact import load_model
        from model.registry import ModelRegistry

        info = ModelRegistry(settings.models_dir).production()
        if info is not None:
            scorer = load_model(info.path)
            model_info = {"version": info.version, "path": settings.relative(Path(info.path))}
    report = detect_drift(
        reference,
        current,
        spec,
        drift_settings,
        model=scorer,
        reference_path=settings.relative(ref_path),
        current_path=[settings.relative(p) for p in paths],
        model_info=model_info,
    )
    if scorer is not None and model_info is not None:  # CBPE beside the drift (cycle.estimate)
        from model.cycle.estimate import estimate_or_reason

        report.performance_estimate = estimate_or_reason(
            settings, model_info["version"], scorer, current
        )
    return report


def monitor_drift(
    settings: Settings,
    reference: str | os.PathLike[str] | None = None,
    current: Sequence[str | os.PathLike[str]] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    n_batches: int = 1,
    drift_settings: DriftSettings | None = None,
    with_model: bool = True,
    target: str = "target",
    id_column: str | None = None,
    incoming: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Compute drift, write the reports, and return a JSON-able summary.

    Without ``reference``: the production model's training data (and its scores, with
    ``with_model``). Without ``current``: the newest ``n_batches`` batches of ``incoming``
    (default: the working root's ``data/incoming``).
    ``status`` is ``"skipped"`` (with a ``reason``) when there is nothing to compare.
    """
    if reference is None:
        report = drift_for_production(
            settings,
            current,
            drift_settings,
            n_batches=n_batches,
            with_model=with_model,
            incoming=incoming,
        )
        if report is None:
            has_prod = _production_metadata(settings) is not None
            why = "no incoming batch" if has_prod else "no production model (no reference)"
            return {"status": "skipped", "reason": why, "dataset_drift": False}
    else:
        paths = (
            [Path(p) for p in current]
            if current
            else newest_batches(incoming or settings.incoming_dir, n_batches)
        )
        if not paths:
            return {"status": "skipped", "reason": "no incoming batch", "dataset_drift": False}
        ref = read_frame(reference)
        spec = spec_for_reference(ref, target=target, id_column=id_column)
        report = detect_drift(
            ref,
            read_frame(paths),
            spec,
            drift_settings,
            reference_path=str(reference),
            current_path=[str(p) for p in paths],
        )
    folder = Path(out_dir) if out_dir is not None else report_folder(settings)
    files = write_reports(report, folder)
    return {
        "status": "ok",
        **summary_of(report, str(files["json"].resolve())),
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
    n_batches: int = 1,
    with_model: bool = True,
) -> tuple[dict[str, Any] | None, str]:
    """``TriggerState.drift`` and a note: from the report file when given, else computed.

    A given report that is missing or malformed raises :class:`DriftInputError`. Without one,
    drift of the newest batch(es) against production's training data is computed and its
    reports written under ``reports_dir/drift/``; ``(None, why)`` when there is nothing to
    compare (no production model, no incoming batch).
    """
    if drift_report_path is not None:
        return drift_from_report_file(drift_report_path), f"report {drift_report_path}"
    summary = monitor_drift(
        settings,
        current=current_paths,
        n_batches=n_batches,
        drift_settings=DriftSettings(dataset_drift_threshold=dataset_drift_threshold),
        with_model=with_model,
    )
    if summary["status"] == "skipped":
        return None, str(summary["reason"])
    return summary_of(summary, summary["report_path"], source="computed"), "computed"
