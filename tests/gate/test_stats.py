"""DeLong, the paired stratified bootstrap, McNemar and Holm against independent references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from fakes import ASAH
from scipy import stats as sps
from sklearn import metrics as skm

from model.gate.metrics import METRICS
from model.gate.stats import (
    BootstrapResult,
    auc_interval,
    delong_test,
    holm,
    mcnemar_test,
    midranks,
    minimum_detectable_effect,
    paired_bootstrap,
)


def delong_quadratic(y, s1, s2, alternative="two-sided"):
    """DeLong from its definition: placements psi(X_i, Y_j), O(m × n)."""
    y = np.asarray(y)
    comps = []
    for s in (s1, s2):
        x, z = s[y == 1][:, None], s[y == 0][None, :]
        psi = (x > z) + 0.5 * (x == z)
        comps.append((psi.mean(axis=1), psi.mean(axis=0)))  # V10 (positives), V01 (negatives)
    v10 = np.vstack([c[0] for c in comps])
    v01 = np.vstack([c[1] for c in comps])
    m, n = v10.shape[1], v01.shape[1]
    aucs = v10.mean(axis=1)
    s = np.cov(v10) / m + np.cov(v01) / n
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    diff = aucs[1] - aucs[0]
    z = diff / np.sqrt(var)
    p = {
        "two-sided": 2 * sps.norm.sf(abs(z)),
        "greater": sps.norm.sf(z),
        "less": sps.norm.cdf(z),
    }[alternative]
    return aucs[0], aucs[1], diff, np.sqrt(var), z, p


def binormal(rng, m, n, mu_b, mu_c, rho):
    """Paired binormal scores (as probabilities): true AUC = Phi(mu / sqrt(2))."""
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    cov = [[1, rho], [rho, 1]]
    noise = rng.multivariate_normal([0, 0], cov, size=m + n)
    sb = 1 / (1 + np.exp(-(mu_b * y + noise[:, 0])))
    sc = 1 / (1 + np.exp(-(mu_c * y + noise[:, 1])))
    return y, sb, sc


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_equals_quadratic_definition(seed: int, ties: bool, alternative: Any) -> None:
    rng = np.random.default_rng(seed)
    y, sb, sc = binormal(rng, 90, 160, 0.8, 1.1, 0.4)
    if ties:
        sb, sc = np.round(sb, 1), np.round(sc, 2)
    r = delong_test(y, sb, sc, alternative=alternative)
    a_b, a_c, diff, se, z, p = delong_quadratic(y, sb, sc, alternative)
    assert r.auc_baseline == pytest.approx(a_b, abs=1e-10)
    assert r.auc_candidate == pytest.approx(a_c, abs=1e-10)
    assert r.diff == pytest.approx(diff, abs=1e-10)
    assert r.se == pytest.approx(se, abs=1e-10)
    assert r.z == pytest.approx(z, abs=1e-10)
    assert r.p_value == pytest.approx(p, abs=1e-10)
    assert r.ci_low == pytest.approx(diff - 1.959963984540054 * se, abs=1e-10)
    assert r.ci_high == pytest.approx(diff + 1.959963984540054 * se, abs=1e-10)
    assert r.auc_candidate == pytest.approx(skm.roc_auc_score(y, sc), abs=1e-12)


def test_auc_interval_equals_the_quadratic_definition() -> None:
    rng = np.random.default_rng(5)
    y, sb, _ = binormal(rng, 70, 130, 0.9, 0.9, 0.3)
    sb = np.round(sb, 2)  # with ties
    x, z = sb[y == 1][:, None], sb[y == 0][None, :]
    psi = (x > z) + 0.5 * (x == z)
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)
    auc, got_se, low, high = auc_interval(y, sb, confidence=0.9)
    assert auc == pytest.approx(skm.roc_auc_score(y, sb), abs=1e-12)
    assert got_se == pytest.approx(se, abs=1e-12)
    assert (low, high) == pytest.approx(
        (auc - 1.6448536269514722 * se, auc + 1.6448536269514722 * se)
    )


def test_poisson_bootstrap_agrees_with_the_multinomial_one() -> None:
    """Both schemes estimate the same sampling variability (SDs within 15 % at B = 400)."""
    rng = np.random.default_rng(6)
    y, sb, sc = binormal(rng, 2000, 3000, 0.8, 1.0, 0.5)
    multi = paired_bootstrap(y, sb, sc, n_bootstrap=400, random_state=1, scheme="multinomial")
    poisson = paired_bootstrap(y, sb, sc, n_bootstrap=400, random_state=1, scheme="poisson")
    assert multi.scheme == "multinomial" and poisson.scheme == "poisson"
    for metric in ("auc", "accuracy", "f1", "log_loss", "brier", "average_precision"):
        assert poisson.sd(metric) == pytest.approx(multi.sd(metric), rel=0.15), metric
        assert poisson.observed[metric] == multi.observed[metric]
    # "auto" picks the Poisson scheme only when both classes are large
    assert paired_bootstrap(y, sb, sc, n_bootstrap=20).scheme == "poisson"
    few = np.r_[0:500, 2000:3000]  # 500 positives, 1,000 negatives
    small = paired_bootstrap(y[few], sb[few], sc[few], n_bootstrap=20)
    assert small.scheme == "multinomial"


@pytest.mark.skipif(not ASAH.exists(), reason="shared aSAH data set not present")
def test_delong_matches_proc_on_asah() -> None:
    """pROC: roc.test(roc(outcome, wfns), roc(outcome, s100b)): Z = 2.20898359144091,
    p-value = 0.0271757822291882 (full precision), to 1e-9."""
    df = pd.read_csv(ASAH)
    y = (df["outcome"] == "Poor").to_numpy().astype(int)
    r = delong_test(y, df["s100b"].to_numpy(), df["wfns"].to_numpy())
    assert r.z == pytest.approx(2.20898359144091, abs=1e-9)
    assert r.p_value == pytest.approx(0.0271757822291882, abs=1e-9)
    assert r.auc_candidate == pytest.approx(0.8237, abs=1e-4)
    assert r.auc_baseline == pytest.approx(0.7314, abs=1e-4)


def test_delong_identical_models_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    y, sb, _ = binormal(rng, 50, 50, 1.0, 1.0, 0.5)
    r = delong_test(y, sb, sb.copy(), alternative="greater")
    assert r.diff == 0 and r.se == 0 and r.z == 0
    assert r.p_value == pytest.approx(0.5)
    assert delong_test(y, sb, sb.copy()).p_value == pytest.approx(1.0)


def test_midranks_equal_scipy_rankdata() -> None:
    x = np.random.default_rng(4).integers(0, 20, 500).astype(float)
    np.testing.assert_allclose(midranks(x), sps.rankdata(x, method="average"))


def sklearn_deltas(y, sb, sc, w) -> dict[str, float]:
    out = {}
    for name, fn in {
        "accuracy": lambda s: skm.accuracy_score(y, s >= 0.5, sample_weight=w),
        "precision": lambda s: skm.precision_score(y, s >= 0.5, sample_weight=w, zero_division=0),
        "recall": lambda s: skm.recall_score(y, s >= 0.5, sample_weight=w),
        "f1": lambda s: skm.f1_score(y, s >= 0.5, sample_weight=w, zero_division=0),
        "auc": lambda s: skm.roc_auc_score(y, s, sample_weight=w),
        "log_loss": lambda s: -skm.log_loss(y, s, sample_weight=w),
        "average_precision": lambda s: skm.average_precision_score(y, s, sample_weight=w),
        "brier": lambda s: -skm.brier_score_loss(y, s, sample_weight=w),
    }.items():
        out[name] = fn(sc) - fn(sb)
    return out


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_resamples_equal_sklearn_on_the_same_counts(ties: bool) -> None:
    """Each vectorized resample equals scikit-learn with the same multinomial counts."""
    rng = np.random.default_rng(5)
    y, sb, sc = binormal(rng, 120, 260, 0.9, 1.2, 0.5)
    if ties:
        sb, sc = np.round(sb, 1), np.round(sc, 2)
    boot = paired_bootstrap(y, sb, sc, n_bootstrap=25, random_state=11)
    # The documented resampling: canonical order = baseline's sorted order per class;
    # resample r draws positives then negatives from SeedSequence(seed).spawn(B)[r].
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    pos = pos[np.argsort(-sb[pos], kind="stable")]
    neg = neg[np.argsort(sb[neg], kind="stable")]
    streams = np.random.SeedSequence(11).spawn(25)
    for r in (0, 7, 24):
        g = np.random.default_rng(streams[r])
        w = np.zeros(y.size)
        w[pos] = np.bincount(g.integers(0, pos.size, pos.size), minlength=pos.size)
        w[neg] = np.bincount(g.integers(0, neg.size, neg.size), minlength=neg.size)
        assert w[y == 1].sum() == pos.size and w[y == 0].sum() == neg.size  # stratified
        ref = sklearn_deltas(y, sb, sc, w)
        for name in METRICS:
            assert boot.deltas[name][r] == pytest.approx(ref[name], abs=2e-6), (name, r)


def test_bootstrap_is_reproducible_and_independent_of_chunking_and_threads() -> None:
    rng = np.random.default_rng(6)
    y, sb, sc = binormal(rng, 300, 500, 0.9, 1.1, 0.5)
    a = paired_bootstrap(y, sb, sc, n_bootstrap=200, random_state=3, n_jobs=1)
    b = paired_bootstrap(y, sb, sc, n_bootstrap=200, random_state=3, n_jobs=2, chunk_elements=5000)
    c = paired_bootstrap(y, sb, sc, n_bootstrap=200, random_state=4)
    for name in METRICS:
        np.testing.assert_array_equal(a.deltas[name], b.deltas[name])
    assert not np.array_equal(a.deltas["auc"], c.deltas["auc"])
    assert a.seed == 3
    assert paired_bootstrap(y, sb, sc, n_bootstrap=20).seed is not None


def test_bootstrap_p_value_and_interval_formulas() -> None:
    deltas = np.array([-0.02, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    boot = BootstrapResult({"auc": 0.03}, {"auc": deltas}, 10, 0, confidence=0.9)
    assert boot.p_value("auc") == pytest.approx((1 + 3) / 11)  # Δ* ≤ 0
    assert boot.p_value("auc", 0.02) == pytest.approx((1 + 5) / 11)
    assert boot.p_worse("auc", 0.01) == pytest.approx((1 + 9) / 11)  # Δ* ≥ −0.01
    lo, hi = boot.ci("auc")
    assert lo == pytest.approx(np.quantile(deltas, 0.05))
    assert hi == pytest.approx(np.quantile(deltas, 0.95))
    assert boot.sd("auc") == pytest.approx(np.std(deltas, ddof=1))


def test_minimum_detectable_effect_formula() -> None:
    assert minimum_detectable_effect(0.01, 0.05, 0.8) == pytest.approx(
        (1.6448536269514722 + 0.8416212335729143) * 0.01
    )


def test_mcnemar_exact_and_chi_square() -> None:
    y = np.ones(12 + 5, dtype=int)
    base = np.r_[np.ones(3), np.zeros(9), np.ones(5)]  # 3 rows only the baseline gets right
    cand = np.r_[np.zeros(3), np.ones(9), np.ones(5)]  # 9 rows only the candidate gets right
    r = mcnemar_test(y, base, cand)
    assert (r.b, r.c, r.method) == (3, 9, "exact")
    assert r.p_value == pytest.approx(sps.binomtest(9, 12, 0.5).pvalue)
    assert mcnemar_test(y, base, cand, "greater").p_value == pytest.approx(
        sps.binomtest(9, 12, 0.5, alternative="greater").pvalue
    )
    y = np.ones(80, dtype=int)
    base = np.r_[np.ones(30), np.zeros(50)]
    cand = np.r_[np.zeros(30), np.ones(50)]
    r = mcnemar_test(y, base, cand)
    assert r.method == "chi2"
    assert r.statistic == pytest.approx((abs(30 - 50) - 1) ** 2 / 80)
    assert r.p_value == pytest.approx(sps.chi2.sf((20 - 1) ** 2 / 80, 1))
    assert mcnemar_test(y, base, base).p_value == 1.0


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


@pytest.mark.slow
def test_bootstrap_ci_covers_true_auc_difference() -> None:
    """95 % CI coverage over 200 binormal data sets within [0.90, 0.98] (binomial margins)."""
    rng = np.random.default_rng(2024)
    mu_b, mu_c = 1.0, 1.3
    true_diff = sps.norm.cdf(mu_c / np.sqrt(2)) - sps.norm.cdf(mu_b / np.sqrt(2))
    covered = 0
    for i in range(200):
        y, sb, sc = binormal(rng, 200, 200, mu_b, mu_c, 0.5)
        boot = paired_bootstrap(y, sb, sc, n_bootstrap=500, random_state=i, n_jobs=1)
        lo, hi = boot.ci("auc", 0.95)
        covered += lo <= true_diff <= hi
    assert 180 <= covered <= 196, covered


@pytest.mark.parametrize("ties", [False, True])
def test_the_compiled_rank_kernel_equals_the_numpy_path(ties: bool) -> None:
    from model.gate import kernels
    from model.gate.metrics import RankIndex

    if not kernels.AVAILABLE:
        pytest.skip("numba is not installed: the numpy path is the only one")
    rng = np.random.default_rng(7)
    y, sb, sc = binormal(rng, 700, 1300, 0.8, 1.1, 0.4)
    if ties:  # ties among positives, none across classes
        sc = np.where(y == 1, np.round(sc, 2) + 1e-9, sc)
    w_pos = rng.poisson(1.0, (5, 700)).astype(np.float32)
    w_neg = rng.poisson(1.0, (5, 1300)).astype(np.float32)
    for s in (sb, sc):
        index = RankIndex.build(s[y == 1], s[y == 0], 0.5)
        assert (not index.cross_ties and index.pos_ties == ties) or s is sb
        fast = index.rank_metrics(w_pos, w_neg)
        slow = index.rank_metrics(w_pos, w_neg, compiled=False)
        np.testing.assert_allclose(fast[0], slow[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast[1], slow[1], rtol=0, atol=1e-12)
