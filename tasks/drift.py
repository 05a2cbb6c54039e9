"""Thin Prefect tasks over ``model.drift``: compute and write the drift reports, publish them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from model.cluster import with_engine
from model.cycle.monitor import monitor_drift
from model.drift import DriftSettings
from model.settings import get_settings
from tasks.events import emit_estimate_missed
from tasks.reporting import artifact_key

DRIFT_REPORT_KEY = "drift-report"
DRIFT_TABLE_KEY = "drift-features"
"""Artifact keys end in ``-<model name>`` (:func:`tasks.reporting.artifact_key`)."""


@task(name="compute_drift")
def compute_drift(
    reference_path: str | None,
    current_paths: list[str] | None,
    drift_settings: dict[str, Any],
    n_batches: int | None = None,
    with_model: bool = True,
    out_dir: str | None = None,
    incoming_path: str | None = None,
    target_column: str = "target",
    id_column: str | None = None,
    data_engine: str | None = None,
) -> dict[str, Any]:
    """Drift of the new batches against the reference; writes drift.{json,md,html};
    ``data_engine``: the model's (None: the environment's, :mod:`model.cluster`).

    Returns the summary of :func:`model.cycle.monitor.monitor_drift` (paths, not DataFrames).
    """
    logger = get_run_logger()
    summary = monitor_drift(
        with_engine(get_settings(), data_engine),
        reference_path,
        current_paths,
        out_dir=out_dir,
        n_batches=n_batches,
        drift_settings=DriftSettings.from_dict(drift_settings),
        with_model=with_model,
        target=target_column,
        id_column=id_column,
        incoming=incoming_path,
    )
    if summary["status"] == "skipped":
        logger.info("Drift not computed: %s", summary["reason"])
    else:
        logger.info(
            "Drift share %.2f (%d features drifted: %s); dataset drift: %s; report %s",
            summary["drift_share"],
            len(summary["drifted_features"]),
            ", ".join(summary["drifted_features"]) or "none",
            summary["dataset_drift"],
            summary["report_path"],
        )
        streamed = summary["current"].get("streamed")
        if streamed:
            logger.info(
                "The data was read in batches within the memory budget of %d MiB (read whole, "
                "drift would take about %.1f GiB)",
                streamed["memory_budget"] >> 20,
                streamed["in_memory_estimate"] / 2**30,
            )
        est = summary.get("performance_estimate") or {}
        _log_estimate(est)
        if est.get("missed_event"):  # labels of these rows contradicted the estimate
            emit_estimate_missed(get_settings().model_name, _checked(est))
        extra = summary["current"].get("extra_columns")
        if extra:
            logger.warning("Columns not in the reference were ignored: %s", ", ".join(extra))
        if summary.get("blocked"):
            logger.info("No retraining trigger from this drift: %s", summary["blocked"])
    return summary


def _checked(est: dict[str, Any]) -> dict[str, Any]:
    from model.cycle.estimate import missed_event

    return missed_event(est, (est.get("reference") or {}).get("version") or "")


def _log_estimate(est: dict[str, Any] | None) -> None:
    """One log line: production's estimated AUC (CBPE) beside the realised one."""
    if not est:
        return
    if not est.get("available"):
        get_run_logger().info("Performance estimate not available: %s", est.get("reason"))
        return
    realised = (est.get("realised") or {}).get("auc")
    get_run_logger().info(
        "Estimated AUC (CBPE, no labels) %.3f [%.3f, %.3f]; realised AUC %s",
        est["auc"],
        est["auc_ci_low"],
        est["auc_ci_high"],
        "unknown (no labels)" if realised is None else f"{realised:.3f}",
    )
    if est.get("reliable") is False:
        get_run_logger().warning("The estimate is unreliable: %s", est.get("unreliable_because"))


@task(name="publish_drift_report")
def publish_drift_report(summary: dict[str, Any]) -> None:
    """Markdown summary (with where the reports are) and a per-column table artifact."""
    model = summary.get("model_name") or get_settings().model_name
    markdown = Path(summary["reports"]["md"]).read_text(encoding="utf-8")
    links = "\n".join(f"- {kind}: `{path}`" for kind, path in summary["reports"].items())
    verdict = "dataset drift" if summary["dataset_drift"] else "no dataset drift"
    create_markdown_artifact(
        f"{markdown}\n### Reports\n{links}\n",
        key=artifact_key(DRIFT_REPORT_KEY, model),
        description=f"Drift share {summary['drift_share']:.2f}: {verdict}",
    )
    create_table_artifact(
        summary["table"],
        key=artifact_key(DRIFT_TABLE_KEY, model),
        description="Drift statistics per column",
    )
