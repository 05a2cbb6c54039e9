"""Prefect tasks over the live tests (:mod:`model.live`): look, act, report, announce.

A look reads the labelled prediction log and the registry and writes its reports; acting
records the look in the history and promotes, clears or rolls back. The flows hold the
promotion lock around both, so production cannot change between the look and the act.
Retries only on the IO tasks, never for bad input.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from model import clock
from model.live.challenger import apply_evaluation, evaluate_challenger
from model.live.outcome import LiveOutcome, LiveSettings, labelled, write_outcome_reports
from model.live.report import to_markdown
from model.live.watch import apply_watch, check_watch
from model.registry import ModelRegistry
from model.serving.loading import verify_loads
from model.settings import get_settings
from tasks._io import IO_RETRIES, IO_RETRY_DELAYS, keyed, retry_unless_bad_input

ROLLED_BACK_EVENT = "retraining.model.rolled_back"
REJECTED_EVENT = "retraining.model.rejected"


def _registry() -> ModelRegistry:
    return ModelRegistry(get_settings().models_dir, verify=verify_loads)


def _now(as_of: str | None) -> dt.datetime:
    if not as_of:
        return clock.now()
    t = dt.datetime.fromisoformat(as_of)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _report(outcome: LiveOutcome) -> LiveOutcome:
    return write_outcome_reports(outcome, get_settings().reports_dir)


@task(
    name="look_at_challenger",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def look_at_challenger(config: dict[str, Any], as_of: str | None = None) -> dict[str, Any]:
    """One look of the challenger's evaluation on the labelled log; reports written."""
    cfg = LiveSettings(**config)
    settings = get_settings()
    now = _now(as_of)
    rows = labelled(settings.root, settings.model_name, now, cfg.label_window_hours)
    outcome = _report(evaluate_challenger(_registry(), rows, cfg, settings.incoming_dir))
    get_run_logger().info("Challenger evaluation: %s", "; ".join(outcome.reasons))
    return outcome.to_dict()


@task(name="act_on_evaluation", retry_condition_fn=retry_unless_bad_input)
def act_on_evaluation(outcome: dict[str, Any], run_id: str | None = None) -> None:
    """Record the look; PROMOTE → promote the challenger, REJECT → clear it."""
    apply_evaluation(_registry(), LiveOutcome(**outcome), run_id=run_id)


@task(
    name="look_at_watch",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def look_at_watch(config: dict[str, Any], as_of: str | None = None) -> dict[str, Any]:
    """One look of the post-promotion watch on the labelled log; reports written."""
    cfg = LiveSettings(**config)
    settings = get_settings()
    now = _now(as_of)
    rows = labelled(settings.root, settings.model_name, now, cfg.label_window_hours)
    outcome = _report(check_watch(_registry(), rows, cfg, now))
    get_run_logger().info("Post-promotion watch: %s", "; ".join(outcome.reasons))
    return outcome.to_dict()


@task(name="act_on_watch", retry_condition_fn=retry_unless_bad_input)
def act_on_watch(outcome: dict[str, Any], run_id: str | None = None) -> str | None:
    """Record the look; ROLLBACK → restore the previous production. Returns it, or None."""
    return apply_watch(_registry(), LiveOutcome(**outcome), run_id=run_id)


@task(
    name="check_estimates",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_unless_bad_input,
)
def check_estimates(as_of: str | None = None, label_window_hours: float = 0.0) -> list[dict]:
    """Hold production's recorded label-free estimates against the labels that arrived (each
    checked once, :func:`model.cycle.estimate.check_pending_estimates`); the new checks."""
    from model.cycle.estimate import check_pending_estimates

    settings = get_settings()
    now = _now(as_of)
    rows = labelled(settings.root, settings.model_name, now, label_window_hours)
    checked = check_pending_estimates(settings, rows, now=now)
    for ev in checked:
        check = ev.get("check") or {}
        get_run_logger().log(
            30 if ev.get("missed") else 20,
            "Label-free estimate of %s on %s: realised AUC %.3f, estimated %.3f [%.3f, %.3f]%s",
            ev.get("version"),
            ", ".join(ev.get("days") or []),
            check.get("realised_auc"),
            check.get("expected_auc"),
            check.get("ci_low"),
            check.get("ci_high"),
            ": MISSED (unreliable until production changes)" if ev.get("missed") else "",
        )
    return checked


@task(name="publish_live_report")
def publish_live_report(outcome: dict[str, Any]) -> None:
    """The look's decision and every look so far, as artifacts of the run."""
    key = "challenger-evaluation" if outcome["kind"] == "challenger" else "post-promotion-watch"
    key = f"{key}-{get_settings().model_name}"  # every artifact key names its model
    links = "\n".join(f"- {k}: `{v}`" for k, v in (outcome.get("reports") or {}).items())
    create_markdown_artifact(
        to_markdown(outcome) + (f"\n### Reports\n{links}\n" if links else ""),
        key=keyed(key),
        description=f"{outcome.get('candidate_version')}: {outcome.get('decision')}",
    )
    looks = (outcome.get("state") or {}).get("looks") or []
    rows = [
        {
            "n": lk["n"],
            "diff": lk.get("diff"),
            "z": lk.get("z"),
            "boundary": lk.get("boundary"),
            "alpha_spent": lk["alpha_spent"],
            "decision": lk["decision"],
        }
        for lk in looks
    ]
    if rows:
        create_table_artifact(
            rows, key=keyed(f"{key}-looks"), description="Every look of this test"
        )


@task(name="emit_live_event")
def emit_live_event(event: str, outcome: dict[str, Any], version: str | None = None) -> None:
    """``retraining.model.rolled_back`` / ``rejected`` / ``promoted`` for the model."""
    settings = get_settings()
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": settings.event_resource_id,
            "prefect.resource.name": settings.model_name,
        },
        payload={
            "version": version or outcome.get("candidate_version"),
            "previous": outcome.get("candidate_version") if version else None,
            "baseline_version": outcome.get("baseline_version"),
            "reasons": outcome.get("reasons"),
            "report_path": (outcome.get("reports") or {}).get("json"),
            "rows": (outcome.get("look") or {}).get("n"),
            "alpha_spent": (outcome.get("look") or {}).get("alpha_spent"),
        },
    )
