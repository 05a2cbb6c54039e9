"""The decision: PROMOTE, REJECT or INCONCLUSIVE, with its reasons and factors.

The rule (``rule="threshold"``, the default) is a test of the threshold. With Δ the primary
metric's improvement, T the threshold and [L, U] its two-sided (1 − 2a) interval at the
decision's level a (:mod:`model.gate.evidence`: α on fresh rows; L and U are the one-sided
(1 − a) bounds), in this order:

1. no production model → PROMOTE;
2. the candidate scores every row as production does → REJECT;
3. fewer than ``min_class_count`` positives or negatives where the decision is made →
   INCONCLUSIVE (no test's level is promised there);
4. a guardrail shown breached (worse than its margin) → REJECT;
5. L > T and se > 0 → PROMOTE, unless a non-inferiority guardrail (calibration, the whole
   holdout, the user's) is not shown → INCONCLUSIVE, or a policy metric misses its
   margin → REJECT;
6. U < T, or se = 0 with Δ ≤ T → REJECT (shown not to reach the threshold);
7. otherwise (T inside [L, U]) → INCONCLUSIVE, with the holdout size that would decide.

Monotone in Δ by construction. Promotion needs the primary test *and* every
non-inferiority guardrail: an intersection–union test, so no multiplicity adjustment is
needed: a no-better candidate is promoted with probability at most a, and one that breaches
a guardrail at most α (guardrails are tested at the model's α, never at the decision's reuse
level). A decision that tests nothing (the first model, identical scores, too few of a class,
no variability, too few changed predictions) records why in ``untested`` and spends nothing.
``rule="lab"`` keeps the lab's "Δ ≥ T and one-sided p(Δ > 0) < a"
(measured: promotes ~50 % of candidates whose true gain is exactly T) for comparison.
"""

from __future__ import annotations

import math

from model.gate.metrics import THRESHOLD_METRICS
from model.gate.result import (
    METHOD_NAMES,
    ComparisonResult,
    Factor,
    GuardrailResult,
    MetricComparison,
    fmt_p,
)
from model.gate.stats import holm

IDENTICAL = "the candidate scores every holdout row as production does"
MIN_CHANGED_PREDICTIONS = 50
"""A threshold metric (accuracy, precision, recall, F1) is decided by the rows whose predicted
label differs between the models; with fewer, its normal interval is liberal (measured: 6 % at
a 3 % level with 4 changed rows), so such a comparison is INCONCLUSIVE."""


def guardrail(
    m: MetricComparison, margin: float, mode: str, population: str, level: float, kind: str
) -> GuardrailResult:
    """A guardrail on metric ``m``: the candidate may be worse by at most ``margin``, tested
    at ``level`` (the model's α, whatever the decision's own level: a guardrail never weakens
    when rows are reused). Its bounds are the metric's own method at that level."""
    from model.gate.measure import normal_test

    improvement = m.improvement or 0.0
    se = m.se or 0.0
    bounds = normal_test(improvement, se, level, -margin, m.df)  # H1: improvement > −margin
    low: float | None = bounds[0]
    high: float | None = bounds[1]
    p = bounds[2]
    if m.se is None:
        low, high = m.ci_low, m.ci_high
    if mode == "harm":
        p = normal_test(-improvement, se, level, margin, m.df)[2]  # H1: improvement < −margin
    breached = high is not None and high < -margin
    shown = low is not None and low > -margin and (se > 0 or improvement > -margin)
    status = "breached" if breached else ("ok" if shown or mode == "harm" else "not_shown")
    return GuardrailResult(
        metric=m.name,
        margin=margin,
        mode=mode,
        population=population,
        improvement=improvement,
        ci_low=low,
        ci_high=high,
        p_value=p,
        p_adjusted=p,
        status=status,
        kind=kind,
        level=level,
    )


def adjust_harm(guardrails: list[GuardrailResult], level: float) -> list[GuardrailResult]:
    """Holm across the user's harm-mode guardrails: a breach must survive the adjustment."""
    harm = [g for g in guardrails if g.mode == "harm"]
    if not harm:
        return guardrails
    adjusted = dict(zip((id(g) for g in harm), holm([g.p_value for g in harm]), strict=True))
    out = []
    for g in guardrails:
        if g.mode == "harm":
            p_adj = adjusted[id(g)]
            status = "breached" if p_adj < level else "ok"
            g = GuardrailResult(**{**g.__dict__, "p_adjusted": p_adj, "status": status})
        out.append(g)
    return out


def samples_needed(
    n: int, estimate: float, se: float, threshold: float, level: float
) -> int | None:
    """Rows at which the observed effect and variance would put T outside the interval."""
    gap = abs(estimate - threshold)
    if not se > 0 or gap == 0:
        return None
    z = _z(level)
    return math.ceil(n * (z * se / gap) ** 2)


def decide(r: ComparisonResult) -> None:
    """Fill ``decision``, ``reasons``, ``factors`` and ``samples_needed`` of ``r``."""
    if r.baseline is None:
        r.decision = "PROMOTE"
        r.reasons = ["no production model: the candidate is promoted as the first production model"]
        r.factors = [Factor(True, "No production model yet")]
        r.untested = "no production model: nothing to compare with"
        return
    pop, m, thr = r.population, r.primary, r.threshold_absolute
    est, se = m.improvement or 0.0, m.se or 0.0
    low = m.ci_low if m.ci_low is not None else est
    high = m.ci_high if m.ci_high is not None else est
    conf = f"{100 * r.confidence:.1f}%"
    method = METHOD_NAMES.get(m.method or "", m.method or "")
    where = "" if r.decided_on == "holdout" else f" on the {pop.n} recent rows"
    change = _change_text(r, m)
    interval = f"{conf} interval [{low:+.4f}, {high:+.4f}] ({method}, {_level_text(r)})"
    r.factors = _factors(r, m, conf, method)
    breaches = [g for g in r.guardrails if g.breached]
    not_shown = [g for g in r.guardrails if g.status == "not_shown"]
    failed_policy = [c for c in r.policy if not c.passed]
    short = min(pop.n_positive, pop.n_negative) < r.min_class_count
    few_changed = m.method == "bootstrap-normal" and pop.changed < MIN_CHANGED_PREDICTIONS
    few_changed = few_changed and r.primary_metric in THRESHOLD_METRICS

    if pop.identical:
        which = "holdout" if r.decided_on == "holdout" else "recent"
        r.decision, r.reasons = "REJECT", [IDENTICAL.replace("holdout", which)]
        r.untested = r.reasons[0] + ": nothing to test"
    elif short:
        r.decision = "INCONCLUSIVE"
        r.reasons = [
            f"too little evidence{where}: {pop.n_positive} positives and {pop.n_negative} "
            f"negatives; at least {r.min_class_count} of each are needed to decide"
        ]
        r.untested = r.reasons[0]
    elif breaches:
        r.decision = "REJECT"
        r.reasons = [g.describe() for g in breaches]
        if se > 0 and high < thr:
            r.reasons.append(
                f"{change}{where}: shown not to reach the threshold {thr:.4f} either "
                f"(upper bound {high:+.4f})"
            )
    elif failed_policy:
        r.decision, r.reasons = "REJECT", _policy_reasons(failed_policy)
    elif se == 0:
        r.untested = "no variability across rows (standard error 0): no test to carry out"
        if est <= thr:
            r.decision = "REJECT"
            r.reasons = [
                f"{change}{where}, with no variability across rows (standard error 0): the "
                f"candidate does not improve {r.primary_metric} beyond the threshold {thr:.4f}"
            ]
        else:
            r.decision = "INCONCLUSIVE"
            r.reasons = [
                f"{change}{where}, with no variability across rows (standard error 0): "
                "the gain cannot be tested, so it is not promoted"
            ]
    elif few_changed:
        r.decision = "INCONCLUSIVE"
        r.reasons = [
            f"{change}{where}: only {pop.changed} rows change their predicted label, fewer "
            f"than {MIN_CHANGED_PREDICTIONS}: too few for the normal interval to hold its level"
        ]
        r.untested = r.reasons[0]
    elif r.rule == "lab":
        _lab(r, change + where, est, thr, not_shown)
    elif low > thr:
        if not_shown:
            r.decision = "INCONCLUSIVE"
            r.reasons = [f"{change}{where} clears the threshold {thr:.4f}, but"]
            r.reasons += [g.describe() for g in not_shown]
        else:
            r.decision = "PROMOTE"
            r.reasons = [
                f"{change}{where}: the lower bound {low:+.4f} is above the threshold "
                f"{thr:.4f}; {interval}"
            ]
    elif high < thr:
        r.decision = "REJECT"
        r.reasons = [
            f"{change}{where}: shown not to reach the threshold {thr:.4f} "
            f"(upper bound {high:+.4f}); {interval}"
        ]
    else:
        r.decision = "INCONCLUSIVE"
        r.samples_needed = samples_needed(pop.n, est, se, thr, r.level)
        need = (
            "no holdout size would decide (the estimate equals the threshold)"
            if r.samples_needed is None
            else f"about {r.samples_needed:,} rows{where and ' of recent data'} would decide "
            "at this comparison's level"
        )
        r.reasons = [f"{change}{where}: the {interval} contains the threshold {thr:.4f}; {need}"]
    r.reasons += r.notes


def _lab(
    r: ComparisonResult, change: str, est: float, thr: float, not_shown: list[GuardrailResult]
) -> None:
    """The lab's rule: gain ≥ T and one-sided p(gain > 0) < the decision's level a (its p is
    the primary p)."""
    p0 = r.primary.p_value if r.primary.p_value is not None else 1.0
    if est >= thr and p0 < r.level and not not_shown:
        r.decision = "PROMOTE"
        r.reasons = [
            f"{change}, at least the threshold {thr:.4f}, and significant "
            f"(lab rule: one-sided p = {fmt_p(p0)} < {r.level:.2g})"
        ]
    elif est >= thr and p0 < r.level:
        r.decision = "INCONCLUSIVE"
        r.reasons = [g.describe() for g in not_shown]
    else:
        r.decision = "REJECT"
        r.reasons = [
            f"{change}: lab rule not met (gain >= {thr:.4f} and one-sided p(gain > 0) = "
            f"{fmt_p(p0)} < {r.level:.2g} both needed)"
        ]


def _factors(r: ComparisonResult, m: MetricComparison, conf: str, method: str) -> list[Factor]:
    thr = r.threshold_absolute
    low = m.ci_low if m.ci_low is not None else 0.0
    high = m.ci_high if m.ci_high is not None else 0.0
    pop = r.population
    enough = min(pop.n_positive, pop.n_negative) >= r.min_class_count
    evidence = Factor(
        enough,
        f"Evidence: {pop.n_positive} positives, {pop.n_negative} negatives "
        f"({'at least' if enough else 'fewer than'} {r.min_class_count} each, "
        f"{r.decided_on} rows)",
    )
    if r.rule == "lab":
        est = m.improvement or 0.0
        significant = m.p_value is not None and m.p_value < r.level and (m.se or 0) > 0
        tests = [
            Factor(
                est >= thr, f"Lab rule: gain {est:+.4f} {'>=' if est >= thr else '<'} {thr:.4f}"
            ),
            Factor(
                significant,
                f"Lab rule: one-sided p(gain > 0) = {fmt_p(m.p_value)} "
                f"{'<' if significant else '>='} {r.level:.3g} ({method})",
            ),
        ]
    else:
        tests = [
            Factor(
                low > thr,
                f"Lower bound {low:+.4f} {'>' if low > thr else '<='} threshold {thr:.4f} "
                f"({conf} interval [{low:+.4f}, {high:+.4f}], {method}, one-sided p = "
                f"{fmt_p(m.p_value)} for gain > {thr:g})",
            )
        ]
    factors = [
        evidence,
        *tests,
        Factor(True, f"Level: {r.evidence.get('explained') or _level_text(r)}"),
    ]
    factors += [Factor(g.ok, g.describe()) for g in r.guardrails]
    factors += [
        Factor(
            c.passed,
            f"Policy {c.metric}: improvement {c.improvement:+.4f} "
            f"{'>=' if c.passed else '<'} {c.margin:+.4f}",
        )
        for c in r.policy
    ]
    return factors


def _level_text(r: ComparisonResult) -> str:
    if r.holdout_uses == 1:
        return f"fresh rows: α = {r.level:.2g}"
    return f"decision {r.holdout_uses} on these rows: α = {r.level:.2g}"


def _change_text(r: ComparisonResult, m: MetricComparison) -> str:
    name = r.primary_metric.upper()
    if m.higher_is_better:
        return f"{name} gain {m.improvement or 0.0:+.4f} ({m.baseline:.4f} → {m.candidate:.4f})"
    return (
        f"{name} improvement {m.improvement or 0.0:+.4f} ({m.baseline:.4f} → {m.candidate:.4f}, "
        "lower is better)"
    )


def _policy_reasons(failed: list) -> list[str]:
    return [f"policy not met on {c.metric}: {c.improvement:+.4f} < {c.margin:+.4f}" for c in failed]


def _z(level: float) -> float:
    from scipy import stats as sps

    return float(sps.norm.ppf(1.0 - level))
