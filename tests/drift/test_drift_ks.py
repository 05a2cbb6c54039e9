"""KS p-values against scipy's ``ks_2samp``: exact below the cut-off, asymptotic above it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from model.data import FeatureSpec
from model.drift import detect_drift
from model.drift.numeric import KS_ASYMPTOTIC_MIN_N, SortedValues, _ks_pvalue

REL_TOL = 0.02  # the documented bound for p >= P_FLOOR
P_FLOOR = 1e-10


def assert_close_to_scipy(p: float, expected: float) -> None:
    if expected >= P_FLOOR:
        assert abs(p - expected) / expected <= REL_TOL, (p, expected)
    else:  # far tail: both decisively tiny
        assert p < 10 * P_FLOOR, (p, expected)


def ks_of(n: int, m: int, shift: float, seed: int) -> tuple[float, float, float, float]:
    """(our statistic, our p, scipy's statistic, scipy's p) for N(0, 1) vs N(shift, 1)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n), rng.normal(shift, 1, m)
    f = detect_drift(
        pd.DataFrame({"x": a}), pd.DataFrame({"x": b}), FeatureSpec(numeric=["x"])
    ).features["x"]
    ref = stats.ks_2samp(a, b)
    return f.statistic, f.p_value, float(ref.statistic), float(ref.pvalue)


@pytest.mark.parametrize(
    ("n", "m", "shift"),
    [
        (30_000, 20_000, 0.0),  # n_eff 12,000: below the cut-off, scipy's own distribution
        (30_000, 20_000, 0.03),
        (60_000, 60_000, 0.0),  # n_eff 30,000: just above the cut-off
        (60_000, 60_000, 0.02),
        (60_000, 60_000, 0.04),
        (200_000, 200_000, 0.0),  # n_eff 100,000: D of 0.005-0.02 in the shifted ones
        (200_000, 200_000, 0.0125),
        (200_000, 200_000, 0.02),
        (200_000, 200_000, 0.03),
        (200_000, 200_000, 0.05),
    ],
)
def test_ks_pvalue_matches_ks_2samp(n: int, m: int, shift: float) -> None:
    stat, p, ref_stat, ref_p = ks_of(n, m, shift, seed=int(1000 * shift) + n)
    assert stat == ref_stat  # the same number, not just close
    if round(n * m / (n + m)) < KS_ASYMPTOTIC_MIN_N:
        assert p == pytest.approx(ref_p, rel=1e-9, abs=1e-300)
    else:
        assert_close_to_scipy(p, ref_p)
    if shift == 0.0:
        assert p > 1e-3  # no shift: not significant at these seeds
    elif shift >= 0.02:
        assert p < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("shift", [0.0, 0.01, 0.0125, 0.02, 0.05])
def test_ks_pvalue_matches_ks_2samp_at_a_million_rows(shift: float) -> None:
    """n_eff 500,000 and D of 0.004-0.02: where scipy's exact ``kstwo`` costs ~0.5 s."""
    stat, p, ref_stat, ref_p = ks_of(1_000_000, 1_000_000, shift, seed=7)
    assert stat == ref_stat  # the same number, not just close
    assert_close_to_scipy(p, ref_p)


def test_asymptotic_error_bound_at_the_cut_off() -> None:
    """At the cut-off (the worst n_eff using the limit), every D with p >= 1e-10 is within 2 %."""
    en = KS_ASYMPTOTIC_MIN_N
    n = m = 2 * en  # n_eff = n * m / (n + m) = en
    d_floor = optimize.brentq(
        lambda d: math.log(stats.kstwo.sf(d, en)) - math.log(P_FLOOR), 1e-4, 0.1, xtol=1e-12
    )
    unused = SortedValues(np.empty(0), 0)  # read only below 10,000 pairs
    worst = 0.0
    for d in np.linspace(0.1 / math.sqrt(en), d_floor, 60):
        expected = float(stats.kstwo.sf(d, en))
        p = _ks_pvalue(float(d), n, m, unused, unused)
        worst = max(worst, abs(p - expected) / expected)
    assert 0.005 < worst <= REL_TOL  # the limit is in use (not exact) and within the bound
