"""Prefect task over the comparator: score production and candidate on the clean holdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from model.cycle.evaluation import comparison_inputs
from model.data import load_split
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

    The comparison is number ``holdout_uses`` in this model's family (from the history) and
    is decided on the holdout rows from batches production has not seen, when there are
    enough. Returns a small summary (decision, reasons, key metrics, the primary test with
    its interval, report paths) and records it as a ``compared`` event in the history.
    """
    logger = get_run_logger()
    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    production = registry.production()
    baseline = load_model(registry.version_path(production.version)) if production else None
    candidate = load_model(registry.version_path(candidate_version))
    test_df = load_split(Path(prepared_dir), "test")
    holdout_uses, recent = comparison_inputs(settings, registry, test_df)
    comparator = ModelComparator(**comparator_params, holdout_uses=holdout_uses)
    result = comparator.compare(baseline, candidate, test_df, recent=recent)

    out = settings.reports_dir / "comparisons" / candidate_version
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(result, out / "comparison.json")
    html_path = write_html(result, out / "comparison.html")
    text = to_text(result)
    (out / "comparison.txt").write_text(text + "\n", encoding="utf-8")
    logger.info("\n%s", text)

    report = result.to_dict()
    primary = report["primary_metric"]
    summary = {
        "decision": result.decision,
        "reasons": list(result.reasons),
        "primary_metric": primary,
        "baseline_version": production.version if production else None,
        "candidate_version": candidate_version,
        "metrics": {
            name: {"baseline": m.get("baseline"), "candidate": m.get("candidate")}
            for name, m in report["metrics"].items()
        },
        "reports": {
            "comparison_json": str(json_path),
            "comparison_html": str(html_path),
            "comparison_text": str(out / "comparison.txt"),
        },
        "n_test": report.get("n_test"),
        "decided_on": report["decided_on"],
        "primary": report["primary"],
        "holdout_uses": result.holdout_uses,
        "alpha_spent": result.level if baseline is not None else 0.0,
        "candidate_auc": report["candidate_auc"],
        "populations": {
            name: {"n": pop["n"], "n_positive": pop["n_positive"]}
            for name, pop in report["populations"].items()
        },
    }
    kill_point("comparing")
    registry.record(
        "compared",
        version=candidate_version,
        baseline=summary["baseline_version"],
        decision=result.decision,
        reasons=summary["reasons"],
        metrics=summary["metrics"],
        reports=summary["reports"],
        primary=summary["primary"],
        decided_on=summary["decided_on"],
        holdout_uses=summary["holdout_uses"],
        holdout=Path(prepared_dir).name,  # the prepared data's content hash (its test split)
        alpha_spent=summary["alpha_spent"],
        candidate_auc=summary["candidate_auc"],
        populations=summary["populations"],
        run_id=run_id,
    )
    return {**summary, "markdown": to_markdown(result)}


def history_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The comparison as the registry history keeps it (the Markdown stays in the artifact)."""
    return {k: v for k, v in summary.items() if k != "markdown"}
