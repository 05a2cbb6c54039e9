"""The promotion gate: compare a candidate with the production model on one holdout.

``ModelComparator(...).compare(baseline, candidate, test_data) -> ComparisonResult``.
Both models are scored on the same rows; the decision (PROMOTE / REJECT / INCONCLUSIVE)
follows these rules, in order:

1. no production model (``baseline=None``) → PROMOTE, "no production model";
2. a guardrail breach (a metric significantly worse than its margin, Holm across
   guardrails; or, in ``non_inferiority`` mode, non-inferiority not shown) → REJECT;
3. the primary rule — the lab's: improvement ≥ threshold AND one-sided p < significance
   level (DeLong for AUC, the paired bootstrap otherwise); with ``strict=True``: the
   one-sided lower confidence bound of the improvement ≥ threshold — plus every metric
   of the ``policy`` improving by its own margin → PROMOTE;
4. not significant and the holdout too small to detect the threshold (minimum
   detectable effect at 80 % power above it) and an improvement of the threshold's size
   not ruled out (one-sided upper confidence bound ≥ threshold) → INCONCLUSIVE;
   otherwise REJECT.

Also the lab's CLI: ``python -m model.comparator --baseline A --new B --test-data T``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from model.errors import ComparisonInputError, RetrainError
from model.gate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    canonical_metric,
    compute_metrics,
    curve_points,
    relative_change,
)
from model.gate.stats import (
    BootstrapResult,
    DeLongResult,
    McNemarResult,
    delong_test,
    holm,
    mcnemar_test,
    minimum_detectable_effect,
    paired_bootstrap,
)

Decision = Literal["PROMOTE", "REJECT", "INCONCLUSIVE"]
EXIT_CODES: Mapping[str, int] = {"PROMOTE": 0, "REJECT": 3, "INCONCLUSIVE": 4}
POWER = 0.8
MAX_CURVE_POINTS = 200
MAX_DELTAS = 1000


@dataclass(frozen=True)
class ModelInfo:
    """Identity of a compared model (from a LoadedModel when available)."""

    version: str | None = None
    path: str | None = None
    sha256: str | None = None
    decision_threshold: float = 0.5

    @classmethod
    def of(cls, model: Any) -> ModelInfo:
        path = getattr(model, "path", None)
        threshold = getattr(model, "decision_threshold", None)
        return cls(
            version=getattr(model, "version", None),
            path=None if path is None else str(path),
            sha256=getattr(model, "sha256", None),
            decision_threshold=0.5 if threshold is None else float(threshold),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            "sha256": self.sha256,
            "decision_threshold": self.decision_threshold,
        }


@dataclass(frozen=True)
class MetricComparison:
    """One metric for both models; ``improvement`` is oriented (positive = better)."""

    name: str
    baseline: float | None
    candidate: float
    absolute_change: float | None  # candidate − baseline
    relative_change: float | None  # (candidate − baseline) / |baseline|
    improvement: float | None
    higher_is_better: bool
    ci_low: float | None = None  # percentile CI of the improvement
    ci_high: float | None = None
    p_value: float | None = None  # one-sided bootstrap p that the candidate is better

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "absolute_change": self.absolute_change,
            "relative_change": self.relative_change,
            "improvement": self.improvement,
            "higher_is_better": self.higher_is_better,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
        }


@dataclass(frozen=True)
class GuardrailResult:
    metric: str
    margin: float  # the candidate may be worse by at most this much
    mode: str  # "harm" (a breach must be shown) or "non_inferiority" (safety must be shown)
    improvement: float
    p_value: float
    p_adjusted: float  # Holm across guardrails
    breached: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        verdict = "breached" if self.breached else "ok"
        test = "worse than" if self.mode == "harm" else "non-inferior within"
        return (
            f"Guardrail {self.metric} {verdict}: {_better_or_worse(self.improvement)}, "
            f"at most {self.margin:.4f} worse allowed "
            f"(Holm p = {self.p_adjusted:.4f} for {test} margin)"
        )


def _better_or_worse(improvement: float) -> str:
    """``worse by 0.0123`` / ``better by 0.0123``: a direction-free reading of an improvement
    (for log loss and Brier a signed "change" would read the wrong way round)."""
    return f"{'worse' if improvement < 0 else 'better'} by {abs(improvement):.4f}"


@dataclass(frozen=True)
class PolicyCheck:
    metric: str
    margin: float
    improvement: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Factor:
    ok: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "text": self.text}


@dataclass
class ComparisonResult:
    """Everything the reports need: metrics, tests, decision, curves, bootstrap deltas."""

    primary_metric: str
    threshold: float
    threshold_type: str
    threshold_absolute: float
    significance_level: float
    strict: bool
    test: str  # the primary test: "delong" or "bootstrap"
    baseline: ModelInfo | None
    candidate: ModelInfo
    metrics: dict[str, MetricComparison]
    decision: Decision
    reasons: list[str]
    factors: list[Factor]
    n_test: int
    n_positive: int
    n_bootstrap: int
    seed: int | None
    improvement: float | None = None
    p_value: float | None = None
    se: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    minimum_detectable_effect: float | None = None
    delong: DeLongResult | None = None
    delong_two_sided_p: float | None = None
    bootstrap: dict[str, Any] | None = None
    mcnemar: McNemarResult | None = None
    mcnemar_two_sided_p: float | None = None
    guardrail_mode: str = "harm"
    guardrails: list[GuardrailResult] = field(default_factory=list)
    policy: list[PolicyCheck] = field(default_factory=list)
    curves: dict[str, Any] = field(default_factory=dict)
    bootstrap_deltas: list[float] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def should_promote(self) -> bool:
        return self.decision == "PROMOTE"

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.significance_level

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to :meth:`to_dict` (the lab's scripts index the result)."""
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (DESIGN.md schema plus the lab's keys)."""
        primary = self.metrics[self.primary_metric]
        return {
            "primary_metric": self.primary_metric,
            "threshold": self.threshold,
            "threshold_type": self.threshold_type,
            "threshold_absolute": self.threshold_absolute,
            "significance_level": self.significance_level,
            "strict": self.strict,
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "primary": {
                "metric": self.primary_metric,
                "baseline": primary.baseline,
                "candidate": primary.candidate,
                "improvement": self.improvement,
                "relative_change": primary.relative_change,
                "test": self.test,
                "p_value": self.p_value,
                "se": self.se,
                "lower_bound": self.lower_bound,
                "upper_bound": self.upper_bound,
                "significant": self.significant,
                "meets_threshold": self.improvement is not None
                and self.improvement >= self.threshold_absolute,
            },
            "tests": {
                "delong": None
                if self.delong is None
                else {**self.delong.to_dict(), "p_value_two_sided": self.delong_two_sided_p},
                "bootstrap": self.bootstrap,
                "mcnemar": None
                if self.mcnemar is None
                else {**self.mcnemar.to_dict(), "p_value_two_sided": self.mcnemar_two_sided_p},
            },
            "guardrail_mode": self.guardrail_mode,
            "guardrails": [g.to_dict() for g in self.guardrails],
            "policy": [p.to_dict() for p in self.policy],
            "decision": self.decision,
            "should_promote": self.should_promote,
            "reasons": list(self.reasons),
            "decision_factors": [f.to_dict() for f in self.factors],
            "n_test": self.n_test,
            "n_positive": self.n_positive,
            "n_negative": self.n_test - self.n_positive,
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "created_at": self.created_at,
            "minimum_detectable_effect": self.minimum_detectable_effect,
            "power": POWER,
            # the lab's spellings
            "improvements": self._improvements(),
            "baseline_metrics": {n: m.baseline for n, m in self.metrics.items()},
            "new_metrics": {n: m.candidate for n, m in self.metrics.items()},
            "statistical_significance": {
                "test": self.test,
                "p_value": self.p_value,
                "alpha": self.significance_level,
                "significant": self.significant,
                "is_significant": self.significant,
            },
            "curves": self.curves,
            "bootstrap_deltas": self.bootstrap_deltas,
        }

    def _improvements(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, m in self.metrics.items():
            rel = None
            if m.improvement is not None and m.baseline:
                rel = 100.0 * m.improvement / abs(m.baseline)
            out[name] = {
                "baseline": m.baseline,
                "new": m.candidate,
                "absolute_improvement": m.improvement,
                "relative_improvement": rel,  # percent of the baseline
                "higher_is_better": m.higher_is_better,
            }
        return out


class ModelComparator:
    """Statistically gated comparison of a candidate with the production model."""

    def __init__(
        self,
        primary_metric: str = "auc",
        improvement_threshold: float = 0.02,
        threshold_type: str = "absolute",
        significance_level: float | None = None,
        n_bootstrap: int = 1000,
        random_state: int | None = 42,
        guardrails: Mapping[str, float] | None = None,
        policy: Mapping[str, float] | None = None,
        *,
        strict: bool = False,
        test: str = "auto",
        guardrail_mode: str = "harm",
        target_column: str | None = None,
        n_jobs: int | None = None,
        statistical_significance_threshold: float | None = None,
    ) -> None:
        if significance_level is None:
            significance_level = statistical_significance_threshold
        elif statistical_significance_threshold is not None and (
            statistical_significance_threshold != significance_level
        ):
            raise ComparisonInputError(
                "significance_level and statistical_significance_threshold disagree "
                f"({significance_level} vs {statistical_significance_threshold})"
            )
        self.primary_metric = _metric_name(primary_metric, "primary_metric")
        self.improvement_threshold = _in_range(improvement_threshold, "improvement_threshold", 0, 1)
        if threshold_type not in ("absolute", "relative"):
            raise ComparisonInputError(
                f"threshold_type must be 'absolute' or 'relative', not {threshold_type!r}"
            )
        self.threshold_type = threshold_type
        alpha = 0.05 if significance_level is None else significance_level
        self.significance_level = _in_range(alpha, "significance_level", 0, 0.5, open_low=True)
        if int(n_bootstrap) < 20:
            raise ComparisonInputError(f"n_bootstrap must be at least 20, got {n_bootstrap}")
        self.n_bootstrap = int(n_bootstrap)
        self.random_state = random_state
        self.guardrails = _margins(guardrails, "guardrail", lowest=0.0)
        self.policy = _margins(policy, "policy", lowest=-1.0)
        self.strict = bool(strict)
        if test not in ("auto", "delong", "bootstrap"):
            raise ComparisonInputError(
                f"test must be 'auto', 'delong' or 'bootstrap', not {test!r}"
            )
        if test == "delong" and self.primary_metric != "auc":
            raise ComparisonInputError("DeLong's test applies to the AUC only")
        self.test = "delong" if (test == "auto" and self.primary_metric == "auc") else test
        if self.test == "auto":
            self.test = "bootstrap"
        if guardrail_mode not in ("harm", "non_inferiority"):
            raise ComparisonInputError(
                f"guardrail_mode must be 'harm' or 'non_inferiority', not {guardrail_mode!r}"
            )
        self.guardrail_mode = guardrail_mode
        self.target_column = target_column
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ entry points

    def compare(
        self, baseline: Any | None, candidate: Any, test_data: pd.DataFrame
    ) -> ComparisonResult:
        """Score both models on ``test_data`` and decide."""
        if candidate is None:
            raise ComparisonInputError("no candidate model given")
        if not isinstance(test_data, pd.DataFrame):
            raise ComparisonInputError(
                f"test data must be a DataFrame, got {type(test_data).__name__}"
            )
        if len(test_data) == 0:
            raise ComparisonInputError("the test set is empty (0 rows)")
        target = self._target(baseline, candidate)
        _check_specs(baseline, candidate, test_data, target)
        y = _encode_target(test_data, target)
        sc = _score(candidate, test_data, "candidate")
        c_info = ModelInfo.of(candidate)
        if baseline is None:
            return self.compare_scores(
                y, None, sc, candidate_threshold=c_info.decision_threshold, candidate_info=c_info
            )
        sb = _score(baseline, test_data, "baseline")
        b_info = ModelInfo.of(baseline)
        return self.compare_scores(
            y,
            sb,
            sc,
            b_info.decision_threshold,
            c_info.decision_threshold,
            baseline_info=b_info,
            candidate_info=c_info,
        )

    def compare_scores(
        self,
        y_true: np.ndarray,
        baseline_scores: np.ndarray | None,
        candidate_scores: np.ndarray,
        baseline_threshold: float = 0.5,
        candidate_threshold: float = 0.5,
        *,
        baseline_info: ModelInfo | None = None,
        candidate_info: ModelInfo | None = None,
    ) -> ComparisonResult:
        """Decide from precomputed probabilities (same rows, same order)."""
        y = _check_labels(y_true)
        sc = _check_scores(candidate_scores, y.size, "candidate")
        c_info = candidate_info or ModelInfo(decision_threshold=candidate_threshold)
        mc = compute_metrics(y, sc, candidate_threshold)
        curves = {"candidate": _curves(y, sc)}
        if baseline_scores is None:
            return self._no_baseline(y, mc, c_info, curves)
        sb = _check_scores(baseline_scores, y.size, "baseline")
        b_info = baseline_info or ModelInfo(decision_threshold=baseline_threshold)
        curves["baseline"] = _curves(y, sb)
        mb = compute_metrics(y, sb, baseline_threshold)
        boot = paired_bootstrap(
            y,
            sb,
            sc,
            baseline_threshold=baseline_threshold,
            candidate_threshold=candidate_threshold,
            n_bootstrap=self.n_bootstrap,
            random_state=self.random_state,
            confidence=1 - self.significance_level,
            n_jobs=self.n_jobs,
            observed=(mb, mc),
        )
        delong = delong_test(
            y, sb, sc, alternative="greater", confidence=1 - self.significance_level
        )
        mcnemar = mcnemar_test(y, sb >= baseline_threshold, sc >= candidate_threshold, "greater")
        mcnemar2 = mcnemar_test(y, sb >= baseline_threshold, sc >= candidate_threshold)
        table = _metric_table(mb, mc, boot)
        result = ComparisonResult(
            primary_metric=self.primary_metric,
            threshold=self.improvement_threshold,
            threshold_type=self.threshold_type,
            threshold_absolute=self._absolute_threshold(mb[self.primary_metric]),
            significance_level=self.significance_level,
            strict=self.strict,
            test=self.test,
            baseline=b_info,
            candidate=c_info,
            metrics=table,
            decision="REJECT",
            reasons=[],
            factors=[],
            n_test=int(y.size),
            n_positive=int(y.sum()),
            n_bootstrap=self.n_bootstrap,
            seed=boot.seed,
            delong=delong,
            delong_two_sided_p=float(min(1.0, 2 * sps.norm.sf(abs(delong.z)))),
            bootstrap=self._bootstrap_summary(boot),
            mcnemar=mcnemar,
            mcnemar_two_sided_p=mcnemar2.p_value,
            guardrail_mode=self.guardrail_mode,
            curves=curves,
            bootstrap_deltas=_downsample_deltas(boot.deltas[self.primary_metric]),
        )
        self._primary(result, boot, delong)
        result.guardrails = self._guardrails(boot)
        result.policy = [
            PolicyCheck(
                m, margin, table[m].improvement or 0.0, (table[m].improvement or 0.0) >= margin
            )
            for m, margin in self.policy.items()
        ]
        _decide(result)
        return result

    # ------------------------------------------------------------------ pieces

    def _target(self, baseline: Any | None, candidate: Any) -> str:
        if self.target_column:
            return self.target_column
        for model in (candidate, baseline):
            spec = getattr(model, "spec", None)
            if spec is not None and getattr(spec, "target", None):
                return str(spec.target)
        return "target"

    def _absolute_threshold(self, baseline_value: float | None) -> float:
        if self.threshold_type == "absolute" or baseline_value is None:
            return self.improvement_threshold
        return self.improvement_threshold * abs(baseline_value)

    def _no_baseline(
        self, y: np.ndarray, mc: dict[str, float], info: ModelInfo, curves: dict[str, Any]
    ) -> ComparisonResult:
        table = {
            name: MetricComparison(name, None, mc[name], None, None, None, HIGHER_IS_BETTER[name])
            for name in METRICS
        }
        reason = "no production model: the candidate is promoted as the first production model"
        return ComparisonResult(
            primary_metric=self.primary_metric,
            threshold=self.improvement_threshold,
            threshold_type=self.threshold_type,
            threshold_absolute=self._absolute_threshold(None),
            significance_level=self.significance_level,
            strict=self.strict,
            test=self.test,
            baseline=None,
            candidate=info,
            metrics=table,
            decision="PROMOTE",
            reasons=[reason],
            factors=[Factor(True, "No production model yet")],
            n_test=int(y.size),
            n_positive=int(y.sum()),
            n_bootstrap=0,
            seed=self.random_state,
            guardrail_mode=self.guardrail_mode,
            curves=curves,
        )

    def _bootstrap_summary(self, boot: BootstrapResult) -> dict[str, Any]:
        return {
            "n_bootstrap": boot.n_bootstrap,
            "seed": boot.seed,
            "stratified": boot.stratified,
            "paired": True,
            "confidence": boot.confidence,
            "primary_metric": self.primary_metric,
            **boot.summary(self.primary_metric),
            "lower_bound": boot.lower_bound(self.primary_metric, self.significance_level),
        }

    def _primary(
        self, result: ComparisonResult, boot: BootstrapResult, delong: DeLongResult
    ) -> None:
        alpha = self.significance_level
        z = float(sps.norm.ppf(1 - alpha))
        metric = self.primary_metric
        result.improvement = result.metrics[metric].improvement
        if self.test == "delong":
            result.p_value, result.se = delong.p_value, delong.se
            result.lower_bound = delong.diff - z * delong.se
            result.upper_bound = delong.diff + z * delong.se
        else:
            result.p_value, result.se = boot.p_value(metric), boot.sd(metric)
            result.lower_bound = boot.lower_bound(metric, alpha)
            result.upper_bound = boot.lower_bound(metric, 1 - alpha)
        result.minimum_detectable_effect = minimum_detectable_effect(result.se, alpha, POWER)

    def _guardrails(self, boot: BootstrapResult) -> list[GuardrailResult]:
        if not self.guardrails:
            return []
        names = list(self.guardrails)
        if self.guardrail_mode == "harm":
            raw = [boot.p_worse(m, self.guardrails[m]) for m in names]
        else:
            raw = [boot.p_value(m, -self.guardrails[m]) for m in names]
        adjusted = holm(raw)
        alpha = self.significance_level
        out = []
        for m, p, p_adj in zip(names, raw, adjusted, strict=True):
            shown = p_adj < alpha
            breached = shown if self.guardrail_mode == "harm" else not shown
            out.append(
                GuardrailResult(
                    m, self.guardrails[m], self.guardrail_mode, boot.observed[m], p, p_adj, breached
                )
            )
        return out


# ---------------------------------------------------------------------- decision


def _fmt_p(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _decide(r: ComparisonResult) -> None:
    """Fill decision, reasons and decision factors (rules in the module docstring)."""
    metric, alpha = r.primary_metric.upper(), r.significance_level
    imp = r.improvement or 0.0
    thr = r.threshold_absolute
    p = r.p_value if r.p_value is not None else 1.0
    mde = r.minimum_detectable_effect or 0.0
    meets = imp >= thr
    significant = p < alpha
    test_name = "DeLong" if r.test == "delong" else "paired bootstrap"
    factors = [
        Factor(
            meets,
            f"Improvement {'exceeds' if meets else 'below'} threshold "
            f"({imp:.4f} {'>=' if meets else '<'} {thr:.4f})",
        ),
        Factor(
            significant,
            f"{'Statistically significant' if significant else 'Not statistically significant'} "
            f"(p = {_fmt_p(p)} {'<' if significant else '>='} {alpha:g}, {test_name}, one-sided)",
        ),
    ]
    lcb_ok = r.lower_bound is not None and r.lower_bound >= thr
    if r.strict:
        factors.append(
            Factor(
                lcb_ok,
                f"Lower {100 * (1 - alpha):g}% confidence bound "
                f"{'clears' if lcb_ok else 'below'} threshold "
                f"({r.lower_bound:.4f} {'>=' if lcb_ok else '<'} {thr:.4f})",
            )
        )
    factors += [Factor(not g.breached, g.describe()) for g in r.guardrails]
    factors += [
        Factor(
            c.passed,
            f"Policy {c.metric}: improvement {c.improvement:+.4f} "
            f"{'>=' if c.passed else '<'} {c.margin:+.4f}",
        )
        for c in r.policy
    ]
    powered = mde <= thr
    mde_text = f"minimum detectable effect (80% power) {mde:.4f}"
    if powered:
        factors.append(Factor(True, f"Holdout large enough: {mde_text} <= threshold {thr:.4f}"))
    elif significant:
        factors.append(Factor(True, f"Significant although the {mde_text} > threshold {thr:.4f}"))
    else:
        factors.append(Factor(False, f"Holdout too small: {mde_text} > threshold {thr:.4f}"))
    r.factors = factors

    breaches = [g for g in r.guardrails if g.breached]
    failed_policy = [c for c in r.policy if not c.passed]
    gate = lcb_ok if r.strict else (meets and significant)
    row = r.metrics[r.primary_metric]
    change = f"{metric} changed by {row.absolute_change or 0.0:+.4f} ({row.baseline:.4f} → "
    if row.higher_is_better:
        change += f"{row.candidate:.4f})"
    else:  # the threshold applies to the improvement: say which way is better
        change += f"{row.candidate:.4f}; lower is better: improvement {imp:+.4f})"
    if breaches:
        r.decision = "REJECT"
        r.reasons = [
            f"guardrail breached on {g.metric}: {_better_or_worse(g.improvement)}, at most "
            f"{g.margin:.4f} worse allowed"
            for g in breaches
        ]
    elif gate and not failed_policy:
        r.decision = "PROMOTE"
        if r.strict:
            r.reasons = [
                f"{change}; the lower confidence bound {r.lower_bound:.4f} clears "
                f"the threshold {thr:.4f}"
            ]
        else:
            r.reasons = [
                f"{change}, at least the threshold {thr:.4f}, and the improvement is "
                f"statistically significant ({test_name}, one-sided p = {_fmt_p(p)} < {alpha:g})"
            ]
    elif not significant and mde > thr and (r.upper_bound is None or r.upper_bound >= thr):
        r.decision = "INCONCLUSIVE"
        r.reasons = [
            f"{change}, not statistically significant (p = {_fmt_p(p)}), and the holdout of "
            f"{r.n_test} rows is too small to detect the threshold {thr:.4f} "
            f"(minimum detectable effect {mde:.4f} at 80% power)"
        ]
        r.reasons += [
            f"policy not met on {c.metric}: {c.improvement:+.4f} < {c.margin:+.4f}"
            for c in failed_policy
        ]
    else:
        r.decision = "REJECT"
        reasons = []
        # always state the observed change first, met threshold or not
        reasons.append(f"{change}, {'below' if not meets else 'at least'} the threshold {thr:.4f}")
        if not significant:
            reasons.append(
                f"the improvement is not statistically significant (p = {_fmt_p(p)} >= {alpha:g})"
            )
        if r.strict and not lcb_ok:
            reasons.append(
                f"the lower confidence bound {r.lower_bound:.4f} does not clear {thr:.4f}"
            )
        reasons += [
            f"policy not met on {c.metric}: {c.improvement:+.4f} < {c.margin:+.4f}"
            for c in failed_policy
        ]
        r.reasons = reasons


# ---------------------------------------------------------------------- input checks


def _metric_name(name: str, what: str) -> str:
    metric = canonical_metric(str(name))
    if metric is None:
        raise ComparisonInputError(
            f"unknown metric {name!r} for {what}; known: {', '.join(METRICS)}"
        )
    return metric


def _in_range(value: float, name: str, low: float, high: float, open_low: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ComparisonInputError(f"{name} must be a number, got {value!r}") from None
    too_low = v <= low if open_low else v < low
    if not math.isfinite(v) or too_low or v > high:
        bracket = "(" if open_low else "["
        raise ComparisonInputError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return v


def _margins(margins: Mapping[str, float] | None, what: str, lowest: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, margin in (margins or {}).items():
        metric = _metric_name(name, what)
        out[metric] = _in_range(margin, f"{what} margin for {name}", lowest, 1.0)
    return out


def _check_specs(baseline: Any, candidate: Any, df: pd.DataFrame, target: str) -> None:
    specs = {
        who: getattr(model, "spec", None)
        for who, model in (("baseline", baseline), ("candidate", candidate))
        if model is not None
    }
    features = {who: list(getattr(s, "features", [])) for who, s in specs.items() if s is not None}
    if len(features) == 2 and features["baseline"] != features["candidate"]:
        b, c = features["baseline"], features["candidate"]
        only_b = sorted(set(b) - set(c))
        only_c = sorted(set(c) - set(b))
        detail = f"only in baseline: {only_b}, only in candidate: {only_c}"
        if not only_b and not only_c:
            detail = "same features in a different order"
        raise ComparisonInputError(f"the models' feature specs differ ({detail})")
    for who, cols in features.items():
        missing = [col for col in cols if col not in df.columns]
        if missing:
            raise ComparisonInputError(
                f"test data lacks the {who} model's feature columns {missing}"
            )
    if target not in df.columns:
        raise ComparisonInputError(f"test data has no target column {target!r}")


def _encode_target(df: pd.DataFrame, target: str) -> np.ndarray:
    col = df[target]
    if col.isna().any():
        raise ComparisonInputError(
            f"target column {target!r} has {int(col.isna().sum())} missing values"
        )
    values = set(pd.unique(col).tolist())
    if values <= {0, 1}:  # also True/False
        return col.to_numpy().astype(np.int8)
    try:
        from model import data as data_module

        encode = getattr(data_module, "encode_target", None)
    except ImportError:  # pragma: no cover - data module missing
        encode = None
    if encode is None:
        raise ComparisonInputError(
            f"target column {target!r} must hold 0/1, got {sorted(map(str, values))[:5]}"
        )
    try:
        return np.asarray(encode(col, "test data")).astype(np.int8)
    except RetrainError as exc:
        raise ComparisonInputError(f"target column {target!r}: {exc}") from exc


def _check_labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true).ravel()
    if y.size == 0:
        raise ComparisonInputError("the test set is empty (0 rows)")
    if not np.isin(y, (0, 1)).all():
        raise ComparisonInputError("labels must be 0/1")
    y = y.astype(np.int8)
    n_pos = int(y.sum())
    if n_pos < 2 or y.size - n_pos < 2:
        raise ComparisonInputError(
            f"the test set needs both classes (at least 2 rows each): {n_pos} positives, "
            f"{y.size - n_pos} negatives"
        )
    return y


def _check_scores(scores: Any, n: int, who: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    s = s.ravel()
    if s.size != n:
        raise ComparisonInputError(f"the {who} model returned {s.size} scores for {n} rows")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ComparisonInputError(
            f"the {who} model returned {int(bad.sum())} NaN or infinite scores (first at row "
            f"{int(np.flatnonzero(bad)[0])})"
        )
    if s.min() < 0 or s.max() > 1:
        raise ComparisonInputError(
            f"the {who} model's scores must be probabilities in [0, 1], got range "
            f"[{s.min():.4g}, {s.max():.4g}]"
        )
    return s


def _score(model: Any, df: pd.DataFrame, who: str) -> np.ndarray:
    if not hasattr(model, "predict_proba"):
        raise ComparisonInputError(f"the {who} model has no predict_proba(df)")
    return _check_scores(model.predict_proba(df), len(df), who)


def _metric_table(
    mb: dict[str, float], mc: dict[str, float], boot: BootstrapResult
) -> dict[str, MetricComparison]:
    table = {}
    for name in METRICS:
        lo, hi = boot.ci(name)
        table[name] = MetricComparison(
            name=name,
            baseline=mb[name],
            candidate=mc[name],
            absolute_change=mc[name] - mb[name],
            relative_change=relative_change(mb[name], mc[name]),
            improvement=boot.observed[name],
            higher_is_better=HIGHER_IS_BETTER[name],
            ci_low=lo,
            ci_high=hi,
            p_value=boot.p_value(name),
        )
    return table


def _curves(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    return curve_points(y, s, MAX_CURVE_POINTS)


def _downsample_deltas(deltas: np.ndarray) -> list[float]:
    d = np.sort(deltas)
    if d.size > MAX_DELTAS:
        d = np.quantile(d, np.linspace(0, 1, MAX_DELTAS))
    return [float(x) for x in d]


# ---------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The comparison options (shared by ``python -m model.comparator`` and ``retrain compare``)."""
    parser.add_argument("--baseline", help="production model folder or model.pt (omit: none yet)")
    parser.add_argument("--new", "--candidate", dest="new", required=True, help="candidate model")
    parser.add_argument("--test-data", required=True, help="holdout: CSV, Parquet file or folder")
    parser.add_argument("--output", help="write the JSON report here")
    parser.add_argument("--html", help="write the HTML report here")
    parser.add_argument("--markdown", help="write the Markdown summary here")
    parser.add_argument("--metric", default="auc", help="primary metric (default: auc)")
    parser.add_argument("--threshold", type=float, default=0.02, help="required improvement")
    parser.add_argument("--threshold-type", choices=("absolute", "relative"), default="absolute")
    parser.add_argument("--alpha", "--significance-level", dest="alpha", type=float, default=0.05)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--strict", action="store_true", help="gate on the lower confidence bound")
    parser.add_argument("--test", choices=("auto", "delong", "bootstrap"), default="auto")
    parser.add_argument(
        "--guardrail",
        action="append",
        default=[],
        metavar="METRIC=MARGIN",
        help="largest allowed worsening, e.g. recall=0.01 (repeatable)",
    )
    parser.add_argument("--guardrail-mode", choices=("harm", "non_inferiority"), default="harm")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="METRIC=MARGIN",
        help="every listed metric must improve by its margin, e.g. f1=0 (repeatable)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run a comparison from parsed options; print the text report; return the exit code."""
    from model.gate import report

    try:
        comparator = ModelComparator(
            primary_metric=args.metric,
            improvement_threshold=args.threshold,
            threshold_type=args.threshold_type,
            significance_level=args.alpha,
            n_bootstrap=args.n_bootstrap,
            random_state=args.seed,
            guardrails=_parse_pairs(args.guardrail, "--guardrail"),
            policy=_parse_pairs(args.policy, "--policy"),
            strict=args.strict,
            test=args.test,
            guardrail_mode=args.guardrail_mode,
        )
        from model.training.artifact import load_model

        baseline = load_model(args.baseline) if args.baseline else None
        candidate = load_model(args.new)
        test_data = read_test_data(args.test_data)
        result = comparator.compare(baseline, candidate, test_data)
        print(report.to_text(result))
        if args.output:
            report.write_json(result, args.output)
        if args.html:
            report.write_html(result, args.html)
        if args.markdown:
            Path(args.markdown).write_text(report.to_markdown(result), encoding="utf-8")
        return result.exit_code
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parse_pairs(items: Sequence[str], option: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ComparisonInputError(f"{option} expects METRIC=NUMBER, got {item!r}")
    return out


def read_test_data(source: str | Path) -> pd.DataFrame:
    """Read the holdout with ``model.data.read_table`` when available, else pandas."""
    path = Path(source)
    if not path.exists():
        raise ComparisonInputError(f"test data {str(path)!r} does not exist")
    from model import data as data_module

    reader = getattr(data_module, "read_table", None)
    if reader is not None:
        return reader(path)
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ComparisonInputError(f"cannot read test data {str(path)!r}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.comparator",
        description="Compare a candidate model with the production model on a holdout. "
        "Exit codes: 0 PROMOTE, 3 REJECT, 4 INCONCLUSIVE, 2 bad input, 1 unexpected error.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


__all__ = [
    "EXIT_CODES",
    "ComparisonResult",
    "GuardrailResult",
    "MetricComparison",
    "ModelComparator",
    "ModelInfo",
    "PolicyCheck",
    "add_arguments",
    "main",
    "read_test_data",
    "run_from_args",
]

if __name__ == "__main__":
    raise SystemExit(main())
