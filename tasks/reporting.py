"""What a run shows in the Prefect UI and tells the outside world: artifacts and events."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from model.registry import ModelRegistry
from model.settings import get_settings

LEADERBOARD_KEY = "model-leaderboard"
"""Artifact keys end in ``-<model name>``, so several models never overwrite each other."""


def artifact_key(base: str, model_name: str) -> str:
    return f"{base}-{model_name}"


@task(name="publish_trigger_decision")
def publish_trigger_decision(
    markdown: str, checks: list[dict[str, Any]], model_name: str = "demo"
) -> None:
    """Markdown explanation plus a table of every trigger checked."""
    create_markdown_artifact(
        markdown,
        key=artifact_key("trigger-decision", model_name),
        description="Why this run retrained or skipped",
    )
    create_table_artifact(
        checks, key=artifact_key("trigger-checks", model_name), description="Every trigger checked"
    )


@task(name="publish_comparison")
def publish_comparison(summary: dict[str, Any], markdown: str, model_name: str = "demo") -> None:
    """The comparison's decision, reasons and metric table, with where the reports are."""
    links = "\n".join(f"- {name}: `{path}`" for name, path in summary["reports"].items())
    create_markdown_artifact(
        f"{markdown}\n\n### Reports\n{links}\n",
        key=artifact_key("model-comparison", model_name),
        description=f"Candidate {summary['candidate_version']}: {summary['decision']}",
    )
    rows = [
        {"metric": name, "baseline": m["baseline"], "candidate": m["candidate"]}
        for name, m in summary["metrics"].items()
    ]
    create_table_artifact(
        rows,
        key=artifact_key("comparison-metrics", model_name),
        description="Metrics on the holdout",
    )


@task(name="publish_leaderboard")
def publish_leaderboard(model_name: str = "demo") -> None:
    """Keyed table of every version and its latest decision (the UI keeps its history)."""
    registry = ModelRegistry(get_settings().models_dir)
    rows = leaderboard_rows(registry)
    create_table_artifact(
        rows or [{"version": "(none)"}],
        key=artifact_key(LEADERBOARD_KEY, model_name),
        description="Model versions, newest first, with their status and last decision",
    )


def leaderboard_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """One row per version: status, when trained, validation AUC, and its last comparison —
    the primary metric's gain with its interval and p (not only the point estimate)."""
    decisions: dict[str, dict[str, Any]] = {}
    for event in registry.history():
        if event.get("event") == "compared" and event.get("version"):
            decisions[event["version"]] = event
    rows = []
    for info in reversed(registry.versions()):
        compared = decisions.get(info.version, {})
        test_auc = (compared.get("metrics") or {}).get("auc", {}).get("candidate")
        primary = compared.get("primary") or {}
        low, high = primary.get("lower_bound"), primary.get("upper_bound")
        rows.append(
            {
                "version": info.version,
                "status": info.status,
                "trained_at": info.trained_at,
                "val_auc": info.val_auc,
                "test_auc": test_auc,
                "decision": compared.get("decision"),
                "gain": primary.get("improvement"),
                "gain_interval": None if low is None else f"[{low:+.4f}, {high:+.4f}]",
                "p": primary.get("p_value"),
                "comparison_k": compared.get("holdout_uses"),
            }
        )
    return rows
