"""Measure both models on one population of holdout rows: every metric, tested at one level.

One method per metric, used for its interval, bound and p-value everywhere:

- AUC: DeLong's test (exact, midranks);
- log loss and Brier score: the mean of paired per-row differences, with a normal interval
  (the variance is computed within each class, matching a class-stratified resample);
- accuracy, precision, recall, F1, average precision: the paired bootstrap's standard error
  of the difference, with a normal interval (usable at any level, unlike percentiles of
  1,000 resamples below ~0.5 %).

Each metric gets the two-sided (1 − 2a) interval of its improvement at the decision's level a —
i.e. its one-sided (1 − a) lower and upper bounds — and the one-sided p-value of H1:
improvement > null (the threshold for the primary metric, 0 for the others).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from model.gate.bootstrap import BootstrapResult, paired_bootstrap
from model.gate.metrics import (
    HIGHER_IS_BETTER,
    LOSS_METRICS,
    METRICS,
    compute_metrics,
    curve_points,
    relative_change,
    row_losses,
)
from model.gate.result import MetricComparison, Population
from model.gate.stats import auc_interval, delong_test, mcnemar_test

MAX_CURVE_POINTS = 200
MAX_DELTAS = 1000


def normal_test(
    estimate: float, se: float, level: float, null: float, df: int | None = None
) -> tuple[float, float, float]:
    """``(low, high, p)``: one-sided (1 − level) bounds and p for H1: estimate > null.

    ``df``: Student's t with ``df`` degrees of freedom instead of the normal (for a standard
    error estimated from ``df + 1`` bootstrap resamples).
    """
    if not se > 0:
        p = 0.0 if estimate > null else 1.0
        return estimate, estimate, p
    dist = sps.norm if df is None else sps.t(df)
    z = float(dist.ppf(1.0 - level))
    p = float(dist.sf((estimate - null) / se))
    return estimate - z * se, estimate + z * se, p


def paired_loss_se(y: np.ndarray, sb: np.ndarray, sc: np.ndarray) -> dict[str, tuple[float, float]]:
    """Oriented improvement (baseline − candidate loss) and its standard error, per loss metric.

    The variance is the class-stratified one: Σ_c n_c·var_c(d) / n².
    """
    ll_b, br_b = row_losses(y, sb)
    ll_c, br_c = row_losses(y, sc)
    out = {}
    n = y.size
    for name, d in (("log_loss", ll_b - ll_c), ("brier", br_b - br_c)):
        var = 0.0
        for cls in (0, 1):
            dc = d[y == cls]
            if dc.size > 1:
                var += dc.size * float(np.var(dc, ddof=1))
        out[name] = (float(d.mean()), math.sqrt(var) / n)
    return out


def measure(
    name: str,
    y: np.ndarray,
    sb: np.ndarray,
    sc: np.ndarray,
    tb: float,
    tc: float,
    *,
    primary: str,
    threshold: float,
    level: float,
    n_bootstrap: int,
    seed: int | None,
    n_jobs: int | None = None,
) -> Population:
    """Both models on rows ``y``: metrics, tests at ``level``, curves, bootstrap summary."""
    mb = compute_metrics(y, sb, tb)
    mc = compute_metrics(y, sc, tc)
    boot = paired_bootstrap(
        y,
        sb,
        sc,
        baseline_threshold=tb,
        candidate_threshold=tc,
        n_bootstrap=n_bootstrap,
        random_state=seed,
        n_jobs=n_jobs,
        observed=(mb, mc),
    )
    delong = delong_test(y, sb, sc, alternative="greater", confidence=1 - 2 * level)
    losses = paired_loss_se(y, sb, sc)
    table: dict[str, MetricComparison] = {}
    for metric in METRICS:
        null = threshold if metric == primary else 0.0
        df = None
        if metric == "auc":
            method, estimate, se = "delong", delong.diff, delong.se
        elif metric in LOSS_METRICS:
            method, (estimate, se) = "paired-normal", losses[metric]
        else:
            method, estimate, se = "bootstrap-normal", boot.observed[metric], boot.sd(metric)
            df = boot.n_bootstrap - 1
        low, high, p = normal_test(estimate, se, level, null, df)
        table[metric] = MetricComparison(
            name=metric,
            baseline=mb[metric],
            candidate=mc[metric],
            absolute_change=mc[metric] - mb[metric],
            relative_change=relative_change(mb[metric], mc[metric]),
            improvement=estimate,
            higher_is_better=HIGHER_IS_BETTER[metric],
            method=method,
            se=se,
            ci_low=low,
            ci_high=high,
            p_value=p,
            null_value=null,
            df=df,
        )
    auc, auc_se = delong.auc_candidate, delong.se_candidate
    auc_low, auc_high, _ = normal_test(auc, auc_se, 0.025, 0.0)  # 95 %, whatever the level
    return Population(
        name=name,
        n=int(y.size),
        n_positive=int(y.sum()),
        metrics=table,
        delong=delong,
        mcnemar=mcnemar_test(y, sb >= tb, sc >= tc, "greater"),
        bootstrap=_bootstrap_summary(boot),
        curves={"baseline": _curves(y, sb, tb, mb), "candidate": _curves(y, sc, tc, mc)},
        bootstrap_deltas=_downsample(boot.deltas[primary]),
        candidate_auc={"auc": auc, "se": auc_se, "ci_low": auc_low, "ci_high": auc_high},
        identical=bool(np.array_equal(sb, sc)),
        changed=int(np.count_nonzero((sb >= tb) != (sc >= tc))),
    )


def measure_untested(
    name: str, y: np.ndarray, sc: np.ndarray, tc: float, baseline: tuple[np.ndarray, float] | None
) -> Population:
    """Metrics and curves without any test: the candidate alone (no production model), or
    both models on rows too few to test (fewer than 2 of a class)."""
    two_classes = min(int(y.sum()), int(y.size - y.sum())) >= 2
    mc = _metrics_any(y, sc, tc)
    mb = None if baseline is None else _metrics_any(y, *baseline)
    table = {
        m: MetricComparison(
            m,
            None if mb is None else mb[m],
            mc[m],
            None if mb is None else mc[m] - mb[m],
            None if mb is None else relative_change(mb[m], mc[m]),
            None,
            HIGHER_IS_BETTER[m],
        )
        for m in METRICS
    }
    candidate_auc = None
    if two_classes:
        auc, se, low, high = auc_interval(y, sc)
        candidate_auc = {"auc": auc, "se": se, "ci_low": low, "ci_high": high}
    curves = {"candidate": _curves(y, sc, tc, mc)} if two_classes else {}
    if two_classes and baseline is not None and mb is not None:
        curves["baseline"] = _curves(y, baseline[0], baseline[1], mb)
    return Population(
        name=name,
        n=int(y.size),
        n_positive=int(y.sum()),
        metrics=table,
        curves=curves,
        candidate_auc=candidate_auc,
    )


def _metrics_any(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """All metrics, NaN where a class is missing and a metric needs both."""
    if 0 < int(y.sum()) < y.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            return compute_metrics(y, s, threshold)
    log_loss, brier = row_losses(y, s)
    accuracy = float(np.mean((s >= threshold) == (y == 1)))
    return {m: math.nan for m in METRICS} | {
        "log_loss": float(log_loss.mean()),
        "brier": float(brier.mean()),
        "accuracy": accuracy,
    }


def _bootstrap_summary(boot: BootstrapResult) -> dict[str, Any]:
    return {
        "n_bootstrap": boot.n_bootstrap,
        "seed": boot.seed,
        "scheme": boot.scheme,
        "paired": True,
        "sd": {m: boot.sd(m) for m in METRICS},
    }


def _curves(
    y: np.ndarray, s: np.ndarray, threshold: float, metrics: dict[str, float]
) -> dict[str, Any]:
    """What the report draws for one model: ROC and precision-recall points, the reliability
    diagram (10 equal-width score bins: mean score, observed rate, rows), the confusion matrix
    at the model's decision threshold, and the AUC / average precision for the legends."""
    out = curve_points(y, s, MAX_CURVE_POINTS)
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, 9)
    rows = np.bincount(which, minlength=10)
    mean_score = np.bincount(which, weights=s, minlength=10)
    observed = np.bincount(which, weights=y.astype(np.float64), minlength=10)
    keep = rows > 0
    out["reliability"] = {
        "mean_score": (mean_score[keep] / rows[keep]).round(5).tolist(),
        "observed": (observed[keep] / rows[keep]).round(5).tolist(),
        "rows": rows[keep].astype(int).tolist(),
    }
    pred = s >= threshold
    pos = y.astype(bool)
    out["confusion"] = {
        "threshold": float(threshold),
        "tp": int(np.sum(pred & pos)),
        "fp": int(np.sum(pred & ~pos)),
        "fn": int(np.sum(~pred & pos)),
        "tn": int(np.sum(~pred & ~pos)),
    }
    out["auc"] = metrics.get("auc")
    out["average_precision"] = metrics.get("average_precision")
    return out


def _downsample(deltas: np.ndarray) -> list[float]:
    d = np.sort(deltas)
    if d.size > MAX_DELTAS:
        d = np.quantile(d, np.linspace(0, 1, MAX_DELTAS))
    return [float(x) for x in d]
