"""Prefect task over the comparator: score production and candidate on the clean holdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from model.cycle.evaluation import (
    comparison_inputs,
    gate_in_memory_size,
    record_comparison,
    spilled_comparison,
)
from model.data import load_manifest, load_split
from model.gate.comparator import ModelComparator
from model.gate.report import to_markdown, to_text, write_html, write_json
from model.registry import ModelRegistry
from model.settings import get_settings
from model.training.artifact import load_model
from tasks.faults import kill_point


@task(name="compare_models")
def compare_models(
    candidate_version: str,
    prepared_dir: str,
    comparator_params: dict[str, Any],
    run_id: str | None = None,
) -> dict[str, Any]:
    """Compare the candidate with production on the prepared test split; write the reports.

    The decision is made on the holdout rows from batches production has not seen, when
    there are enough, at the level its rows allow (fresh rows: α; rows earlier decisions used:
    less, :mod:`model.gate.evidence`). Returns a small summary (decision, reasons, key
    metrics, the primary test with its interval, report paths) and records it as a
    ``compared`` event in the history, with the evidence the next decision reads.
    """
    logger = get_run_logger()
    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    production = registry.production()
    baseline = load_model(registry.version_path(production.version)) if production else None
    candidate = load_model(registry.version_path(candidate_version))
    manifest = load_manifest(Path(prepared_dir))
    comparator = ModelComparator(**comparator_params)
    estimate = gate_in_memory_size(manifest)
    if estimate is not None and estimate > settings.memory_budget:
        logger.info(
            "compare: the holdout would take about %d MiB in memory, over the memory budget of "
            "%d MiB: it is scored and measured in batches (the spilled gate)",
            estimate >> 20,
            settings.memory_budget >> 20,
        )
        result = spilled_comparison(settings, registry, manifest, comparator, baseline, candidate)
    else:
        test_df = load_split(manifest, "test")
        inputs = comparison_inputs(settings, registry, test_df, manifest)
        result = comparator.compare(baseline, candidate, test_df, **inputs.kwargs())

    out = settings.reports_dir / "comparisons" / candidate_version
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(result, out / "comparison.json")
    html_path = write_html(result, out / "comparison.html")
    text = to_text(result)
    (out / "comparison.txt").write_text(text + "\n", encoding="utf-8")
    logger.info("\n%s", text)
    reports = {
        "comparison_json": str(json_path),
        "comparison_html": str(html_path),
        "comparison_text": str(out / "comparison.txt"),
    }
    kill_point("comparing")
    event = record_comparison(
        registry,
        result,
        candidate_version,
        production.version if production else None,
        reports=reports,
        holdout=Path(prepared_dir).name,  # the prepared data's content hash (its test split)
        run_id=run_id,
    )
    summary = {
        "decision": result.decision,
        "reasons": list(result.reasons),
        "primary_metric": result.primary_metric,
        "baseline_version": event.get("baseline"),
        "candidate_version": candidate_version,
        "metrics": event.get("metrics", {}),
        "reports": reports,
        "n_test": result.n_test,
        "decided_on": result.decided_on,
        "primary": event.get("primary"),
        "holdout_uses": result.holdout_uses,
        "alpha_spent": result.alpha_spent,
        "untested": result.untested,
        "evidence": result.evidence,
        "primary_shown": result.primary_shown,
        "candidate_auc": event.get("candidate_auc"),
        "populations": event.get("populations", {}),
    }
    return {**summary, "markdown": to_markdown(result)}


def history_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The comparison as the registry history keeps it (the Markdown stays in the artifact)."""
    return {k: v for k, v in summary.items() if k != "markdown"}
