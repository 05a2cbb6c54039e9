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
from typing import Any

import pandas as pd

from model.live.outcome import (
    EVALUATED,
    LiveOutcome,
    LiveSettings,
    paired_estimate,
    routed_estimate,
    states_in_history,
    take_look,
)
from model.live.sequential import SequentialPlan, SequentialState
from model.registry import ModelRegistry


def evaluate_challenger(
    registry: ModelRegistry, rows: pd.DataFrame, cfg: LiveSettings
) -> LiveOutcome:
    """One look of the challenger's evaluation on the labelled log ``rows`` (adapter output of
    :func:`model.live.labelled_log.labelled_rows`); nothing is recorded here."""
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
    if cfg.mode == "routed":
        est = routed_estimate(rows, prod.version, chal.version)
    else:
        est = paired_estimate(rows, prod.version, chal.version)
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
    return take_look(out, state, est, final=False)


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
