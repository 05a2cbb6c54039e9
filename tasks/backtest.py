"""Prefect tasks of a backtest (:mod:`model.backtest`): cut the history, serve and land each
batch in the policy's scratch root, force the ``always`` policy's promotions, sum a policy up,
write and publish the report. The cycles themselves are the real flows (``flows/backtest.py``
calls them)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from model.backtest import replay
from model.backtest.ledger import summarize
from model.backtest.report import to_markdown, write_reports
from model.backtest.result import summary_rows
from model.backtest.timeline import Batch, write_timeline
from model.registry import ModelRegistry
from model.settings import get_settings
from tasks._io import IO_RETRIES, IO_RETRY_DELAYS, retry_unless_bad_input

BACKTEST_KEY = "backtest"


@task(
    name="cut_history",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def cut_history(
    data_path: str,
    folder: str,
    start: str,
    period: str,
    target_column: str,
    time_column: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """The start window and one batch per period, written under ``folder``."""
    timeline = write_timeline(
        data_path,
        Path(folder),
        start=start,
        period=period,
        target_column=target_column,
        time_column=time_column,
        end=end,
    )
    get_run_logger().info(
        "%s: %d base rows before %s, then %d %s batch(es) of %d rows in all",
        timeline.source,
        timeline.base_rows,
        timeline.start,
        len(timeline.batches),
        period,
        sum(b.rows for b in timeline.batches),
    )
    return timeline.to_dict()


@task(name="stage_base_data")
def stage_base_data(base_path: str) -> str:
    """Copy the start window's rows to the scratch root's base data file; its path."""
    target = get_settings().data_dir / "raw" / Path(base_path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base_path, target)
    return str(target)


@task(name="serve_batch")
def serve_batch(batch: dict[str, Any], target_column: str, shadow: str) -> dict[str, Any]:
    """The scoring service's model set scores the batch into the prediction log."""
    served = replay.serve_batch(get_settings(), Batch(**batch), target_column, shadow)
    get_run_logger().info(
        "%s: %d rows served by %s%s: AUC %s",
        served.batch,
        served.rows,
        served.production,
        f" (shadow {', '.join(served.shadows)})" if served.shadows else "",
        "n/a" if served.auc is None else f"{served.auc:.4f}",
    )
    return served.to_dict()


@task(name="land_batch")
def land_batch(batch: dict[str, Any], target_column: str) -> dict[str, str | None]:
    """The period ended: its labels join the log, the batch lands in ``incoming/``."""
    settings = get_settings()
    labels = replay.add_labels(settings, Batch(**batch), target_column)
    landed = replay.land_batch(settings, Batch(**batch))
    return {"batch": str(landed), "labels": str(labels) if labels else None}


@task(name="live_due")
def live_due() -> dict[str, bool]:
    """Whether a challenger is set and whether a post-promotion watch is open."""
    return replay.live_due(get_settings())


@task(name="promote_anyway")
def promote_anyway(version: str, reason: str) -> bool:
    """The ``always`` policy: promote the candidate the gate did not (a ``forced`` event)."""
    promoted = replay.promote_anyway(get_settings(), version, reason)
    if promoted:
        get_run_logger().info("Forced %s into production: %s", version, reason)
    return promoted


@task(name="sum_up_policy")
def sum_up_policy(aucs: list[float | None]) -> dict[str, Any]:
    """The policy's summary, from its scratch registry's history and its batches' AUCs."""
    return summarize(ModelRegistry(get_settings().models_dir), aucs)


@task(name="write_backtest_reports", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS)
def write_backtest_reports(result: dict[str, Any], folder: str) -> dict[str, str]:
    """``backtest.json`` (for machines) and ``backtest.html`` (the report) in ``folder``."""
    return {k: str(v) for k, v in write_reports(result, Path(folder)).items()}


@task(name="publish_backtest")
def publish_backtest(result: dict[str, Any], reports: dict[str, str]) -> None:
    """The summary as artifacts: the verdict with where the reports are, and the table."""
    links = "\n".join(f"- {kind}: `{path}`" for kind, path in reports.items())
    model = result["model_name"]
    create_markdown_artifact(
        f"{to_markdown(result)}\n### Reports\n{links}\n",
        key=f"{BACKTEST_KEY}-{model}",
        description=f"Backtest of {len(result['policies'])} policies on "
        f"{len(result['timeline']['batches'])} batches",
    )
    create_table_artifact(
        summary_rows(result),
        key=f"{BACKTEST_KEY}-summary-{model}",
        description="Each policy: mean prequential AUC, trainings, promotions, α spent",
    )
