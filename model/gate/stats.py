"""Statistics for comparing two classifiers scored on the same rows.

- :func:`paired_bootstrap` — the paired bootstrap of every metric's improvement (defined in
  :mod:`model.gate.bootstrap`, re-exported here: ``from model.stats import paired_bootstrap``).
- :func:`auc_interval` — DeLong's variance of one model's AUC and its normal interval.
- :func:`delong_test` — DeLong's test for the AUC difference, exact, O(n log n) with
  midranks (Sun & Xu 2014).
- :func:`mcnemar_test` — McNemar's test of the accuracy difference (exact binomial for few
  discordant pairs).
- :func:`holm` — Holm's step-down correction across a family of tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from model.gate.bootstrap import (  # re-exported: model.stats is public
    POISSON_MIN_CLASS,
    BootstrapResult,
    paired_bootstrap,
)

Alternative = Literal["two-sided", "greater", "less"]


# ---------------------------------------------------------------------------- DeLong


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of AUC(candidate) − AUC(baseline) on paired scores."""

    auc_baseline: float
    auc_candidate: float
    diff: float  # candidate − baseline
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    alternative: str
    confidence: float = 0.95
    se_baseline: float = 0.0  # DeLong's standard error of each AUC on its own
    se_candidate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc_baseline": self.auc_baseline,
            "auc_candidate": self.auc_candidate,
            "diff": self.diff,
            "se": self.se,
            "z": _finite_or_none(self.z),
            "p_value": self.p_value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "alternative": self.alternative,
        }


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (O(n log n))."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = xs.size
    breaks = np.flatnonzero(xs[1:] != xs[:-1]) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [n]))
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _placements(scores: np.ndarray, is_pos: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and structural components: V10 per positive, V01 per negative (one sort).

    With midranks over all rows (Tz) and within each class (Tx, Ty):
    V10 = (Tz − Tx) / n for positives and V01 = 1 − (Tz − Ty) / m for negatives.
    """
    m = int(is_pos.sum())
    n = is_pos.size - m
    order = np.argsort(scores)
    xs = scores[order]
    breaks = np.flatnonzero(xs[1:] != xs[:-1]) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [xs.size]))
    cum_pos = np.concatenate(([0], np.cumsum(is_pos[order], dtype=np.int64)))
    pos_before, pos_in = cum_pos[starts], cum_pos[ends] - cum_pos[starts]
    neg_before, neg_in = starts - pos_before, (ends - starts) - pos_in
    mid_all = (starts + ends + 1) / 2.0  # Tz of every row in the tie group
    v_pos_group = (mid_all - (pos_before + (pos_in + 1) / 2.0)) / n
    v_neg_group = 1.0 - (mid_all - (neg_before + (neg_in + 1) / 2.0)) / m
    sizes = ends - starts
    v = np.empty(xs.size, dtype=np.float64)
    v[order] = np.where(is_pos[order], np.repeat(v_pos_group, sizes), np.repeat(v_neg_group, sizes))
    v_pos, v_neg = v[is_pos], v[~is_pos]
    return float(v_pos.mean()), v_pos, v_neg


def delong_test(
    y_true: np.ndarray,
    baseline_scores: np.ndarray,
    candidate_scores: np.ndarray,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
) -> DeLongResult:
    """DeLong's test for correlated ROC AUCs (``diff`` = candidate − baseline).

    ``alternative="greater"`` tests H1: AUC(candidate) > AUC(baseline). The CI is the
    two-sided ``confidence`` interval of ``diff`` whatever the alternative.
    """
    y = np.asarray(y_true)
    pos_mask = y == 1
    m, n = int(pos_mask.sum()), int((~pos_mask).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positives and two negatives")
    a_b, vp_b, vn_b = _placements(np.asarray(baseline_scores, dtype=np.float64), pos_mask)
    a_c, vp_c, vn_c = _placements(np.asarray(candidate_scores, dtype=np.float64), pos_mask)
    s_pos = np.cov(np.vstack((vp_b, vp_c)))
    s_neg = np.cov(np.vstack((vn_b, vn_c)))
    return delong_from(a_b, a_c, s_pos / m + s_neg / n, alternative, confidence)


def delong_from(
    auc_baseline: float,
    auc_candidate: float,
    s: np.ndarray,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
) -> DeLongResult:
    """DeLong's test from both AUCs and the 2×2 covariance ``s`` of their estimates
    (``S10/m + S01/n`` of the placements; :func:`delong_test` computes it in memory)."""
    var = float(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    diff = auc_candidate - auc_baseline
    se = float(np.sqrt(var)) if var > 0 else 0.0
    z = diff / se if se > 0 else (0.0 if diff == 0 else float(np.copysign(np.inf, diff)))
    half = float(sps.norm.ppf(0.5 + confidence / 2)) * se
    return DeLongResult(
        auc_baseline=auc_baseline,
        auc_candidate=auc_candidate,
        diff=diff,
        se=se,
        z=z,
        p_value=_normal_p(z, alternative),
        ci_low=diff - half,
        ci_high=diff + half,
        alternative=alternative,
        confidence=confidence,
        se_baseline=float(np.sqrt(max(s[0, 0], 0.0))),
        se_candidate=float(np.sqrt(max(s[1, 1], 0.0))),
    )


def auc_interval(
    y_true: np.ndarray, scores: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """One model's AUC with DeLong's standard error and two-sided normal interval.

    Returns ``(auc, se, low, high)``.
    """
    pos_mask = np.asarray(y_true) == 1
    m, n = int(pos_mask.sum()), int((~pos_mask).sum())
    if m < 2 or n < 2:
        raise ValueError("an AUC interval needs at least two positives and two negatives")
    auc, v_pos, v_neg = _placements(np.asarray(scores, dtype=np.float64), pos_mask)
    var = float(np.var(v_pos, ddof=1) / m + np.var(v_neg, ddof=1) / n)
    se = float(np.sqrt(var)) if var > 0 else 0.0
    half = float(sps.norm.ppf(0.5 + confidence / 2)) * se
    return auc, se, auc - half, auc + half


def _normal_p(z: float, alternative: str) -> float:
    if alternative == "two-sided":
        return float(min(1.0, 2 * sps.norm.sf(abs(z))))
    if alternative == "greater":
        return float(sps.norm.sf(z))
    if alternative == "less":
        return float(sps.norm.cdf(z))
    raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")


# ---------------------------------------------------------------------------- McNemar


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness; ``c`` counts rows only the candidate gets right."""

    b: int  # baseline right, candidate wrong
    c: int  # baseline wrong, candidate right
    statistic: float
    p_value: float
    method: str  # "exact" or "chi2"
    alternative: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_only_correct": self.b,
            "candidate_only_correct": self.c,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "method": self.method,
            "alternative": self.alternative,
        }


def mcnemar_test(
    y_true: np.ndarray,
    baseline_pred: np.ndarray,
    candidate_pred: np.ndarray,
    alternative: Alternative = "two-sided",
    exact_below: int = 25,
) -> McNemarResult:
    """McNemar's test; exact binomial when there are fewer than ``exact_below`` discordant pairs.

    ``alternative="greater"`` tests H1: the candidate is more accurate.
    """
    y = np.asarray(y_true).astype(bool)
    ok_b = np.asarray(baseline_pred).astype(bool) == y
    ok_c = np.asarray(candidate_pred).astype(bool) == y
    b = int(np.count_nonzero(ok_b & ~ok_c))
    c = int(np.count_nonzero(~ok_b & ok_c))
    return mcnemar_counts(b, c, alternative, exact_below)


def mcnemar_counts(
    b: int, c: int, alternative: Alternative = "two-sided", exact_below: int = 25
) -> McNemarResult:
    """McNemar's test from its discordant counts (``b``: only the baseline right, ``c``:
    only the candidate right); see :func:`mcnemar_test`."""
    total = b + c
    if total == 0:
        return McNemarResult(b, c, 0.0, 1.0, "exact", alternative)
    if total < exact_below:
        if alternative == "two-sided":
            p = min(1.0, 2 * float(sps.binom.cdf(min(b, c), total, 0.5)))
        elif alternative == "greater":
            p = float(sps.binom.sf(c - 1, total, 0.5))
        else:
            p = float(sps.binom.cdf(c, total, 0.5))
        return McNemarResult(b, c, float(c), p, "exact", alternative)
    if alternative == "two-sided":
        stat = (abs(b - c) - 1) ** 2 / total
        return McNemarResult(b, c, stat, float(sps.chi2.sf(stat, 1)), "chi2", alternative)
    z = (c - b - np.sign(c - b)) / np.sqrt(total)
    return McNemarResult(b, c, float(z), _normal_p(float(z), alternative), "chi2", alternative)


# ---------------------------------------------------------------------------- Holm


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def minimum_detectable_effect(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true improvement a one-sided level-``alpha`` test detects with ``power``."""
    return float((sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)) * se)


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


__all__ = [
    "POISSON_MIN_CLASS",
    "BootstrapResult",
    "DeLongResult",
    "McNemarResult",
    "auc_interval",
    "delong_from",
    "delong_test",
    "holm",
    "mcnemar_counts",
    "mcnemar_test",
    "midranks",
    "minimum_detectable_effect",
    "paired_bootstrap",
]
