"""The ``evaluate-and-promote`` subflow of a retraining cycle: compare the candidate with
production on the clean holdout, then promote it, record the decision, or, when the holdout
cannot decide (INCONCLUSIVE), make it the shadow challenger to be decided on live labels.
Orchestration only: the work is in ``tasks/`` and ``model/``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.promotion import promotion_guard
from model.cycle.config import RetrainingConfig
from model.cycle.evaluation import manifest_batches
from model.settings import model_scope
from tasks.compare import compare_models, history_summary
from tasks.events import emit_outcome_event
from tasks.faults import kill_point
from tasks.registry import promote_model, record_event, set_shadow_challenger
from tasks.reporting import publish_comparison

DECISION_EVENTS = {"REJECT": "rejected", "INCONCLUSIVE": "inconclusive"}


def cycle_run_id() -> str | None:
    """The top-level ``retraining`` run's id: every history event of one cycle carries it."""
    return str(flow_run.root_flow_run_id) if flow_run.id else None


@flow(name="evaluate-and-promote", flow_run_name="evaluate-{candidate_version}")
def evaluate_and_promote(
    config: dict[str, Any], candidate_version: str, prepared_dir: str
) -> dict[str, Any]:
    """Compare candidate and production; promote on PROMOTE, else record the decision.

    The comparison, the promotion and the decision's record hold the promotion lock together
    (:func:`promotion_guard`), so a concurrent cycle compares against the production this one
    leaves.
    """
    cfg = RetrainingConfig(**config)
    with model_scope(cfg.model_name):
        logger = get_run_logger()
        run_id = cycle_run_id()
        with promotion_guard():
            summary = compare_models(
                candidate_version, prepared_dir, cfg.comparator_params(), run_id
            )
            decision = summary["decision"]
            reason = "; ".join(summary["reasons"])
            if decision == "PROMOTE":
                kill_point("promoting")
                comparison = history_summary(summary)
                promote_model(candidate_version, reason, comparison=comparison, run_id=run_id)
            else:
                record_event(
                    DECISION_EVENTS[decision],
                    version=candidate_version,
                    baseline=summary["baseline_version"],
                    reasons=summary["reasons"],
                    reports=summary["reports"],
                    batches=manifest_batches(prepared_dir),  # judged: no re-trigger on these alone
                    run_id=run_id,
                )
                if _goes_live(decision, summary, cfg):
                    summary["challenger"] = set_shadow_challenger(
                        candidate_version,
                        f"INCONCLUSIVE offline ({reason}); decided on live labels instead",
                        run_id=run_id,
                    )
        publish_comparison(summary, summary["markdown"], cfg.model_name)
        emit_outcome_event(cfg.model_name, summary, run_id)
        if decision == "PROMOTE":
            logger.info("Promoted %s: %s", candidate_version, reason)
        else:
            logger.info("%s %s: %s", decision, candidate_version, reason)
        return summary


def _goes_live(decision: str, summary: dict[str, Any], cfg: RetrainingConfig) -> bool:
    """An INCONCLUSIVE candidate against a production model becomes the shadow challenger
    (``inconclusive_challenger``), so the evidence goes on accumulating on live labels; not
    when a guardrail was not shown, since the live test judges the AUC only."""
    return (
        decision == "INCONCLUSIVE"
        and cfg.inconclusive_challenger
        and summary.get("baseline_version") is not None
        and bool(summary.get("guardrails_shown", True))
    )
