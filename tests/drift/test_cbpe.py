"""CBPE: calibration against scikit-learn, the expected AUC and counts against brute force,
the interval's coverage, and the done-when simulation (covariate shift, calibrated model)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model.drift.cbpe import (
    ISOTONIC_MIN_ROWS,
    Calibrator,
    estimate_performance,
    expected_auc,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
    realised_auc,
)
from model.errors import DriftInputError

N_FEATURES = 4
SLOPE = 0.72  # true logit = -1 + SLOPE * sum(x): AUC 0.81 at SD 1, 0.72 at SD 0.6


def _draw(
    rng: np.random.Generator, n: int, sd: float, noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows from the label model P(y|x) (unchanged by the shift, which only scales x);
    production's scores are the true logit distorted (0.7·t + 0.4) plus a little noise."""
    x = rng.normal(size=(n, N_FEATURES)) * sd
    t = -1.0 + SLOPE * x.sum(axis=1)
    p = 1 / (1 + np.exp(-t))
    y = (rng.random(n) < p).astype(np.int8)
    s = 1 / (1 + np.exp(-(0.7 * t + 0.4 + rng.normal(0, noise, n))))
    return s, y, p


def _brute_auc(scores: np.ndarray, pos: np.ndarray) -> float:
    num = den = 0.0
    for i, j in itertools.permutations(range(scores.size), 2):
        w = pos[i] * (1 - pos[j])
        den += w
        num += w * (1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0)
    return num / den


def test_platt_matches_sklearn_logistic_regression() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(3)
    s, y, _ = _draw(rng, 2000, 1.0)
    cal = fit_platt(s, y)
    # the reference: Platt's targets as a weighted two-row-per-row logistic regression
    n_pos, n_neg = y.sum(), y.size - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.log(s / (1 - s))
    lr = linear_model.LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    lr.fit(
        np.r_[x, x][:, None],
        np.r_[np.ones(s.size), np.zeros(s.size)],
        sample_weight=np.r_[t, 1 - t],
    )
    assert cal.method == "platt"
    assert cal.a == pytest.approx(lr.coef_[0, 0], abs=1e-5)
    assert cal.b == pytest.approx(lr.intercept_[0], abs=1e-5)
    assert cal(s) == pytest.approx(lr.predict_proba(x[:, None])[:, 1], abs=1e-6)


def test_platt_is_finite_on_a_separable_split() -> None:
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    cal = fit_platt(s, [0, 0, 0, 1, 1, 1])
    assert np.isfinite(cal.a) and np.isfinite(cal.b) and cal.a > 0


def test_isotonic_matches_sklearn() -> None:
    isotonic = pytest.importorskip("sklearn.isotonic")
    rng = np.random.default_rng(4)
    s, y, _ = _draw(rng, 3000, 1.0)
    s = np.round(s, 3)  # ties
    cal = fit_isotonic(s, y)
    ref = isotonic.IsotonicRegression(out_of_bounds="clip").fit(s, y)
    grid = np.linspace(0, 1, 501)
    assert cal(grid) == pytest.approx(np.clip(ref.predict(grid), 1e-6, 1 - 1e-6), abs=1e-9)


def test_isotonic_only_from_10000_validation_rows() -> None:
    rng = np.random.default_rng(5)
    s, y, _ = _draw(rng, ISOTONIC_MIN_ROWS, 1.0)
    assert fit_calibrator(s[:-1], y[:-1]).method == "platt"
    assert fit_calibrator(s, y).method == "isotonic"
    assert fit_calibrator(s, y, "platt").method == "platt"


def test_expected_auc_against_brute_force_pairs() -> None:
    rng = np.random.default_rng(6)
    s = np.round(rng.random(40), 1)  # many ties
    p = rng.random(40)
    assert expected_auc(s, p) == pytest.approx(_brute_auc(s, p), abs=1e-12)
    y = (rng.random(40) < 0.4).astype(float)  # 0/1 "probabilities": the realised AUC
    assert expected_auc(s, y) == pytest.approx(realised_auc(y, s), abs=1e-12)
    metrics = pytest.importorskip("sklearn.metrics")
    assert realised_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)


def test_expected_counts_and_realised_side() -> None:
    s = np.array([0.2, 0.4, 0.6, 0.8])
    identity = Calibrator("platt", 0)
    est = estimate_performance(s, identity, 0.5, labels=[0, 1, 0, 1], n_draws=50)
    assert est.counts["tp"]["expected"] == pytest.approx(0.6 + 0.8)
    assert est.counts["fp"]["expected"] == pytest.approx(0.4 + 0.2)
    assert est.counts["fn"]["expected"] == pytest.approx(0.2 + 0.4)
    assert est.counts["tn"]["expected"] == pytest.approx(0.8 + 0.6)
    assert est.counts["tp"]["sd"] == pytest.approx(np.sqrt(0.6 * 0.4 + 0.8 * 0.2))
    assert est.rates["accuracy"] == pytest.approx(2.8 / 4)
    assert est.realised is not None
    assert est.realised["counts"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert est.realised["auc"] == pytest.approx(0.75)
    d = est.to_dict()
    assert d["method"] == "cbpe" and d["auc"] == est.auc and d["calibration"]["method"] == "platt"


def test_bad_input_is_a_clear_error() -> None:
    identity = Calibrator("platt", 0)
    with pytest.raises(DriftInputError, match=r"probabilities in \[0, 1\], got 1.5"):
        estimate_performance([0.2, 1.5], identity, 0.5)
    with pytest.raises(DriftInputError, match="3 labels for 2 scores"):
        estimate_performance([0.2, 0.5], identity, 0.5, labels=[0, 1, 1])
    with pytest.raises(DriftInputError, match="labels must be 0 or 1"):
        fit_platt([0.2, 0.5], [0, 2])
    with pytest.raises(DriftInputError, match="no rows"):
        fit_platt([], [])


def test_interval_coverage() -> None:
    """150 independent (validation, batch) pairs: the 95 % interval covers the batch's
    realised AUC in 150·0.95 ± 3 SD (binomial: 134-150) of them, and the mean standard error
    agrees with the spread of estimate − realised within 25 %."""
    covered, misses, ses = 0, [], []
    for seed in range(150):
        rng = np.random.default_rng(seed)
        sv, yv, _ = _draw(rng, 5000, 1.0, noise=0.0)
        s, y, _ = _draw(rng, 5000, 0.6, noise=0.0)
        est = estimate_performance(s, fit_calibrator(sv, yv), 0.5, labels=y, seed=seed)
        assert est.realised is not None
        covered += est.auc_ci_low <= est.realised["auc"] <= est.auc_ci_high
        misses.append(est.auc - est.realised["auc"])
        ses.append(est.auc_se)
    assert covered >= 134, covered
    assert np.std(misses) == pytest.approx(np.mean(ses), rel=0.25)


def test_large_batch_interval_uses_a_subset_and_shrinks() -> None:
    rng = np.random.default_rng(8)
    sv, yv, _ = _draw(rng, 5000, 1.0)
    cal = fit_calibrator(sv, yv)
    small = estimate_performance(_draw(rng, 5000, 0.6)[0], cal, 0.5)
    large = estimate_performance(_draw(rng, 80_000, 0.6)[0], cal, 0.5)
    assert large.auc_se_labels == pytest.approx(small.auc_se_labels / 4, rel=0.2)
    assert large.auc == pytest.approx(small.auc, abs=0.01)


def test_done_when_covariate_shift_estimate_tracks_realised_auc() -> None:
    """Issue 13: all feature SDs × 0.6 move production's realised AUC 0.81 → 0.72 while
    P(y|x) is unchanged; calibrated (Platt) on a 5,000-row validation split, CBPE's mean
    |estimated − realised| over 50 batches of 5,000 rows is ≤ 0.015; the reference AUC misses
    by ≥ 0.05."""
    rng = np.random.default_rng(2026)
    sv, yv, _ = _draw(rng, 5000, 1.0)
    cal = fit_calibrator(sv, yv)
    reference_auc = realised_auc(yv, sv)
    assert cal.method == "platt" and reference_auc is not None
    big_s, big_y, _ = _draw(rng, 200_000, 1.0)
    assert realised_auc(big_y, big_s) == pytest.approx(0.81, abs=0.01)
    errors, naive, realised = [], [], []
    for i in range(50):
        s, y, _ = _draw(rng, 5000, 0.6)
        est = estimate_performance(s, cal, 0.5, labels=y, seed=i, n_draws=200)
        assert est.realised is not None
        errors.append(abs(est.auc - est.realised["auc"]))
        naive.append(abs(reference_auc - est.realised["auc"]))
        realised.append(est.realised["auc"])
    assert np.mean(realised) == pytest.approx(0.72, abs=0.01)  # the shift moved it ≥ 0.05
    assert np.mean(errors) <= 0.015, np.mean(errors)
    assert np.mean(naive) >= 0.05, np.mean(naive)


def test_drift_report_shows_the_estimate_beside_the_realised_auc() -> None:
    from model.drift import detect_drift, spec_for_reference
    from model.drift.cbpe_render import estimate_markdown

    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"a": rng.normal(size=500), "target": rng.integers(0, 2, 500)})
    cur = pd.DataFrame({"a": rng.normal(size=500), "target": rng.integers(0, 2, 500)})
    report = detect_drift(ref, cur, spec_for_reference(ref, target="target"))
    assert report.to_dict()["performance_estimate"] is None
    assert "Performance estimate" not in report.to_markdown()
    s, y, _ = _draw(rng, 2000, 0.6)
    est = estimate_performance(s, fit_calibrator(s, y), 0.5, labels=y, n_draws=50)
    est.reference = {"validation_auc": 0.81, "holdout_auc": None}
    report.performance_estimate = est.to_dict()
    d = report.to_dict()["performance_estimate"]
    assert d["auc"] == pytest.approx(est.auc) and d["realised"]["auc"] == est.realised["auc"]
    md = report.to_markdown()
    assert "## Performance estimate (CBPE" in md
    row = (
        f"| ROC AUC | {est.auc:.3f} [{est.auc_ci_low:.3f}, {est.auc_ci_high:.3f}] (95%) | "
        f"{est.realised['auc']:.3f} |"
    )
    assert row in md
    assert "no recorded holdout AUC interval" in md
    assert md.endswith(estimate_markdown(d))
    page = report.to_html()
    assert 'id="performance-estimate"' in page and f"{est.auc:.3f}" in page
    unlabelled = estimate_performance(s, fit_calibrator(s, y), 0.5, n_draws=50).to_dict()
    assert "| ROC AUC |" in estimate_markdown(unlabelled)
    assert "no labels" in estimate_markdown(unlabelled)
