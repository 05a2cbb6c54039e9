"""Evidence is accounted by rows (:mod:`model.gate.evidence`): the level of a decision follows
from the batches of its rows and the batch sets of the earlier decisions that spent α."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from model.cycle.evaluation import inputs_from_history, record_comparison
from model.gate.comparator import ModelComparator
from model.gate.evidence import (
    BASE,
    alpha_for,
    batch_ids,
    earlier_decisions,
    evidence_for,
    reuse_bound,
)
from model.gate.simulation import binormal_scores
from model.registry import ModelRegistry

A = 0.05


BIG = (450, 1050)  # a week's batch of 1,500 rows
TINY = (15, 35)  # 50 rows: too few to decide alone


def test_new_rows_enough_to_decide_alone_are_fresh_and_reuse_is_paid_per_batch() -> None:
    earlier = [frozenset({"b1"}), frozenset({"b1", "b2"})]
    fresh = evidence_for({"b1": BIG, "b2": BIG, "b3": BIG}, earlier, A)  # the window + b3
    assert fresh.fresh and fresh.new_batches == ("b3",) and fresh.level == A
    assert fresh.new_rows == BIG and dict(fresh.batch_uses) == {"b1": 2, "b2": 1, "b3": 0}
    # exactly the rows of an earlier decision: j = 1 + the most decisions a batch was in (b1: 2)
    again = evidence_for({"b1": BIG, "b2": BIG}, earlier, A)
    assert again.uses == 3 and again.level == pytest.approx(A * 6 / (math.pi**2 * 9))
    subset = evidence_for({"b2": BIG}, earlier, A)  # b2 decided once: the second use
    assert subset.uses == 2 and not subset.fresh
    # a handful of new rows does not make the stable holdout fresh (the loophole issue 23's
    # review found): its new rows must hold min_class_count of each class
    decided = [*earlier, frozenset({"base"})]
    holdout = evidence_for({"base": BIG, "b1": BIG, "t1": TINY}, decided, A)
    assert not holdout.fresh and holdout.new_batches == ("t1",) and holdout.uses == 3
    enough = evidence_for({"base": BIG, "t1": TINY, "t2": (90, 210)}, [frozenset({"base"})], A)
    assert enough.fresh and enough.new_rows == (105, 245)
    assert "fresh rows, full level" in fresh.describe() and "too few" in holdout.describe()
    assert "every batch of its rows decided before" in again.describe()
    with pytest.raises(ValueError):
        alpha_for(0, A)


def test_the_reused_decisions_of_one_batch_spend_at_most_the_reuse_bound() -> None:
    """Whatever the sequence of decisions, the reused ones a batch takes part in test at
    strictly increasing j, so their levels sum below α(1 − 6/π²)."""
    rng = np.random.default_rng(0)
    earlier: list[frozenset[str]] = []
    spent: dict[str, float] = {}
    names = [f"b{i}" for i in range(8)]
    for _ in range(300):
        chosen = rng.choice(names, size=int(rng.integers(1, 5)), replace=False)
        counts = {b: TINY if rng.random() < 0.5 else BIG for b in chosen}
        ev = evidence_for(counts, earlier, A)
        if not ev.fresh:
            for b in chosen:
                spent[b] = spent.get(b, 0.0) + ev.level
        earlier.append(frozenset(str(b) for b in chosen))
    assert max(spent.values()) <= reuse_bound(A)


def test_a_live_evaluation_uses_the_labelled_batches_its_rows_reached() -> None:
    events = [
        {"event": "challenger_evaluated", "evaluation": "e1", "alpha_spent": 0.0,
         "batches": ["date=1"]},  # tested nothing yet
        {"event": "challenger_evaluated", "evaluation": "e1", "alpha_spent": 0.002,
         "batches": ["date=1", "date=2"]},
        {"event": "challenger_evaluated", "evaluation": "e1", "alpha_spent": 0.01,
         "batches": ["date=2", "date=3"]},
    ]  # fmt: skip
    assert earlier_decisions(events) == [frozenset({"date=1", "date=2", "date=3"})]


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
