"""The promotion gate: compare a candidate with the production model on the holdout.

``ModelComparator(...).compare(baseline, candidate, test_data) -> ComparisonResult``. The way
through is one direction, a module per stage:

    inputs (check and score)  →  measure (every metric, tested at α_k, per population)
    →  decide (the rule, guardrails, reasons)  →  report (text, JSON, HTML, Markdown)

α is the budget of the model's whole family of comparisons (:mod:`model.gate.budget`):
comparison ``holdout_uses = k`` tests at α_k = α·6/(π²k²). When the holdout holds rows
production has not been trained on (``recent``), the decision is made on them if each class
has at least ``min_class_count`` rows, and the whole holdout becomes a non-inferiority
guardrail. The rule itself is in :mod:`model.gate.decide`.

The lab's CLI (``python -m model.comparator``) is :mod:`model.gate.cli`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from model.errors import ComparisonInputError
from model.gate.budget import alpha_for
from model.gate.decide import adjust_harm, decide, guardrail
from model.gate.inputs import (
    check_labels,
    check_scores,
    check_specs,
    encode_target,
    in_range,
    margins,
    metric_name,
    score,
)
from model.gate.measure import measure, measure_untested
from model.gate.metrics import METRICS, compute_metrics
from model.gate.result import (
    EXIT_CODES,
    ComparisonResult,
    Decision,
    Factor,
    GuardrailResult,
    MetricComparison,
    ModelInfo,
    PolicyCheck,
    Population,
)

RULES = ("threshold", "lab")
DEFAULT_THRESHOLD = 0.005
DEFAULT_MIN_CLASS_COUNT = 100
DEFAULT_CALIBRATION_MARGIN = 0.01


class ModelComparator:
    """Statistically gated comparison of a candidate with the production model.

    Args:
        primary_metric: the metric the decision is made on (default ``auc``).
        improvement_threshold: the guaranteed minimum gain T (absolute, or a fraction of the
            baseline's value when ``threshold_type="relative"``).
        significance_level: α, the budget of the model's whole family of comparisons.
        holdout_uses: k, this comparison's number in the family (1 for the first).
        min_class_count: fewer positives or negatives than this → INCONCLUSIVE.
        rule: ``"threshold"`` (lower bound > T) or ``"lab"`` (Δ ≥ T and p(Δ > 0) < α_k).
        calibration_margin: non-inferiority margin on log loss (None: off).
        holdout_margin: non-inferiority margin of the primary metric on the whole holdout
            when the decision is made on the recent rows.
        guardrails: ``{metric: margin}``, the most it may be worse (``guardrail_mode``).
        policy: ``{metric: margin}``: each listed metric must improve by its margin.
    """

    def __init__(
        self,
        primary_metric: str = "auc",
        improvement_threshold: float = DEFAULT_THRESHOLD,
        threshold_type: str = "absolute",
        significance_level: float | None = None,
        n_bootstrap: int = 1000,
        random_state: int | None = 42,
        guardrails: Mapping[str, float] | None = None,
        policy: Mapping[str, float] | None = None,
        *,
        holdout_uses: int = 1,
        min_class_count: int = DEFAULT_MIN_CLASS_COUNT,
        rule: str = "threshold",
        calibration_margin: float | None = DEFAULT_CALIBRATION_MARGIN,
        holdout_margin: float = 0.01,
        strict: bool = True,
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
        self.primary_metric = metric_name(primary_metric, "primary_metric")
        self.improvement_threshold = in_range(improvement_threshold, "improvement_threshold", 0, 1)
        if threshold_type not in ("absolute", "relative"):
            raise ComparisonInputError(
                f"threshold_type must be 'absolute' or 'relative', not {threshold_type!r}"
            )
        self.threshold_type = threshold_type
        alpha = 0.05 if significance_level is None else significance_level
        self.significance_level = in_range(alpha, "significance_level", 0, 0.5, open_low=True)
        if int(n_bootstrap) < 20:
            raise ComparisonInputError(f"n_bootstrap must be at least 20, got {n_bootstrap}")
        self.n_bootstrap = int(n_bootstrap)
        self.random_state = random_state
        self.guardrails = margins(guardrails, "guardrail", lowest=0.0)
        self.policy = margins(policy, "policy", lowest=-1.0)
        if not isinstance(holdout_uses, int | np.integer) or int(holdout_uses) < 1:
            raise ComparisonInputError(
                f"holdout_uses must be an integer >= 1, got {holdout_uses!r}"
            )
        self.holdout_uses = int(holdout_uses)
        if not isinstance(min_class_count, int | np.integer) or int(min_class_count) < 2:
            raise ComparisonInputError(
                f"min_class_count must be an integer >= 2, got {min_class_count!r}"
            )
        self.min_class_count = int(min_class_count)
        if rule not in RULES:
            raise ComparisonInputError(f"rule must be one of {RULES}, not {rule!r}")
        self.rule = rule
        self.strict = bool(strict)
        self.calibration_margin = (
            None
            if calibration_margin is None
            else in_range(calibration_margin, "calibration_margin", 0, 1)
        )
        self.holdout_margin = in_range(holdout_margin, "holdout_margin", 0, 1)
        if test not in ("auto", "delong", "bootstrap"):
            raise ComparisonInputError(
                f"test must be 'auto', 'delong' or 'bootstrap', not {test!r}"
            )
        if test == "delong" and self.primary_metric != "auc":
            raise ComparisonInputError("DeLong's test applies to the AUC only")
        if guardrail_mode not in ("harm", "non_inferiority"):
            raise ComparisonInputError(
                f"guardrail_mode must be 'harm' or 'non_inferiority', not {guardrail_mode!r}"
            )
        self.guardrail_mode = guardrail_mode
        self.target_column = target_column
        self.n_jobs = n_jobs

    @property
    def level(self) -> float:
        """α_k: what this comparison may spend of the family's budget."""
        return alpha_for(self.holdout_uses, self.significance_level)

    # ------------------------------------------------------------------ entry points

    def compare(
        self,
        baseline: Any | None,
        candidate: Any,
        test_data: pd.DataFrame,
        recent: np.ndarray | pd.Series | None = None,
    ) -> ComparisonResult:
        """Score both models on ``test_data`` and decide.

        ``recent``: a boolean mask of the rows production has not been trained on (the
        newest batches); the decision is made on them when they are enough.
        """
        if candidate is None:
            raise ComparisonInputError("no candidate model given")
        if not isinstance(test_data, pd.DataFrame):
            raise ComparisonInputError(
                f"test data must be a DataFrame, got {type(test_data).__name__}"
            )
        if len(test_data) == 0:
            raise ComparisonInputError("the test set is empty (0 rows)")
        target = self._target(baseline, candidate)
        check_specs(baseline, candidate, test_data, target)
        y = encode_target(test_data, target)
        sc = score(candidate, test_data, "candidate")
        c_info = ModelInfo.of(candidate)
        sb = None if baseline is None else score(baseline, test_data, "baseline")
        b_info = None if baseline is None else ModelInfo.of(baseline)
        return self.compare_scores(
            y,
            sb,
            sc,
            b_info.decision_threshold if b_info else 0.5,
            c_info.decision_threshold,
            baseline_info=b_info,
            candidate_info=c_info,
            recent=None if recent is None else np.asarray(recent, dtype=bool),
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
        recent: np.ndarray | None = None,
    ) -> ComparisonResult:
        """Decide from precomputed probabilities (same rows, same order)."""
        y = check_labels(y_true)
        sc = check_scores(candidate_scores, y.size, "candidate")
        c_info = candidate_info or ModelInfo(decision_threshold=candidate_threshold)
        if recent is not None:
            recent = np.asarray(recent)
            if recent.shape != y.shape or recent.dtype != bool:
                raise ComparisonInputError(
                    f"the recent-rows mask must hold {y.size} booleans, got shape "
                    f"{recent.shape} of {recent.dtype}"
                )
        if baseline_scores is None:
            pop = measure_untested("holdout", y, sc, candidate_threshold, None)
            result = self._result(None, c_info, {"holdout": pop}, "holdout", None)
            decide(result)
            return result
        sb = check_scores(baseline_scores, y.size, "baseline")
        b_info = baseline_info or ModelInfo(decision_threshold=baseline_threshold)
        args = (baseline_threshold, candidate_threshold)
        decided_on, notes = choose_population(y, recent, self.min_class_count)
        rows = recent if decided_on == "recent" else np.ones(y.size, bool)
        thr = self._absolute_threshold(y[rows], sb[rows], baseline_threshold)
        null = 0.0 if self.rule == "lab" else thr  # the lab's test is "gain > 0"
        populations = {"holdout": self._measure("holdout", y, sb, sc, args, null)}
        if recent is not None and _testable(y[recent]):
            populations["recent"] = self._measure(
                "recent", y[recent], sb[recent], sc[recent], args, null
            )
        result = self._result(b_info, c_info, populations, decided_on, thr)
        result.notes = notes
        result.guardrails = self._guardrails(populations, decided_on)
        metrics = result.metrics
        result.policy = [
            PolicyCheck(
                m,
                margin,
                metrics[m].improvement or 0.0,
                (metrics[m].improvement or 0.0) >= margin,
            )
            for m, margin in self.policy.items()
        ]
        decide(result)
        return result

    # ------------------------------------------------------------------ pieces

    def _measure(
        self,
        name: str,
        y: np.ndarray,
        sb: np.ndarray,
        sc: np.ndarray,
        thresholds: tuple[float, float],
        thr: float,
    ) -> Population:
        if not _testable(y):
            return measure_untested(name, y, sc, thresholds[1], (sb, thresholds[0]))
        return measure(
            name,
            y,
            sb,
            sc,
            *thresholds,
            primary=self.primary_metric,
            threshold=thr,
            level=self.level,
            n_bootstrap=self.n_bootstrap,
            seed=self.random_state,
            n_jobs=self.n_jobs,
        )

    def _result(
        self,
        baseline: ModelInfo | None,
        candidate: ModelInfo,
        populations: dict[str, Population],
        decided_on: str,
        thr: float | None,
    ) -> ComparisonResult:
        return ComparisonResult(
            primary_metric=self.primary_metric,
            threshold=self.improvement_threshold,
            threshold_type=self.threshold_type,
            threshold_absolute=self.improvement_threshold if thr is None else thr,
            significance_level=self.significance_level,
            rule=self.rule,
            holdout_uses=self.holdout_uses,
            level=self.level,
            min_class_count=self.min_class_count,
            test=_METHODS[self.primary_metric],
            baseline=baseline,
            candidate=candidate,
            populations=populations,
            decided_on=decided_on,
            n_bootstrap=0 if baseline is None else self.n_bootstrap,
            seed=self.random_state,
            guardrail_mode=self.guardrail_mode,
        )

    def _guardrails(
        self, populations: dict[str, Population], decided_on: str
    ) -> list[GuardrailResult]:
        level = self.level
        metrics = populations[decided_on].metrics
        out = [
            guardrail(metrics[m], margin, self.guardrail_mode, decided_on, level, "user")
            for m, margin in self.guardrails.items()
        ]
        out = adjust_harm(out, level)
        if self.calibration_margin is not None:
            out.append(
                guardrail(
                    metrics["log_loss"],
                    self.calibration_margin,
                    "non_inferiority",
                    decided_on,
                    level,
                    "calibration",
                )
            )
        if decided_on != "holdout":
            whole = populations["holdout"].metrics[self.primary_metric]
            out.append(
                guardrail(
                    whole, self.holdout_margin, "non_inferiority", "holdout", level, "holdout"
                )
            )
        return out

    def _target(self, baseline: Any | None, candidate: Any) -> str:
        if self.target_column:
            return self.target_column
        for model in (candidate, baseline):
            spec = getattr(model, "spec", None)
            if spec is not None and getattr(spec, "target", None):
                return str(spec.target)
        return "target"

    def _absolute_threshold(self, y: np.ndarray, sb: np.ndarray, tb: float) -> float:
        """T in the metric's units: relative thresholds scale the baseline's holdout value."""
        if self.threshold_type == "absolute":
            return self.improvement_threshold
        return self.improvement_threshold * abs(compute_metrics(y, sb, tb)[self.primary_metric])


def choose_population(
    y: np.ndarray, recent: np.ndarray | None, min_class_count: int
) -> tuple[str, list[str]]:
    """Where the decision is made: the recent rows when each class has at least
    ``min_class_count`` of them, else the whole holdout (and why, as a note)."""
    if recent is None or not recent.any():
        return "holdout", []
    yr = y[recent]
    pos, neg = int(yr.sum()), int(yr.size - yr.sum())
    if min(pos, neg) >= min_class_count:
        return "recent", []
    return "holdout", [
        f"decided on the whole holdout: its {yr.size} recent rows (from batches production "
        f"was not trained on) have {pos} positives and {neg} negatives, fewer than "
        f"{min_class_count} of each"
    ]


def _testable(y: np.ndarray) -> bool:
    """At least two rows of each class (what DeLong's test and the bootstrap need)."""
    return min(int(y.sum()), int(y.size - y.sum())) >= 2


_METHODS = {m: "bootstrap-normal" for m in METRICS} | {
    "auc": "delong",
    "log_loss": "paired-normal",
    "brier": "paired-normal",
}


__all__ = [
    "EXIT_CODES",
    "ComparisonResult",
    "Decision",
    "Factor",
    "GuardrailResult",
    "MetricComparison",
    "ModelComparator",
    "ModelInfo",
    "PolicyCheck",
    "Population",
]
