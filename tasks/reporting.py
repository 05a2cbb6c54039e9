"""What a run shows in the Prefect UI and tells the outside world: artifacts and events."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.settings import PREFECT_UI_URL

from model.cycle.leaderboard import leaderboard
from model.registry import ModelRegistry
from model.settings import get_settings
from tasks._io import keyed

LEADERBOARD_KEY = "model-leaderboard"
"""Artifact keys end in ``-<model name>``, so several models never overwrite each other."""


def artifact_key(base: str, model_name: str) -> str | None:
    """``<base>-<model>``; None in a backtest's scratch root (:func:`tasks._io.keyed`)."""
    return keyed(f"{base}-{model_name}")


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
def publish_leaderboard(model_name: str = "demo", holdout_dir: str | None = None) -> None:
    """Every retained version re-scored on the current holdout (``holdout_dir``: this cycle's
    prepared data; default: production's), as a keyed table the UI keeps the history of."""
    settings = get_settings()
    registry = ModelRegistry(settings.models_dir)
    if holdout_dir is None:
        holdout_dir = production_prepared_dir(settings, registry)
    ui = PREFECT_UI_URL.value()
    rows = leaderboard(registry, holdout_dir, ui_url=str(ui) if ui else None)
    create_table_artifact(
        rows or [{"version": "(none)"}],
        key=artifact_key(LEADERBOARD_KEY, model_name),
        description="Retained versions re-scored on the current holdout (hash in `holdout`): "
        "status, trigger, AUC, Δ vs production with its DeLong interval and p; the numbers as "
        "registered are on the holdout named in `registered_on_holdout`",
    )


def production_prepared_dir(settings: Any, registry: ModelRegistry) -> str | None:
    """The prepared data production was trained on (its test split: the current holdout when
    no cycle prepared newer data)."""
    prod = registry.production()
    if prod is None:
        return None
    ref = (registry.metadata(prod.version).get("data_manifest") or {}).get("path")
    return str(settings.resolve(ref)) if ref else None


def leaderboard_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """The leaderboard on production's own holdout (see :func:`model.cycle.leaderboard`)."""
    return leaderboard(registry, production_prepared_dir(get_settings(), registry))
