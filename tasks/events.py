"""Events a cycle tells the outside world, one per outcome, so automations can act on each.

- ``retraining.model.promoted`` / ``.rejected`` / ``.inconclusive``: the gate's decision;
  payload version, previous, reasons, report_path, metrics, flow_run_id.
- ``retraining.cycle.skipped``: no trigger fired (or the cooldown held one); payload reasons,
  suppressed (the trigger the cooldown held), flow_run_id.
- ``retraining.cycle.failed``: the cycle raised, or its process died (then the next cycle
  emits it); payload version, error, flow_run_id.
- ``retraining.batch.quarantined``: a cycle set an incoming batch aside (``tasks/batches.py``);
  payload batch, path, reason, time, flow_run_id.

Every event's resource is ``retraining.model.<name>`` with ``prefect.resource.name`` = the
model's name, so one automation can match all models (``retraining.model.*``) or one; a
backtest's scratch cycles name ``retraining.sandbox.<sandbox>.<name>`` instead, which nothing
of the real model follows.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.events import emit_event

from model.settings import get_settings

OUTCOME_EVENTS = {
    "PROMOTE": "retraining.model.promoted",
    "REJECT": "retraining.model.rejected",
    "INCONCLUSIVE": "retraining.model.inconclusive",
}
SKIPPED_EVENT = "retraining.cycle.skipped"
FAILED_EVENT = "retraining.cycle.failed"
LABELS_ADDED_EVENT = "retraining.labels.added"
ESTIMATE_MISSED_EVENT = "retraining.estimate.missed"
QUARANTINED_EVENT = "retraining.batch.quarantined"


def model_resource(model_name: str) -> dict[str, str]:
    """``retraining.model.<name>`` (``retraining.sandbox.<sandbox>.<name>`` in a backtest's
    scratch root: :attr:`model.settings.Settings.event_resource_id`)."""
    return {
        "prefect.resource.id": get_settings().for_model(model_name).event_resource_id,
        "prefect.resource.name": model_name,
    }


@task(name="emit_outcome_event")
def emit_outcome_event(model_name: str, summary: dict[str, Any], run_id: str | None) -> str:
    """The gate's outcome as an event; returns the event name."""
    name = OUTCOME_EVENTS[summary["decision"]]
    metrics = summary.get("metrics") or {}
    emit_event(
        event=name,
        resource=model_resource(model_name),
        payload={
            "version": summary.get("candidate_version"),
            "previous": summary.get("baseline_version"),
            "reasons": list(summary.get("reasons") or []),
            "report_path": (summary.get("reports") or {}).get("comparison_html"),
            "metrics": {
                k: (metrics.get(k) or {}).get("candidate")
                for k in ("auc", "f1", "log_loss")
                if k in metrics
            },
            "flow_run_id": run_id,
        },
    )
    return name


@task(name="emit_cycle_event")
def emit_cycle_event(
    model_name: str,
    event: str,
    *,
    reasons: list[str] | None = None,
    suppressed: str | None = None,
    version: str | None = None,
    error: str | None = None,
    run_id: str | None = None,
) -> None:
    """``retraining.cycle.skipped`` or ``retraining.cycle.failed``."""
    payload: dict[str, Any] = {"flow_run_id": run_id}
    if event == SKIPPED_EVENT:
        payload.update(reasons=list(reasons or []), suppressed=suppressed)
    else:
        payload.update(version=version, error=error)
    emit_event(event=event, resource=model_resource(model_name), payload=payload)


@task(name="emit_promoted_event")
def emit_promoted_event(
    version: str, metrics: dict[str, Any], model_name: str | None = None
) -> None:
    """``retraining.model.promoted`` for a promotion outside a retraining cycle (the challenger
    evaluation), so a serving system reloads; for the current model by default."""
    emit_event(
        event=OUTCOME_EVENTS["PROMOTE"],
        resource=model_resource(model_name or get_settings().model_name),
        payload={"version": version, "metrics": metrics},
    )


def emit_estimate_missed(model_name: str, checked: dict[str, Any]) -> None:
    """``retraining.estimate.missed``: labels contradicted a label-free estimate (both numbers:
    the estimate recomputed for the labelled rows with its range, and the realised AUC)."""
    check = checked.get("check") or {}
    emit_event(
        event=ESTIMATE_MISSED_EVENT,
        resource=model_resource(model_name),
        payload={
            "version": checked.get("version"),
            "estimated_auc": check.get("expected_auc"),
            "estimated_range": [check.get("ci_low"), check.get("ci_high")],
            "realised_auc": check.get("realised_auc"),
            "rows": check.get("n_rows"),
            "days": checked.get("days"),
            "batches": checked.get("batches"),
            "history_event": checked.get("id"),
        },
    )


def emit_labels_added(model_name: str, result: dict[str, Any]) -> bool:
    """``retraining.labels.added`` after ``retrain labels add`` wrote a labelled batch: the
    challenger evaluation and the post-promotion watch deployments run on it. Sent (and
    drained, the CLI is short-lived) only when a Prefect server is configured; returns whether
    it was."""
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return False
    emit_event(
        event=LABELS_ADDED_EVENT,
        resource=model_resource(model_name),
        payload={"report_path": result.get("batch"), "added": result.get("added")},
    )
    EventsWorker.instance().drain()
    return True
