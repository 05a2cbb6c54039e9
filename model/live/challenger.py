"""The challenger's evaluation on live labels, and acting on it.

Production (the champion) against the registry's challenger, one look per run of a
group-sequential test (:mod:`model.live.sequential`) over the labelled prediction log. Each
look is a ``challenger_evaluated`` history event carrying the whole state, so the next run
continues it. PROMOTE → the registry promotes the challenger with the evaluation as its
comparison; REJECT → the challenger is cleared; INCONCLUSIVE → keep collecting. Shadow mode
(both models scored every row: paired DeLong) is the default; routed mode compares the rows
each served (unpaired, one row per entity).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from model.live import labelled_log as log
from model.live.outcome import (
    EVALUATED,
    LiveOutcome,
    LiveSettings,
    routed_estimate,
    states_in_history,
    take_look,
)
from model.live.sequential import SequentialPlan, SequentialState, paired_difference
from model.registry import ModelRegistry


def evaluate_challenger(
    registry: ModelRegistry,
    rows: pd.DataFrame,
    cfg: LiveSettings,
    incoming: Path | None = None,
) -> LiveOutcome:
    """One look of the challenger's evaluation on the labelled log ``rows`` (adapter output of
    :func:`model.live.labelled_log.labelled_rows`); nothing is recorded here.

    In shadow mode a look whose sequential test says PROMOTE also holds the gate's guardrails
    on the same paired rows (:func:`hold_guardrails`, at the level α): a breach is REJECT, a
    guardrail not shown keeps the evaluation collecting (REJECT at ``n_max``). ``incoming``:
    the incoming folder, to name the labelled batches the rows reached as (the offline gate
    counts them as used once the evaluation has spent α)."""
    prod, chal = registry.production(), registry.challenger()
    if prod is None or chal is None:
        why = "no production model" if prod is None else "no challenger is set"
        return LiveOutcome("challenger", "skipped", None, [f"{why}: nothing to evaluate"])
    events = registry.history()
    open_ev = open_evaluation(events, EVALUATED, "evaluation", chal.version, prod.version)
    if open_ev is not None:
        test_id, state = open_ev
    else:
        plan = SequentialPlan(
            kind="challenger",
            alpha=cfg.alpha,  # live labels are fresh rows: the full level at any age
            n_max=cfg.n_max,
            spending=cfg.spending,  # type: ignore[arg-type]
            min_class_count=cfg.min_class_count,
            threshold=cfg.improvement_threshold,
        )
        test_id, state = uuid.uuid4().hex, SequentialState(plan)
    pairs = None
    if cfg.mode == "routed":
        est = routed_estimate(rows, prod.version, chal.version)
    else:
        pairs = log.paired_rows(rows, prod.version, chal.version)
        est = paired_difference(
            pairs[log.LABEL].to_numpy(),
            pairs[log.BASELINE_SCORE].to_numpy(float),
            pairs[log.CANDIDATE_SCORE].to_numpy(float),
        )
    out = LiveOutcome(
        "challenger",
        "looked",
        None,
        [],
        baseline_version=prod.version,
        candidate_version=chal.version,
        test_id=test_id,
        mode=cfg.mode,
        started_at=chal.set_at,
    )
    out = take_look(out, state, est, final=False)
    if pairs is not None and out.status == "looked":
        out.batches = log.labelled_batches(pairs, incoming)
        if out.decision == "PROMOTE":
            hold_guardrails(out, state, registry, pairs, cfg)
    return out


def hold_guardrails(
    out: LiveOutcome,
    state: SequentialState,
    registry: ModelRegistry,
    pairs: pd.DataFrame,
    cfg: LiveSettings,
) -> None:
    """The gate's guardrails (calibration, the user's) on the paired live rows, at α: what the
    offline gate would require of a promotion, so a candidate that goes live skips none. A
    breach turns the PROMOTE into REJECT; a guardrail not shown into "keep collecting" (at
    ``n_max``: REJECT)."""
    from model.gate.comparator import ModelComparator

    if cfg.calibration_margin is None and not cfg.guardrails:
        return
    thresholds = [
        float(registry.metadata(v).get("decision_threshold", 0.5))
        for v in (out.baseline_version, out.candidate_version)
        if v is not None
    ]
    result = ModelComparator(
        improvement_threshold=cfg.improvement_threshold,
        significance_level=cfg.alpha,
        calibration_margin=cfg.calibration_margin,
        guardrails=cfg.guardrails,
        guardrail_mode=cfg.guardrail_mode,
        min_class_count=cfg.min_class_count,
        n_bootstrap=200,
    ).compare_scores(
        pairs[log.LABEL].to_numpy(),
        pairs[log.BASELINE_SCORE].to_numpy(float),
        pairs[log.CANDIDATE_SCORE].to_numpy(float),
        *thresholds,
    )
    held = [g for g in result.guardrails if g.kind in ("calibration", "user")]
    out.guardrails = [g.to_dict() for g in held]
    breached = [g for g in held if g.breached]
    not_shown = [g for g in held if not g.ok and not g.breached]
    if not breached and not not_shown:
        return
    final = state.looks[-1].n >= state.plan.n_max
    decision = "REJECT" if breached or final else "INCONCLUSIVE"
    why = [g.describe() for g in (breached or not_shown)]
    verb = "held back by" if decision == "INCONCLUSIVE" else "rejected by"
    out.decision = decision
    out.reasons = [f"{out.reasons[0]}; but {verb} a guardrail on the live rows", *why]
    look = replace(state.looks[-1], decision=decision, reason="; ".join(out.reasons))
    state.looks[-1] = look
    out.state = state.to_dict()
    out.look = out.state["looks"][-1]


def promotion_summary(outcome: LiveOutcome) -> dict[str, Any]:
    """The comparison handed to ``registry.promote``: the evaluation that decided PROMOTE."""
    look = outcome.look or {}
    return {
        "decision": outcome.decision,
        "candidate_version": outcome.candidate_version,
        "baseline_version": outcome.baseline_version,
        "source": "challenger-evaluation",
        "evaluation": outcome.test_id,
        "mode": outcome.mode,
        "n": look.get("n"),
        "auc_baseline": look.get("auc_baseline"),
        "auc_candidate": look.get("auc_candidate"),
        "diff": look.get("diff"),
        "z": look.get("z"),
        "boundary": look.get("boundary"),
        "alpha_spent": outcome.alpha_spent,
        "reasons": outcome.reasons,
        "reports": outcome.reports or None,
    }


def apply_evaluation(
    registry: ModelRegistry, outcome: LiveOutcome, run_id: str | None = None
) -> dict[str, Any] | None:
    """Record the look (``challenger_evaluated``), then act: PROMOTE → promote the challenger
    with the evaluation as its comparison; REJECT → clear the challenger. Returns the event."""
    if outcome.status != "looked":
        return None
    ev = registry.record(EVALUATED, run_id=run_id, **outcome.history_fields())
    reason = "; ".join(outcome.reasons)
    if outcome.decision == "PROMOTE":
        assert outcome.candidate_version is not None
        registry.promote(
            outcome.candidate_version,
            f"challenger evaluation on live labels: {reason}",
            run_id=run_id,
            comparison=promotion_summary(outcome),
        )
    elif outcome.decision == "REJECT":
        registry.clear_challenger(
            reason=f"challenger evaluation on live labels: {reason}", run_id=run_id
        )
    return ev


def open_evaluation(
    events: Sequence[Mapping[str, Any]], kind: str, key: str, version: str, baseline: str
) -> tuple[str, SequentialState] | None:
    """The newest undecided test of ``version`` against ``baseline``, if any."""
    for ev in reversed(events):
        if (
            ev.get("event") == kind
            and ev.get("version") == version
            and ev.get("baseline_version") == baseline
        ):
            test_id = str(ev.get(key))
            state = states_in_history([ev], kind, key).get(test_id)
            return (test_id, state) if state is not None and not state.done else None
    return None


INCONCLUSIVE_SOURCE = "inconclusive"
"""The ``source`` of a challenger the retraining flow set (an INCONCLUSIVE candidate)."""


def clear_stale(registry: ModelRegistry, reason: str, run_id: str | None = None) -> str | None:
    """After production changed: clear a challenger the flow set (it was INCONCLUSIVE against
    the production that is gone); a challenger a person set stays. Returns the one cleared."""
    info = registry.challenger()
    if info is None or registry.challenger_source() != INCONCLUSIVE_SOURCE:
        return None
    registry.clear_challenger(reason=reason, run_id=run_id)
    return info.version
