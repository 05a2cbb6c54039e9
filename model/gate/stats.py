"""Statistics for comparing two classifiers scored on the same rows.

- :func:`paired_bootstrap` — paired bootstrap of every metric's improvement, vectorized:
  both models are sorted once, each resample is a weight per row (float32, in chunks of
  resamples to bound memory), no per-resample scikit-learn calls. Weights are multinomial
  counts drawn within each class (class sizes fixed), or — for large holdouts, where drawing
  them dominates — independent Poisson(1) counts per row (the Poisson bootstrap; metrics are
  normalised by each resample's class weights), drawn as 16-bit uniforms through a lookup table.
- :func:`auc_interval` — DeLong's variance of one model's AUC and its normal interval.
- :func:`delong_test` — DeLong's test for the AUC difference, exact, O(n log n) with
  midranks (Sun & Xu 2014).
- :func:`mcnemar_test` — McNemar's test of the accuracy difference (exact binomial for few
  discordant pairs).
- :func:`holm` — Holm's step-down correction across a family of tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from model.gate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    RankIndex,
    compute_metrics,
    row_losses,
    threshold_metrics,
)

Alternative = Literal["two-sided", "greater", "less"]
_CHUNK_ELEMENTS = 1 << 20  # rows × resamples per chunk: cache-friendly ...
_MIN_CHUNK, _MAX_CHUNK = 4, 64  # ... but at least 4 resamples (fewer, larger allocations)
_MAX_CHUNK_ELEMENTS = 1 << 24  # memory bound per chunk (per worker)


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
    s = s_pos / m + s_neg / n
    var = float(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    diff = a_c - a_b
    se = float(np.sqrt(var)) if var > 0 else 0.0
    z = diff / se if se > 0 else (0.0 if diff == 0 else float(np.copysign(np.inf, diff)))
    half = float(sps.norm.ppf(0.5 + confidence / 2)) * se
    return DeLongResult(
        auc_baseline=a_b,
        auc_candidate=a_c,
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


# ---------------------------------------------------------------------------- bootstrap


@dataclass
class BootstrapResult:
    """Bootstrap distribution of each metric's improvement (candidate − baseline, oriented).

    ``deltas[metric]`` holds B resampled improvements (positive = candidate better).
    """

    observed: dict[str, float]
    deltas: dict[str, np.ndarray]
    n_bootstrap: int
    seed: int
    confidence: float = 0.95
    stratified: bool = True
    metrics: tuple[str, ...] = field(default=METRICS)
    scheme: str = "multinomial"

    def ci(self, metric: str, confidence: float | None = None) -> tuple[float, float]:
        """Two-sided percentile interval of the improvement."""
        level = self.confidence if confidence is None else confidence
        lo, hi = np.quantile(self.deltas[metric], [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    def lower_bound(self, metric: str, alpha: float) -> float:
        """One-sided (1 − alpha) lower confidence bound of the improvement."""
        return float(np.quantile(self.deltas[metric], alpha))

    def p_value(self, metric: str, margin: float = 0.0) -> float:
        """One-sided p for H1: improvement > margin: (1 + #{Δ* ≤ margin}) / (B + 1)."""
        d = self.deltas[metric]
        return (1 + int(np.count_nonzero(d <= margin))) / (d.size + 1)

    def p_worse(self, metric: str, margin: float = 0.0) -> float:
        """One-sided p for H1: improvement < −margin (candidate worse by more than margin)."""
        d = self.deltas[metric]
        return (1 + int(np.count_nonzero(d >= -margin))) / (d.size + 1)

    def sd(self, metric: str) -> float:
        return float(np.std(self.deltas[metric], ddof=1))

    def summary(self, metric: str) -> dict[str, float]:
        lo, hi = self.ci(metric)
        return {
            "observed": self.observed[metric],
            "ci_low": lo,
            "ci_high": hi,
            "sd": self.sd(metric),
            "p_value": self.p_value(metric),
        }


def paired_bootstrap(
    y_true: np.ndarray,
    baseline_scores: np.ndarray,
    candidate_scores: np.ndarray,
    *,
    baseline_threshold: float = 0.5,
    candidate_threshold: float = 0.5,
    n_bootstrap: int = 1000,
    random_state: int | None = None,
    confidence: float = 0.95,
    n_jobs: int | None = None,
    chunk_elements: int | None = None,
    observed: tuple[dict[str, float], dict[str, float]] | None = None,
    scheme: str = "auto",
) -> BootstrapResult:
    """Paired bootstrap of every metric's improvement.

    Both models see the same resampled rows. ``scheme="multinomial"``: positives and
    negatives are resampled separately (their counts stay fixed). ``scheme="poisson"``: each
    row gets an independent Poisson(1) weight (cases and controls still weighted separately,
    class totals vary, every metric is normalised by them); 3–4× cheaper to draw.
    ``"auto"`` uses Poisson when both classes have at least
    :data:`POISSON_MIN_CLASS` rows (below that an all-zero class becomes possible).
    Resample ``r`` draws from its own stream (``SeedSequence(seed).spawn``), so results do
    not depend on chunking or threads. ``observed`` may pass both models' already computed
    metrics (baseline, candidate).
    """
    y = np.asarray(y_true).astype(np.int8)
    sb = np.asarray(baseline_scores, dtype=np.float64)
    sc = np.asarray(candidate_scores, dtype=np.float64)
    seed = _fresh_seed() if random_state is None else int(random_state)
    setup = _Setup.build(y, sb, sc, baseline_threshold, candidate_threshold)
    if scheme not in ("auto", "poisson", "multinomial"):
        raise ValueError(f"scheme must be auto, poisson or multinomial, not {scheme!r}")
    if scheme == "auto":
        small = min(setup.n_pos, setup.n_neg) < POISSON_MIN_CLASS
        scheme = "multinomial" if small else "poisson"
    setup.poisson = scheme == "poisson"
    if observed is None:
        observed = (
            compute_metrics(y, sb, baseline_threshold),
            compute_metrics(y, sc, candidate_threshold),
        )
    mb, mc = observed
    improvements = {m: (mc[m] - mb[m]) * (1 if HIGHER_IS_BETTER[m] else -1) for m in METRICS}
    streams = np.random.SeedSequence(seed).spawn(n_bootstrap)
    k = _chunk_size(y.size, n_bootstrap, chunk_elements)
    bounds = [(r, min(r + k, n_bootstrap)) for r in range(0, n_bootstrap, k)]
    workers = n_jobs or min(4, os.cpu_count() or 1)
    out = np.empty((n_bootstrap, len(METRICS)), dtype=np.float64)

    def run(bound: tuple[int, int]) -> None:
        r0, r1 = bound
        out[r0:r1] = setup.chunk(streams[r0:r1])

    if workers > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, bounds))
    else:
        for bound in bounds:
            run(bound)
    deltas = {name: out[:, j] for j, name in enumerate(METRICS)}
    return BootstrapResult(improvements, deltas, n_bootstrap, seed, confidence, scheme=scheme)


@dataclass
class _Setup:
    """Both models' rank indexes over a canonical order (the baseline's sorted order)."""

    n_pos: int
    n_neg: int
    baseline: RankIndex
    candidate: RankIndex
    pos_loss: np.ndarray  # (n_pos, 5): pred_b, pred_c, Δ log loss, Δ brier, 1 (float32)
    neg_loss: np.ndarray
    poisson: bool = False

    @classmethod
    def build(cls, y: np.ndarray, sb: np.ndarray, sc: np.ndarray, tb: float, tc: float) -> _Setup:
        pos_rows = np.flatnonzero(y == 1)
        neg_rows = np.flatnonzero(y == 0)
        pos_rows = pos_rows[np.argsort(-sb[pos_rows], kind="stable")]  # canonical = baseline's
        neg_rows = neg_rows[np.argsort(sb[neg_rows], kind="stable")]
        ll_b, br_b = row_losses(y, sb)
        ll_c, br_c = row_losses(y, sc)
        d_ll, d_br = ll_c - ll_b, br_c - br_b

        def columns(rows: np.ndarray, pred_b: np.ndarray, pred_c: np.ndarray) -> np.ndarray:
            cols = (pred_b, pred_c, d_ll[rows], d_br[rows], np.ones(rows.size))
            return np.ascontiguousarray(np.column_stack(cols), dtype=np.float32)

        base = RankIndex.build(sb[pos_rows], sb[neg_rows], tb)
        cand = RankIndex.build(sc[pos_rows], sc[neg_rows], tc)
        return cls(
            n_pos=pos_rows.size,
            n_neg=neg_rows.size,
            baseline=base,
            candidate=cand,
            pos_loss=columns(pos_rows, base.pred_pos, cand.pred_pos),
            neg_loss=columns(neg_rows, base.pred_neg, cand.pred_neg),
        )

    def chunk(self, streams: Sequence[np.random.SeedSequence]) -> np.ndarray:
        k = len(streams)
        w_pos = np.empty((k, self.n_pos), dtype=np.float32)
        w_neg = np.empty((k, self.n_neg), dtype=np.float32)
        for i, stream in enumerate(streams):
            rng = np.random.default_rng(stream)
            for w, size in ((w_pos[i], self.n_pos), (w_neg[i], self.n_neg)):
                if self.poisson:
                    u16 = np.frombuffer(rng.bytes(2 * size), dtype=np.uint16)
                    np.take(_POISSON_TABLE, u16, out=w)
                else:
                    _multinomial_counts(rng.integers(0, size, size), w)
        sums_pos = (w_pos @ self.pos_loss).astype(np.float64)  # counts are exact in float32
        sums_neg = (w_neg @ self.neg_loss).astype(np.float64)
        w_p, w_n = sums_pos[:, 4], sums_neg[:, 4]  # each resample's class totals
        n = w_p + w_n
        thr_b = threshold_metrics(sums_pos[:, 0], sums_neg[:, 0], w_p, w_n)
        thr_c = threshold_metrics(sums_pos[:, 1], sums_neg[:, 1], w_p, w_n)
        auc_b, ap_b = self.baseline.rank_metrics(w_pos, w_neg)
        auc_c, ap_c = self.candidate.rank_metrics(w_pos, w_neg)
        deltas = {name: thr_c[name] - thr_b[name] for name in thr_b}
        deltas["auc"] = auc_c - auc_b
        deltas["average_precision"] = ap_c - ap_b
        deltas["log_loss"] = -(sums_pos[:, 2] + sums_neg[:, 2]) / n
        deltas["brier"] = -(sums_pos[:, 3] + sums_neg[:, 3]) / n
        return np.column_stack([deltas[name] for name in METRICS])


def _chunk_size(n_rows: int, n_bootstrap: int, chunk_elements: int | None) -> int:
    """Resamples per chunk (measured best: 4 to ~10 resamples of 10^5 to 10^6 rows)."""
    n = max(1, n_rows)
    if chunk_elements is not None:
        return max(1, min(n_bootstrap, chunk_elements // n))
    k = max(min(_MIN_CHUNK, _MAX_CHUNK_ELEMENTS // n), min(_MAX_CHUNK, _CHUNK_ELEMENTS // n))
    return max(1, min(n_bootstrap, k))


POISSON_MIN_CLASS = 1000
"""Smallest class size for the Poisson scheme under ``scheme="auto"`` (P(all-zero) < 1e-400)."""


def _poisson_table() -> np.ndarray:
    """Poisson(1) counts by inverse CDF at the 65,536 midpoints of a 16-bit uniform.

    Probabilities are resolved to 1/65,536 (counts above 7, P < 1e-5, never occur): an
    immaterial truncation for bootstrap standard errors.
    """
    cdf = sps.poisson.cdf(np.arange(32), 1.0)
    u = (np.arange(65536) + 0.5) / 65536
    return np.searchsorted(cdf, u).astype(np.float32)


_POISSON_TABLE = _poisson_table()


def _multinomial_counts(draws: np.ndarray, out: np.ndarray) -> None:
    """Write how often each row was drawn into the float32 row ``out`` (exact below 2**24)."""
    np.copyto(out, np.bincount(draws, minlength=out.size), casting="unsafe")


def _fresh_seed() -> int:
    """A random seed, recorded in the result so the run can be repeated."""
    return int(np.random.default_rng().integers(0, 2**32))


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


__all__ = [
    "POISSON_MIN_CLASS",
    "BootstrapResult",
    "DeLongResult",
    "McNemarResult",
    "auc_interval",
    "delong_test",
    "holm",
    "mcnemar_test",
    "midranks",
    "minimum_detectable_effect",
    "paired_bootstrap",
]
