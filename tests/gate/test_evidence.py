"""Evidence is accounted by rows (:mod:`model.gate.evidence`): the level of a decision follows
from the batches of its rows and the batch sets of the earlier decisions that spent α."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from model.cycle.evaluation import inputs_from_history, record_comparison
from model.gate.comparator import ModelComparator
from model.gate.evidence import BASE, alpha_for, batch_ids, earlier_decisions, evidence_for
from model.gate.simulation import binormal_scores
from model.registry import ModelRegistry

A = 0.05


def test_a_decision_with_a_new_batch_is_fresh_and_reuse_is_paid_per_set_of_rows() -> None:
    earlier = [frozenset({"b1"}), frozenset({"b1", "b2"})]
    fresh = evidence_for(["b1", "b2", "b3"], earlier, A)  # the accumulating window + b3
    assert fresh.fresh and fresh.new_batches == ("b3",) and fresh.level == A
    again = evidence_for(["b1", "b2"], earlier, A)  # exactly the rows of one earlier decision
    assert again.uses == 2 and again.level == pytest.approx(A * 6 / (math.pi**2 * 4))
    third = evidence_for(["b1", "b2"], [*earlier, frozenset({"b1", "b2"})], A)
    assert third.uses == 3 and third.level == pytest.approx(alpha_for(3, A))
    subset = evidence_for(["b2"], earlier, A)  # used before, never alone: at least the 2nd use
    assert subset.uses == 2 and not subset.fresh
    assert "fresh rows, full level" in fresh.describe() and "decision 2" in again.describe()
    with pytest.raises(ValueError):
        alpha_for(0, A)


def test_only_decisions_that_tested_and_recorded_their_rows_count() -> None:
    events = [
        {"event": "compared", "alpha_spent": 0.05, "evidence": {"batches": ["b1"]}},
        {"event": "compared", "alpha_spent": 0.0, "evidence": {"batches": ["b2"]}},  # untested
        {"event": "compared", "alpha_spent": 0.03, "baseline": "v0001"},  # before evidence
        {"event": "challenger_evaluated", "alpha_spent": 0.05},  # live rows: another sample
        {"event": "gate_reset"},
    ]
    assert earlier_decisions(events) == [frozenset({"b1"})]
    assert batch_ids([None, float("nan"), "date=x"]) == [BASE, BASE, "date=x"]


def test_the_comparator_takes_its_level_from_the_rows_it_decides_on(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y, sb, sc = binormal_scores(rng, 600, 1400, 0.775, 0.80, 0.6)
    order = rng.permutation(y.size)  # classes mixed across the batches
    y, sb, sc = y[order], sb[order], sc[order]
    batches = np.repeat(["base", "date=1", "date=2"], [500, 750, 750])
    recent = batches == "date=2"  # production was trained on base and date=1
    registry = ModelRegistry(tmp_path / "models")
    gate = ModelComparator(n_bootstrap=20, n_jobs=1)
    decided = []
    for _ in range(3):  # the same rows three times: fresh, then reuse j = 2, 3
        inputs = inputs_from_history(registry.history(), batches.tolist(), recent)
        result = gate.compare_scores(y, sb, sc, **inputs.kwargs())
        record_comparison(registry, result, "v0002", "v0001", run_id="r")
        decided.append((result.decided_on, result.holdout_uses, result.level))
    assert decided == [
        ("recent", 1, A),
        ("recent", 2, pytest.approx(alpha_for(2, A))),
        ("recent", 3, pytest.approx(alpha_for(3, A))),
    ]
    event = registry.history()[-1]
    assert (
        event["evidence"]["batches"] == ["date=2"]
        and event["alpha_spent"] == event["evidence"]["level"]
    )
    # guardrails stay at α whatever the decision's level
    assert {g.level for g in result.guardrails} == {A}
    # without a history the caller states the use (retrain compare --holdout-uses)
    stated = ModelComparator(n_bootstrap=20, n_jobs=1, holdout_uses=2).compare_scores(y, sb, sc)
    assert stated.level == pytest.approx(alpha_for(2, A)) and stated.evidence["source"] == "given"


def test_a_comparison_that_tests_nothing_spends_nothing_and_says_why(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    y, sb, _ = binormal_scores(rng, 50, 950, 0.8, 0.8, 0.6)  # 50 positives: too few
    registry = ModelRegistry(tmp_path / "models")
    gate = ModelComparator(n_bootstrap=20, n_jobs=1)
    batches = ["date=1"] * y.size
    for scores, why in ((sb, "scores every"), (np.clip(sb * 0.9, 0, 1), "too little evidence")):
        inputs = inputs_from_history(registry.history(), batches, None)
        result = gate.compare_scores(y, sb, scores, **inputs.kwargs())
        assert result.alpha_spent == 0.0 and why in (result.untested or "")
        event = record_comparison(registry, result, "v0002", "v0001")
        assert event["alpha_spent"] == 0.0 and why in event["untested"]
    assert earlier_decisions(registry.history()) == []  # its rows stay fresh
    nothing = gate.compare_scores(y, None, sb)
    assert nothing.decision == "PROMOTE" and nothing.alpha_spent == 0.0
    assert "no production model" in (nothing.untested or "")
