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
from tasks.registry import (
    clear_stale_challenger,
    promote_model,
    record_event,
    set_shadow_challenger,
)
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
                clear_stale_challenger(
                    f"production changed to {candidate_version}: the challenger was "
                    "INCONCLUSIVE against the production before it",
                    run_id=run_id,
                )
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
                live, why_not = _goes_live(decision, summary, cfg)
                if live:
                    summary["challenger"] = set_shadow_challenger(
                        candidate_version,
                        f"INCONCLUSIVE offline ({reason}); decided on live labels instead",
                        run_id=run_id,
                    )
                elif why_not:
                    summary["challenger"] = {"version": None, "reason": why_not}
                    logger.info("%s is not evaluated live: %s", candidate_version, why_not)
        publish_comparison(summary, summary["markdown"], cfg.model_name)
        emit_outcome_event(cfg.model_name, summary, run_id)
        if decision == "PROMOTE":
            logger.info("Promoted %s: %s", candidate_version, reason)
        else:
            logger.info("%s %s: %s", decision, candidate_version, reason)
        return summary


def _goes_live(
    decision: str, summary: dict[str, Any], cfg: RetrainingConfig
) -> tuple[bool, str | None]:
    """Whether an INCONCLUSIVE candidate becomes the shadow challenger
    (``inconclusive_challenger``), so the evidence on its gain goes on accumulating on live
    labels, and why not when it does not: the live test judges an absolute AUC gain (holding
    the guardrails on the same rows), so a model decided on another metric or a relative
    threshold stays offline."""
    if decision != "INCONCLUSIVE" or summary.get("baseline_version") is None:
        return False, None
    if not cfg.inconclusive_challenger:
        return False, "inconclusive_challenger is off"
    if cfg.primary_metric != "auc" or cfg.threshold_type != "absolute":
        return False, (
            f"the live evaluation tests an absolute AUC gain; this model's gate is "
            f"{cfg.threshold_type} {cfg.primary_metric}"
        )
    return True, None
