"""The gate's guarantees, by simulation (issue 11), with binomial margins stated.

Scores come from :func:`model.gate.simulation.binormal_scores`: binormal, calibrated, with
known AUCs and within-class correlation; class counts are fixed exactly.

Margins: at a true level of at most 0.05·6/π² = 0.030 per comparison, 200 runs give on
average 6 promotions; P(Binomial(200, 0.05) > 18) < 0.03, so "≤ 18/200" fails only when the
rate is really above the nominal 5 %. Power: at a true rate of 0.97, P(Binomial(200, 0.97)
< 180) < 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from model.gate.comparator import ModelComparator
from model.gate.evidence import alpha_for, reuse_bound
from model.gate.simulation import binormal_scores as binormal
from model.gate.simulation import posterior


def promotions(runs: int, seed: int, gate: ModelComparator, **sim: float) -> int:
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(runs):
        y, sb, sc = binormal(rng, **sim)  # type: ignore[arg-type]
        count += gate.compare_scores(y, sb, sc).decision == "PROMOTE"
    return count


def gate(**kw: float | int | str) -> ModelComparator:
    kw.setdefault("n_bootstrap", 20)
    kw.setdefault("n_jobs", 1)
    return ModelComparator(**kw)  # type: ignore[arg-type]


def test_reuse_levels_sum_to_the_reuse_bound() -> None:
    assert alpha_for(1, 0.05) == 0.05  # fresh rows: the full level
    assert alpha_for(2, 0.05) == pytest.approx(0.05 * 6 / (np.pi**2 * 4))
    total = sum(alpha_for(j, 0.05) for j in range(2, 100_000))
    assert total < reuse_bound(0.05) == pytest.approx(0.05 * (1 - 6 / np.pi**2))
    assert total == pytest.approx(reuse_bound(0.05), rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n_pos", "n_neg"), [(1000, 1000), (100, 1900), (10_000, 10_000), (1000, 19_000)]
)
def test_equal_models_at_threshold_zero_are_rarely_promoted(n_pos: int, n_neg: int) -> None:
    count = promotions(
        200,
        n_pos + n_neg,
        gate(improvement_threshold=0.0),
        n_pos=n_pos,
        n_neg=n_neg,
        auc_b=0.8,
        auc_c=0.8,
        rho=0.5,
    )
    assert count <= 18, count


@pytest.mark.slow
@pytest.mark.parametrize("n", [2000, 20_000])
def test_a_true_gain_equal_to_the_threshold_is_rarely_promoted(n: int) -> None:
    """The threshold is tested, not just the sign: gain = T = 0.02 promotes ≤ 18/200."""
    sim = {"n_pos": n // 2, "n_neg": n // 2, "auc_b": 0.80, "auc_c": 0.82, "rho": 0.8}
    count = promotions(200, n + 1, gate(improvement_threshold=0.02), **sim)
    assert count <= 18, count
    # the lab's rule promotes about half of them at 20,000 rows (it does not test T)
    if n == 20_000:
        lab = promotions(200, n + 1, gate(improvement_threshold=0.02, rule="lab"), **sim)
        assert lab >= 60, lab


@pytest.mark.slow
def test_a_real_gain_above_the_threshold_is_promoted() -> None:
    """AUC 0.80 → 0.83, rho 0.8, T = 0.02, 10,000 + 10,000 rows: ≥ 180/200 promoted."""
    count = promotions(
        200,
        7,
        gate(improvement_threshold=0.02),
        n_pos=10_000,
        n_neg=10_000,
        auc_b=0.80,
        auc_c=0.83,
        rho=0.8,
    )
    assert count >= 180, count


def family(runs: int, control: bool) -> int:
    """Sequences of 12 comparisons of fresh equal candidates on one holdout that promote."""
    rng = np.random.default_rng(12)
    n, rho = 1000, 0.5
    y = np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]
    gates = {
        k: gate(improvement_threshold=0.0, holdout_uses=k if control else 1) for k in range(1, 13)
    }
    hits = 0
    for _ in range(runs):
        base = rng.normal(size=y.size)  # production's latent score on the fixed holdout
        mu = np.sqrt(2) * stats.norm.ppf(0.8)
        sb = posterior(base + mu * y, 0.8)
        for k in range(1, 13):
            noise = rng.normal(size=y.size)
            sc = posterior(rho * base + np.sqrt(1 - rho * rho) * noise + mu * y, 0.8)
            if gates[k].compare_scores(y, sb, sc).decision == "PROMOTE":
                hits += 1
                break
    return hits


@pytest.mark.slow
def test_false_promotions_on_one_reused_holdout_stay_bounded() -> None:
    """12 decisions of equal candidates (T = 0: at the edge of the null) on one holdout, the
    j-th at α·6/(π²j²) after a first at α: ≤ 50/500 sequences promote (their lifetime bound
    α(2 − 6/π²) = 0.07 → expected ≤ 35; P(Binomial(500, 0.07) > 50) < 0.02). Every decision at α
    (no reuse accounting) promotes far more."""
    controlled = family(500, control=True)
    uncontrolled = family(500, control=False)
    print(f"12 decisions on one holdout: {controlled}/500 promote; at alpha each {uncontrolled}")
    assert controlled <= 50, controlled
    assert uncontrolled >= 2 * max(controlled, 25), uncontrolled


@pytest.mark.parametrize("rule", ["threshold", "lab"])
@pytest.mark.parametrize("threshold", [0.0, 0.02])
def test_no_evidence_never_promotes(rule: str, threshold: float) -> None:
    rng = np.random.default_rng(3)
    y, sb, _ = binormal(rng, 1000, 1000, 0.8, 0.8, 0.5)
    g = gate(improvement_threshold=threshold, rule=rule)
    same = g.compare_scores(y, sb, sb.copy())
    assert same.decision == "REJECT"
    assert same.reasons == ["the candidate scores every holdout row as production does"]
    # a power-transformed copy: same ranking (se 0), worse calibration
    powered = g.compare_scores(y, sb, sb**0.7)
    assert powered.se == 0 and powered.decision == "REJECT", powered.reasons
    # accuracy with two changed rows, both for the better: bound 0 is not evidence
    wrong = np.flatnonzero((sb >= 0.5) != (y == 1))[:2]
    sc = sb.copy()
    sc[wrong] = np.where(y[wrong] == 1, 0.9, 0.1)
    acc = gate(primary_metric="accuracy", improvement_threshold=threshold, rule=rule)
    assert acc.compare_scores(y, sb, sc).decision != "PROMOTE"


@pytest.mark.parametrize("rule", ["threshold", "lab"])
def test_ten_positives_are_inconclusive(rule: str) -> None:
    rng = np.random.default_rng(4)
    y, sb, sc = binormal(rng, 10, 1990, 0.6, 0.95, 0.5)  # a huge gain on 10 positives
    result = gate(improvement_threshold=0.0, rule=rule).compare_scores(y, sb, sc)
    assert result.decision == "INCONCLUSIVE"
    assert "10 positives" in result.reasons[0]


def test_the_calibration_guardrail_catches_a_better_ranker_that_is_badly_calibrated() -> None:
    rng = np.random.default_rng(5)
    y, sb, sc = binormal(rng, 5000, 5000, 0.80, 0.86, 0.8)
    good = gate().compare_scores(y, sb, sc)
    assert good.decision == "PROMOTE"
    overconfident = np.clip(sc, 0.001, 0.999) ** 3  # same ranking, much worse log loss
    bad = gate().compare_scores(y, sb, overconfident)
    assert bad.metrics["auc"].improvement == pytest.approx(good.metrics["auc"].improvement)
    assert bad.decision == "REJECT"
    assert bad.reasons[0].startswith("Calibration guardrail (log_loss) breached")
    off = gate(calibration_margin=None).compare_scores(y, sb, overconfident)
    assert off.decision == "PROMOTE"


def test_the_decision_is_made_on_the_recent_rows_when_there_are_enough() -> None:
    """After drift: production is much worse on the new rows, the whole holdout barely moves."""
    rng = np.random.default_rng(6)
    y_old, sb_old, sc_old = binormal(rng, 4000, 4000, 0.85, 0.85, 0.8)
    y_new, sb_new, sc_new = binormal(rng, 400, 400, 0.70, 0.80, 0.5)
    y = np.r_[y_old, y_new]
    sb, sc = np.r_[sb_old, sb_new], np.r_[sc_old, sc_new]
    recent = np.r_[np.zeros(y_old.size, bool), np.ones(y_new.size, bool)]
    whole = gate(improvement_threshold=0.02).compare_scores(y, sb, sc)
    assert whole.decision != "PROMOTE" and whole.decided_on == "holdout"
    result = gate(improvement_threshold=0.02).compare_scores(y, sb, sc, recent=recent)
    assert result.decided_on == "recent" and result.decision == "PROMOTE", result.reasons
    assert result.n_test == 800 and set(result.populations) == {"holdout", "recent"}
    kinds = {g.kind: g for g in result.guardrails}
    assert kinds["holdout"].ok and kinds["holdout"].population == "holdout"
    # too few recent rows of a class: decided on the whole holdout
    few = np.zeros(y.size, bool)
    few[-50:] = True
    assert gate().compare_scores(y, sb, sc, recent=few).decided_on == "holdout"
    # a candidate much worse on the old rows is held back by the whole-holdout guardrail
    sc_bad = np.r_[np.clip(sb_old + rng.normal(0, 0.35, sb_old.size), 0, 1), sc_new]
    held = gate(improvement_threshold=0.02).compare_scores(y, sb, sc_bad, recent=recent)
    assert held.decision != "PROMOTE"
    assert any("Whole-holdout guardrail" in r for r in held.reasons), held.reasons


def test_decisions_on_reused_rows_need_stronger_evidence() -> None:
    rng = np.random.default_rng(8)
    y, sb, sc = binormal(rng, 3000, 3000, 0.80, 0.82, 0.8)
    first = gate(improvement_threshold=0.0, holdout_uses=1).compare_scores(y, sb, sc)
    tenth = gate(improvement_threshold=0.0, holdout_uses=10).compare_scores(y, sb, sc)
    assert first.level == pytest.approx(alpha_for(1, 0.05))
    assert tenth.level == pytest.approx(alpha_for(10, 0.05))
    assert tenth.lower_bound < first.lower_bound  # type: ignore[operator]
    assert first.to_dict()["holdout_uses"] == 1 and tenth.to_dict()["alpha_k"] == tenth.level


# ---------------------------------------------------------------------------- edge cases


def test_no_variability_with_a_gain_is_not_promoted_in_any_mode() -> None:
    y = np.r_[np.ones(200, np.int8), np.zeros(200, np.int8)]
    constant, perfect = np.full(y.size, 0.5), np.where(y == 1, 0.9, 0.1)
    for rule in ("threshold", "lab"):
        result = gate(rule=rule).compare_scores(y, constant, perfect)
        assert result.se == 0 and result.improvement == pytest.approx(0.5)
        assert result.decision == "INCONCLUSIVE", result.reasons
        assert "cannot be tested" in result.reasons[0]
        assert result.significant is False


def test_a_guardrail_metric_that_does_not_change_is_non_inferior() -> None:
    rng = np.random.default_rng(9)
    y, sb, sc = binormal(rng, 3000, 3000, 0.80, 0.84, 0.9)
    same_labels = np.where(sb >= 0.5, np.maximum(sc, 0.5), np.minimum(sc, 0.4999))
    g = gate(guardrails={"recall": 0.01}, guardrail_mode="non_inferiority")
    result = g.compare_scores(y, sb, same_labels)
    recall = next(x for x in result.guardrails if x.metric == "recall")
    assert recall.improvement == 0 and recall.ok, recall.describe()
    assert result.decision == "PROMOTE", result.reasons


def test_a_failed_policy_rejects_whatever_the_strength_of_the_primary_result() -> None:
    rng = np.random.default_rng(10)
    g = gate(improvement_threshold=0.0, policy={"f1": 0.5})
    for auc_c in (0.805, 0.85):
        y, sb, sc = binormal(rng, 2000, 2000, 0.80, auc_c, 0.8)
        result = g.compare_scores(y, sb, sc)
        assert result.decision == "REJECT" and "policy not met on f1" in result.reasons[0]


def test_the_lab_rule_reports_its_own_test() -> None:
    rng = np.random.default_rng(11)
    y, sb, sc = binormal(rng, 3000, 3000, 0.80, 0.82, 0.8)
    result = gate(rule="lab", improvement_threshold=0.01).compare_scores(y, sb, sc)
    primary = result.to_dict()["primary"]
    assert primary["null_value"] == 0.0 and primary["rule"] == "lab"
    assert result.significant == (result.decision == "PROMOTE")
    assert result.to_dict()["statistical_significance"]["significant"] == result.significant
    factor_texts = [f.text for f in result.factors]
    assert any(text.startswith("Lab rule: one-sided p(gain > 0)") for text in factor_texts)


def test_few_changed_predictions_cannot_promote_a_threshold_metric() -> None:
    rng = np.random.default_rng(12)
    y, sb, _ = binormal(rng, 1000, 1000, 0.8, 0.8, 0.5)
    wrong = np.flatnonzero((sb >= 0.5) != (y == 1))[:30]
    sc = sb.copy()
    sc[wrong] = np.where(y[wrong] == 1, 0.9, 0.1)  # 30 rows fixed, none broken
    result = gate(primary_metric="accuracy", improvement_threshold=0.0).compare_scores(y, sb, sc)
    assert result.population.changed == 30
    assert result.decision == "INCONCLUSIVE" and "only 30 rows change" in result.reasons[0]


def test_harm_guardrails_never_print_ok_beside_a_breach_they_do_not_count() -> None:
    rng = np.random.default_rng(13)
    y, sb, sc = binormal(rng, 1500, 1500, 0.80, 0.86, 0.8)
    g = gate(guardrails={"recall": 0.02, "precision": 0.02}, guardrail_mode="harm")
    for guard in g.compare_scores(y, sb, np.clip(sc - 0.04, 0, 1)).guardrails:
        if guard.kind == "user" and guard.ok:
            assert "interval" not in guard.describe()


def test_a_relative_threshold_scales_the_deciding_populations_baseline() -> None:
    rng = np.random.default_rng(14)
    y_old, sb_old, sc_old = binormal(rng, 3000, 3000, 0.90, 0.90, 0.8)
    y_new, sb_new, sc_new = binormal(rng, 500, 500, 0.70, 0.80, 0.5)
    y, sb, sc = np.r_[y_old, y_new], np.r_[sb_old, sb_new], np.r_[sc_old, sc_new]
    recent = [False] * y_old.size + [True] * y_new.size  # a list is accepted too
    g = gate(improvement_threshold=0.01, threshold_type="relative")
    result = g.compare_scores(y, sb, sc, recent=recent)  # type: ignore[arg-type]
    assert result.decided_on == "recent"
    recent_auc = result.populations["recent"].metrics["auc"].baseline
    assert result.threshold_absolute == pytest.approx(0.01 * recent_auc)
    few = np.zeros(y.size, bool)
    few[-60:] = True
    noted = g.compare_scores(y, sb, sc, recent=few)
    assert noted.decided_on == "holdout" and "decided on the whole holdout" in noted.notes[0]
