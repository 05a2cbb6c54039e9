"""The group-sequential test: boundaries against published values and Monte Carlo, DeLong's
paired and unpaired variances against a direct O(n²) computation, the state of the looks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from model.errors import ComparisonInputError
from model.live.sequential import (
    NEVER,
    Estimate,
    SequentialPlan,
    SequentialState,
    alpha_spent_by,
    boundaries,
    paired_difference,
    unpaired_difference,
)

# ---------------------------------------------------------------------------- boundaries


def test_obrien_fleming_boundaries_match_gsdesign() -> None:
    """gsDesign::gsDesign(k = 5, test.type = 1, alpha = 0.025, sfu = sfLDOF)$upper$bound:
    4.8769 3.3569 2.6803 2.2898 2.0310 (Lan–DeMets O'Brien–Fleming, equal looks)."""
    times = tuple(i / 5 for i in range(1, 6))
    cum = tuple(alpha_spent_by(t, 0.025) for t in times)
    got = boundaries(times, cum)
    assert got == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-3)


def _crossing_rates(times: np.ndarray, bounds: list[float], paths: int, seed: int) -> np.ndarray:
    """Monte Carlo: the share of null Brownian paths first crossing at each look."""
    rng = np.random.default_rng(seed)
    steps = np.diff(np.r_[0.0, times])
    s = np.cumsum(rng.standard_normal((paths, times.size)) * np.sqrt(steps), axis=1)
    z = s / np.sqrt(times)
    crossed = z >= np.asarray(bounds)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    return np.array([(first == k).mean() for k in range(times.size)])


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_boundaries_spend_alpha_as_declared_by_monte_carlo(spending: str) -> None:
    """Irregular looks (as when early looks are skipped): the cumulative crossing probability
    of null paths at each look equals the spending function, within 4 binomial SEs."""
    times = np.array([0.07, 0.2, 0.23, 0.41, 0.5, 0.77, 0.9, 1.0])
    alpha = 0.05
    cum = [alpha_spent_by(t, alpha, spending) for t in times]
    got = boundaries(tuple(times), tuple(cum))
    paths = 400_000
    rates = np.cumsum(_crossing_rates(times, got, paths, seed=7))
    margin = 4 * np.sqrt(np.asarray(cum) * (1 - np.asarray(cum)) / paths) + 1e-4
    assert np.all(np.abs(rates - cum) <= margin), (rates, cum)


def test_spending_functions() -> None:
    assert alpha_spent_by(0.0, 0.05) == 0.0
    assert alpha_spent_by(1.0, 0.05) == pytest.approx(0.05)
    assert alpha_spent_by(2.0, 0.05, "pocock") == pytest.approx(0.05)
    ts = np.linspace(0.01, 1, 50)
    of = [alpha_spent_by(t, 0.05) for t in ts]
    assert np.all(np.diff(of) > 0)
    assert alpha_spent_by(0.5, 0.05) < alpha_spent_by(0.5, 0.05, "pocock")  # OBF spends late
    with pytest.raises(ComparisonInputError, match="spending"):
        alpha_spent_by(0.5, 0.05, "haybittle")


def test_a_look_that_spends_nothing_new_is_never_crossed() -> None:
    assert boundaries((0.5, 0.6), (0.01, 0.01))[1] == NEVER


# ---------------------------------------------------------------------------- DeLong


def _placements_direct(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong's structural components by the O(n²) definition (ties count one half)."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(psi.mean()), psi.mean(axis=1), psi.mean(axis=0)


def _data(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    b = np.round(y * 0.8 + rng.normal(size=n), 1)  # rounded: ties inside and across classes
    c = np.round(0.7 * b + y * 0.5 + rng.normal(size=n), 1)
    return y, b, c


def test_paired_difference_matches_the_direct_computation() -> None:
    y, b, c = _data(1)
    a_b, v10_b, v01_b = _placements_direct(y, b)
    a_c, v10_c, v01_c = _placements_direct(y, c)
    m, n = v10_b.size, v01_b.size
    var = (np.var(v10_c - v10_b, ddof=1) / m) + (np.var(v01_c - v01_b, ddof=1) / n)
    est = paired_difference(y, b, c)
    assert est.diff == pytest.approx(a_c - a_b, abs=1e-12)
    assert est.se == pytest.approx(math.sqrt(var), rel=1e-9)
    assert (est.n, est.n_positive, est.n_negative) == (y.size, m, n)


def test_unpaired_difference_matches_the_direct_computation() -> None:
    """z = (A₂ − A₁)/√(V₁ + V₂), V = var(V10)/m + var(V01)/n on each model's own rows."""
    y1, b, _ = _data(2, 250)
    y2, _, c = _data(3, 320)
    a1, v10_1, v01_1 = _placements_direct(y1, b)
    a2, v10_2, v01_2 = _placements_direct(y2, c)
    v1 = np.var(v10_1, ddof=1) / v10_1.size + np.var(v01_1, ddof=1) / v01_1.size
    v2 = np.var(v10_2, ddof=1) / v10_2.size + np.var(v01_2, ddof=1) / v01_2.size
    est = unpaired_difference(y1, b, y2, c)
    assert est.diff == pytest.approx(a2 - a1, abs=1e-12)
    assert est.se == pytest.approx(math.sqrt(v1 + v2), rel=1e-9)
    assert est.n == 570
    assert est.n_positive == min(int(y1.sum()), int(y2.sum()))


def test_too_few_of_a_class_gives_an_untestable_estimate() -> None:
    est = paired_difference(np.array([1, 0, 0]), np.zeros(3), np.ones(3))
    assert math.isnan(est.se)


# ---------------------------------------------------------------------------- the state


def _est(n: int, diff: float, se: float, pos: int | None = None) -> Estimate:
    pos = n // 2 if pos is None else pos
    return Estimate(0.8, 0.8 + diff, diff, se, n, pos, n - pos, "delong-paired")


def test_looks_below_min_class_count_spend_nothing() -> None:
    state = SequentialState(SequentialPlan(alpha=0.03, n_max=1000, min_class_count=100))
    look = state.look(_est(150, 0.5, 0.01, pos=60))  # would cross any boundary
    assert look.decision == "INCONCLUSIVE" and look.boundary is None
    assert look.alpha_this_look == 0.0 and state.alpha_spent == 0.0
    assert look.rows_still_needed == math.ceil(150 * 100 / 60) - 150
    look = state.look(_est(400, 0.0, 0.02))
    assert look.boundary is not None and 0 < state.alpha_spent < 0.03
    # the first tested look spends α(t) of its own information fraction
    assert state.alpha_spent == pytest.approx(alpha_spent_by(0.4, 0.03))


def test_decisions_promote_reject_and_final() -> None:
    plan = SequentialPlan(alpha=0.05, n_max=1000)
    promote = SequentialState(plan)
    assert promote.look(_est(500, 0.05, 0.01)).decision == "PROMOTE"  # z = 5
    with pytest.raises(ComparisonInputError, match="already decided PROMOTE"):
        promote.look(_est(600, 0.05, 0.01))
    reject = SequentialState(plan)
    assert reject.look(_est(500, -0.05, 0.01)).decision == "REJECT"
    wait = SequentialState(plan)
    first = wait.look(_est(500, 0.01, 0.01))
    assert first.decision == "INCONCLUSIVE" and 0 < (first.rows_still_needed or 0) <= 500
    with pytest.raises(ComparisonInputError, match="no new rows"):
        wait.look(_est(500, 0.01, 0.01))
    last = wait.look(_est(1000, 0.01, 0.01))  # z = 1 at n_max: final, not shown
    assert last.decision == "REJECT" and last.final
    assert wait.alpha_spent == pytest.approx(0.05)


def test_final_look_of_a_watch_spends_the_rest_before_n_max() -> None:
    plan = SequentialPlan(kind="watch", alpha=0.05, n_max=5000, threshold=0.01)
    state = SequentialState(plan)
    state.look(_est(1000, -0.02, 0.01))  # z = 1 toward "worse by more than 0.01"
    assert state.decision == "INCONCLUSIVE"
    last = state.look(_est(1200, -0.02, 0.009), final=True)
    assert state.alpha_spent == pytest.approx(0.05)
    # the last boundary is below the fixed-sample one of the remaining α alone
    assert last.boundary is not None and last.boundary < sps.norm.isf(0.05 - 0.001)
    assert last.decision in ("ROLLBACK", "KEEP")


def test_watch_rolls_back_only_beyond_the_margin() -> None:
    plan = SequentialPlan(kind="watch", alpha=0.05, n_max=1000, threshold=0.01)
    worse = SequentialState(plan)
    assert worse.look(_est(900, -0.08, 0.01)).decision == "ROLLBACK"  # z = 7
    better = SequentialState(plan)
    assert better.look(_est(900, 0.08, 0.01)).decision == "INCONCLUSIVE"  # no early KEEP
    assert better.look(_est(1000, 0.08, 0.01)).decision == "KEEP"


def test_state_round_trips_through_json() -> None:
    state = SequentialState(SequentialPlan(alpha=0.02, n_max=800, comparison=3, budget=0.05))
    state.look(_est(100, 0.0, 0.05, pos=10))
    state.look(_est(400, 0.01, 0.02))
    again = SequentialState.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))
    assert again.plan == state.plan and again.looks == state.looks
    nxt = again.look(_est(600, 0.01, 0.015))
    assert nxt.alpha_spent > state.alpha_spent
    with pytest.raises(ComparisonInputError, match="unreadable sequential state"):
        SequentialState.from_dict({"plan": {"alpha": 0.05, "bogus": 1}})


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("alpha", 0.7, "alpha"),
        ("n_max", 5, "n_max"),
        ("spending", "linear", "spending"),
        ("kind", "other", "kind"),
        ("min_class_count", 1, "min_class_count"),
    ],
)
def test_bad_plans_are_refused_in_one_line(field: str, value: object, match: str) -> None:
    with pytest.raises(ComparisonInputError, match=match):
        SequentialPlan(**{field: value})  # type: ignore[arg-type]
