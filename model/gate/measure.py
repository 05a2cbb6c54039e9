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
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from model.errors import ComparisonInputError
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
from model.gate.spill import SpilledMeasure, SpilledRows, measure_spilled
from model.gate.stats import (
    DeLongResult,
    McNemarResult,
    auc_interval,
    delong_from,
    delong_test,
    mcnemar_test,
)

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
    device: Any = None,
) -> Population:
    """Both models on rows ``y``: metrics, tests at ``level``, curves, bootstrap summary
    (``device``: a torch device for the bootstrap and DeLong's test, :mod:`model.gate.device`;
    None: the CPU)."""
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
        device=device,
    )
    if device is None:
        delong = delong_test(y, sb, sc, alternative="greater", confidence=1 - 2 * level)
    else:
        from model.gate.device import delong_parts

        delong = delong_from(*delong_parts(y, sb, sc, device), "greater", 1 - 2 * level)
    return tested_population(
        name,
        int(y.size),
        int(y.sum()),
        (mb, mc),
        boot,
        delong,
        paired_loss_se(y, sb, sc),
        mcnemar_test(y, sb >= tb, sc >= tc, "greater"),
        {"baseline": _curves(y, sb, tb, mb), "candidate": _curves(y, sc, tc, mc)},
        identical=bool(np.array_equal(sb, sc)),
        changed=int(np.count_nonzero((sb >= tb) != (sc >= tc))),
        primary=primary,
        threshold=threshold,
        level=level,
    )


def measure_spilled_rows(
    name: str,
    rows: SpilledRows,
    tb: float,
    tc: float,
    *,
    primary: str,
    threshold: float | Callable[[dict[str, float]], float],
    level: float,
    n_bootstrap: int,
    seed: int | None,
    n_jobs: int | None = None,
    device: Any = None,
) -> Population:
    """:func:`measure` over rows spilled to disk (:mod:`model.gate.spill`), in about the
    rows' memory budget: the same tests, the same bootstrap, bit for bit. ``threshold`` may
    be a function of the baseline's metrics (a relative threshold)."""
    sm = measure_spilled(
        rows,
        tb,
        tc,
        n_bootstrap=n_bootstrap,
        seed=seed,
        n_jobs=n_jobs,
        max_curve_points=MAX_CURVE_POINTS,
        device=device,
    )
    if callable(threshold):
        threshold = threshold(sm.metrics[0])
    delong = delong_from(*sm.delong_aucs, sm.delong_s, "greater", 1 - 2 * level)
    assert sm.boot is not None
    return tested_population(
        name,
        sm.stats.n,
        sm.stats.n_pos,
        sm.metrics,
        sm.boot,
        delong,
        sm.losses,
        sm.mcnemar,
        _spilled_curves(sm, (tb, tc), ("baseline", "candidate")),
        identical=sm.stats.identical,
        changed=sm.stats.changed,
        primary=primary,
        threshold=threshold,
        level=level,
    )


def measure_spilled_untested(name: str, rows: SpilledRows, tc: float) -> Population:
    """:func:`measure_untested` of a candidate alone over spilled rows (its scores stand in
    both columns)."""
    if min(rows.positives, rows.negatives) < 2:
        raise ComparisonInputError(
            f"the spilled holdout has {rows.positives} positives and {rows.negatives} "
            "negatives: too few to measure the candidate (two of each needed)"
        )
    sm = measure_spilled(
        rows, tc, tc, n_bootstrap=0, seed=0, max_curve_points=MAX_CURVE_POINTS, bootstrap=False
    )
    mc = sm.metrics[1]
    table = {
        m: MetricComparison(m, None, mc[m], None, None, None, HIGHER_IS_BETTER[m]) for m in METRICS
    }
    auc, se = sm.delong_aucs[1], math.sqrt(max(float(sm.delong_s[1, 1]), 0.0))
    low, high, _ = normal_test(auc, se, 0.025, 0.0)
    return Population(
        name=name,
        n=sm.stats.n,
        n_positive=sm.stats.n_pos,
        metrics=table,
        curves={"candidate": _spilled_curves(sm, (tc,), ("candidate",), first=1)["candidate"]},
        candidate_auc={"auc": auc, "se": se, "ci_low": low, "ci_high": high},
    )


def _spilled_curves(
    sm: SpilledMeasure, thresholds: tuple[float, ...], who: tuple[str, ...], first: int = 0
) -> dict[str, Any]:
    st = sm.stats
    out = {}
    for i, (name, t) in enumerate(zip(who, thresholds, strict=True), start=first):
        tp, fp = st.predicted[name[0]]
        confusion = (tp, fp, st.n_pos - tp, st.n - st.n_pos - fp)
        out[name] = _finish_curves(dict(sm.curves[i]), st.bins[i], confusion, t, sm.metrics[i])
    return out


def tested_population(
    name: str,
    n: int,
    n_positive: int,
    metrics: tuple[dict[str, float], dict[str, float]],
    boot: BootstrapResult,
    delong: DeLongResult,
    losses: dict[str, tuple[float, float]],
    mcnemar: McNemarResult,
    curves: dict[str, Any],
    *,
    identical: bool,
    changed: int,
    primary: str,
    threshold: float,
    level: float,
) -> Population:
    """The population's table: each metric tested at ``level`` by its method."""
    mb, mc = metrics
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
        n=n,
        n_positive=n_positive,
        metrics=table,
        delong=delong,
        mcnemar=mcnemar,
        bootstrap=_bootstrap_summary(boot),
        curves=curves,
        bootstrap_deltas=_downsample(boot.deltas[primary]),
        candidate_auc={"auc": auc, "se": auc_se, "ci_low": auc_low, "ci_high": auc_high},
        identical=identical,
        changed=changed,
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
        "device": boot.device,
        "paired": True,
        "sd": {m: boot.sd(m) for m in METRICS},
    }


def _curves(
    y: np.ndarray, s: np.ndarray, threshold: float, metrics: dict[str, float]
) -> dict[str, Any]:
    """What the report draws for one model: ROC and precision-recall points, the reliability
    diagram (10 equal-width score bins: mean score, observed rate, rows), the confusion matrix
    at the model's decision threshold, and the AUC / average precision for the legends."""
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, 9)
    bins = np.vstack(
        (
            np.bincount(which, minlength=10),
            np.bincount(which, weights=s, minlength=10),
            np.bincount(which, weights=y.astype(np.float64), minlength=10),
        )
    )
    pred = s >= threshold
    pos = y.astype(bool)
    confusion = tuple(
        int(np.sum(a & b)) for a, b in ((pred, pos), (pred, ~pos), (~pred, pos), (~pred, ~pos))
    )
    return _finish_curves(curve_points(y, s, MAX_CURVE_POINTS), bins, confusion, threshold, metrics)


def _finish_curves(
    out: dict[str, Any],
    bins: np.ndarray,
    confusion: tuple[int, ...],
    threshold: float,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """Add the reliability diagram (``bins``: rows, Σ score, Σ label per tenth of [0, 1]),
    the confusion matrix (tp, fp, fn, tn) and the legends' AUC and AP to curve points."""
    rows, mean_score, observed = bins
    keep = rows > 0
    out["reliability"] = {
        "mean_score": (mean_score[keep] / rows[keep]).round(5).tolist(),
        "observed": (observed[keep] / rows[keep]).round(5).tolist(),
        "rows": rows[keep].astype(int).tolist(),
    }
    tp, fp, fn, tn = confusion
    out["confusion"] = {
        "threshold": float(threshold),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
    }
    out["auc"] = metrics.get("auc")
    out["average_precision"] = metrics.get("average_precision")
    return out


def _downsample(deltas: np.ndarray) -> list[float]:
    d = np.sort(deltas)
    if d.size > MAX_DELTAS:
        d = np.quantile(d, np.linspace(0, 1, MAX_DELTAS))
    return [float(x) for x in d]
