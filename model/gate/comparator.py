"""The promotion gate: compare a candidate with the production model on the holdout.

``ModelComparator(...).compare(baseline, candidate, test_data) -> ComparisonResult``. The way
through is one direction, a module per stage:

    inputs (check and score)  →  measure (every metric at the decision's level, per population)
    →  decide (the rule, guardrails, reasons)  →  report (text, JSON, HTML, Markdown)

The level of the decision comes from its rows (:mod:`model.gate.evidence`): given the batch of
every row and the batch sets of the model's earlier decisions, a decision on rows that include
a batch no earlier decision used tests at the full α; the j-th decision on exactly the same
rows at α·6/(π²j²). Without a history (``retrain compare``), ``holdout_uses`` states j.
Guardrails are tested at α, whatever the decision's level: they never weaken. When the
holdout holds rows production has not been trained on (``recent``), the decision is made on
them if each class has at least ``min_class_count`` rows, and the whole holdout becomes a
non-inferiority guardrail. The rule itself is in :mod:`model.gate.decide`.

The lab's CLI (``python -m model.comparator``) is :mod:`model.gate.cli`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from model.errors import ComparisonInputError
from model.gate.decide import adjust_harm, decide, guardrail
from model.gate.evidence import Evidence, class_counts, evidence_for, given
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
DEVICES = ("cpu", "cuda", "auto")
"""Where the bootstrap and DeLong's test run: the CPU kernels, CUDA (torch; the same numbers,
:mod:`model.gate.device`), or CUDA when torch sees a GPU."""
GUARDRAIL_MODES = ("non_inferiority", "harm")
DEFAULT_THRESHOLD = 0.005
DEFAULT_MIN_CLASS_COUNT = 100
DEFAULT_CALIBRATION_MARGIN = 0.01


class ModelComparator:
    """Statistically gated comparison of a candidate with the production model.

    Args:
        primary_metric: the metric the decision is made on (default ``auc``).
        improvement_threshold: the guaranteed minimum gain T (absolute, or a fraction of the
            baseline's value when ``threshold_type="relative"``).
        significance_level: α, the level of a decision on fresh rows and of every guardrail.
        holdout_uses: j, this decision's number among decisions on the same rows, when no
            history is given to :meth:`compare` (1: fresh rows, level α; j ≥ 2: α·6/(π²j²)).
        min_class_count: fewer positives or negatives than this → INCONCLUSIVE.
        rule: ``"threshold"`` (lower bound > T) or ``"lab"`` (Δ ≥ T and p(Δ > 0) < the level).
        calibration_margin: non-inferiority margin on log loss (None: off).
        holdout_margin: non-inferiority margin of the primary metric on the whole holdout
            when the decision is made on the recent rows.
        guardrails: ``{metric: margin}``, the most it may be worse (``guardrail_mode``:
            ``"non_inferiority"``, the default, must show it is not worse by more; ``"harm"``
            blocks only a shown breach).
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
        guardrail_mode: str = "non_inferiority",
        target_column: str | None = None,
        n_jobs: int | None = None,
        statistical_significance_threshold: float | None = None,
        device: str = "cpu",
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
        self.threshold_type = _choice(threshold_type, "threshold_type", ("absolute", "relative"))
        alpha = 0.05 if significance_level is None else significance_level
        self.significance_level = in_range(alpha, "significance_level", 0, 0.5, open_low=True)
        if int(n_bootstrap) < 20:
            raise ComparisonInputError(f"n_bootstrap must be at least 20, got {n_bootstrap}")
        self.n_bootstrap = int(n_bootstrap)
        self.random_state = random_state
        self.guardrails = margins(guardrails, "guardrail", lowest=0.0)
        self.policy = margins(policy, "policy", lowest=-1.0)
        self.holdout_uses = _integer(holdout_uses, "holdout_uses", 1)
        self.min_class_count = _integer(min_class_count, "min_class_count", 2)
        self.rule = _choice(rule, "rule", RULES)
        self.strict = bool(strict)
        self.calibration_margin = (
            None
            if calibration_margin is None
            else in_range(calibration_margin, "calibration_margin", 0, 1)
        )
        self.holdout_margin = in_range(holdout_margin, "holdout_margin", 0, 1)
        if _choice(test, "test", ("auto", "delong", "bootstrap")) == "delong" and (
            self.primary_metric != "auc"
        ):
            raise ComparisonInputError("DeLong's test applies to the AUC only")
        self.guardrail_mode = _choice(guardrail_mode, "guardrail_mode", GUARDRAIL_MODES)
        self.target_column = target_column
        self.n_jobs = n_jobs
        self.device = _choice(device, "device", DEVICES)  # whether CUDA is there: at compare

    def statistics_device(self) -> Any:
        """The torch device the bootstrap and DeLong's test run on (:mod:`model.gate.device`),
        or None for the CPU kernels: ``device="auto"`` means CUDA when torch sees a GPU."""
        if self.device == "cpu":
            return None
        from model.gate.device import resolve

        return resolve(self.device)

    @property
    def level(self) -> float:
        """The level of a decision without a history: that of ``holdout_uses``."""
        return given(self.holdout_uses, self.significance_level).level

    # ------------------------------------------------------------------ entry points

    def compare(
        self,
        baseline: Any | None,
        candidate: Any,
        test_data: pd.DataFrame,
        recent: np.ndarray | pd.Series | None = None,
        *,
        batches: Sequence[str] | None = None,
        earlier: Sequence[frozenset[str]] | None = None,
    ) -> ComparisonResult:
        """Score both models on ``test_data`` and decide.

        ``recent``: a boolean mask of the rows production has not been trained on (the
        newest batches); the decision is made on them when they are enough. ``batches``: the
        batch id of every row, and ``earlier``: the batch sets of the model's earlier
        decisions (:func:`model.gate.evidence.earlier_decisions`): together they set the level
        (:mod:`model.gate.evidence`); without them, ``holdout_uses`` does.
        """
        if candidate is None:
            raise ComparisonInputError("no candidate model given")
        if not isinstance(test_data, pd.DataFrame):
            raise ComparisonInputError(
                f"test data must be a DataFrame, got {type(test_data).__name__}"
            )
        if len(test_data) == 0:
            raise ComparisonInputError("the test set is empty (0 rows)")
        target = self.target_column or target_of(baseline, candidate)
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
            batches=batches,
            earlier=earlier,
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
        batches: Sequence[str] | None = None,
        earlier: Sequence[frozenset[str]] | None = None,
    ) -> ComparisonResult:
        """Decide from precomputed probabilities (same rows, same order); ``recent``,
        ``batches`` and ``earlier`` as in :meth:`compare`."""
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
        ids = None if batches is None else _batch_array(batches, y.size)
        if baseline_scores is None:
            pop = measure_untested("holdout", y, sc, candidate_threshold, None)
            evidence = _evidence(ids, y, earlier, self.holdout_uses, self)
            result = self._result(None, c_info, {"holdout": pop}, "holdout", None, evidence)
            decide(result)
            return result
        sb = check_scores(baseline_scores, y.size, "baseline")
        b_info = baseline_info or ModelInfo(decision_threshold=baseline_threshold)
        args = (baseline_threshold, candidate_threshold)
        decided_on, notes = choose_population(y, recent, self.min_class_count)
        rows = recent if decided_on == "recent" else np.ones(y.size, bool)
        evidence = _evidence(
            None if ids is None else ids[rows], y[rows], earlier, self.holdout_uses, self
        )
        level = evidence.level
        thr = self.improvement_threshold
        if self.threshold_type == "relative":  # T·|baseline| on the deciding rows
            thr *= abs(compute_metrics(y[rows], sb[rows], baseline_threshold)[self.primary_metric])
        null = 0.0 if self.rule == "lab" else thr  # the lab's test is "gain > 0"
        on = self.statistics_device()
        populations = {"holdout": self._measure("holdout", y, sb, sc, args, null, level, on)}
        if recent is not None and _testable(y[recent]):
            populations["recent"] = self._measure(
                "recent", y[recent], sb[recent], sc[recent], args, null, level, on
            )
        result = self._result(b_info, c_info, populations, decided_on, thr, evidence)
        return self._decided(result, notes)

    def _evidence_of(
        self, counts: dict[str, tuple[int, int]], earlier: Sequence[frozenset[str]] | None
    ) -> Evidence:
        """The evidence of a decision on rows with these batch class counts."""
        if earlier is None or not counts:
            return given(self.holdout_uses, self.significance_level)
        return evidence_for(counts, earlier, self.significance_level, self.min_class_count)

    # ------------------------------------------------------------------ pieces

    def _measure(
        self,
        name: str,
        y: np.ndarray,
        sb: np.ndarray,
        sc: np.ndarray,
        thresholds: tuple[float, float],
        thr: float,
        level: float,
        device: Any = None,
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
            level=level,
            n_bootstrap=self.n_bootstrap,
            seed=self.random_state,
            n_jobs=self.n_jobs,
            device=device,
        )

    def _result(
        self,
        baseline: ModelInfo | None,
        candidate: ModelInfo,
        populations: dict[str, Population],
        decided_on: str,
        thr: float | None,
        evidence: Evidence,
    ) -> ComparisonResult:
        return ComparisonResult(
            primary_metric=self.primary_metric,
            threshold=self.improvement_threshold,
            threshold_type=self.threshold_type,
            threshold_absolute=self.improvement_threshold if thr is None else thr,
            significance_level=self.significance_level,
            rule=self.rule,
            holdout_uses=evidence.uses,
            level=evidence.level,
            evidence=evidence.to_dict() | {"explained": evidence.describe()},
            guardrail_level=self.significance_level,
            min_class_count=self.min_class_count,
            test=_METHODS[self.primary_metric],
            baseline=baseline,
            candidate=candidate,
            populations=populations,
            decided_on=decided_on,
            n_bootstrap=0 if baseline is None else self.n_bootstrap,
            seed=self.random_state,
            guardrail_mode=self.guardrail_mode,
            device=_ran_on(populations),
        )

    def _decided(self, result: ComparisonResult, notes: list[str]) -> ComparisonResult:
        """Guardrails, policy and the decision on a result's measured populations."""
        result.notes = notes
        result.guardrails = _guardrails(self, result.populations, result.decided_on)
        self._policy(result)
        decide(result)
        return result

    def _policy(self, result: ComparisonResult) -> None:
        gains = {m: result.metrics[m].improvement or 0.0 for m in self.policy}
        result.policy = [PolicyCheck(m, t, gains[m], gains[m] >= t) for m, t in self.policy.items()]


def _guardrails(
    gate: ModelComparator, populations: dict[str, Population], decided_on: str
) -> list[GuardrailResult]:
    """The guardrails of a decision on ``decided_on``: the user's, calibration, and the whole
    holdout's when the recent rows decide."""
    level = gate.significance_level  # fixed: guardrails never weaken with reuse
    metrics = populations[decided_on].metrics
    out = [
        guardrail(metrics[m], margin, gate.guardrail_mode, decided_on, level, "user")
        for m, margin in gate.guardrails.items()
    ]
    out = adjust_harm(out, level)
    if gate.calibration_margin is not None:
        out.append(
            guardrail(
                metrics["log_loss"],
                gate.calibration_margin,
                "non_inferiority",
                decided_on,
                level,
                "calibration",
            )
        )
    if decided_on != "holdout":
        whole = populations["holdout"].metrics[gate.primary_metric]
        out.append(
            guardrail(whole, gate.holdout_margin, "non_inferiority", "holdout", level, "holdout")
        )
    return out


def _ran_on(populations: dict[str, Population]) -> str:
    """Where the tested populations' bootstrap ran ("cpu" without one)."""
    ran = {(p.bootstrap or {}).get("device", "cpu") for p in populations.values()}
    return "cuda" if "cuda" in ran else "cpu"


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        shown = " or ".join(repr(c) for c in choices)
        raise ComparisonInputError(f"{name} must be {shown}, not {value!r}")
    return value


def _integer(value: Any, name: str, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lowest:
        raise ComparisonInputError(f"{name} must be an integer >= {lowest}, got {value!r}")
    return int(value)


def _evidence(
    batches: np.ndarray | None,
    y: np.ndarray,
    earlier: Sequence[frozenset[str]] | None,
    holdout_uses: int,
    gate: ModelComparator,
) -> Evidence:
    """The decision's evidence: from its rows' batches (with their class counts) and the earlier
    decisions, or the ``holdout_uses`` the caller stated."""
    if batches is None or earlier is None or batches.size == 0:
        return given(holdout_uses, gate.significance_level)
    return gate._evidence_of(class_counts(batches.tolist(), y.tolist()), earlier)


def target_of(baseline: Any | None, candidate: Any) -> str:
    """The target column the models' specs name (``target`` when neither does)."""
    for model in (candidate, baseline):
        spec = getattr(model, "spec", None)
        if spec is not None and getattr(spec, "target", None):
            return str(spec.target)
    return "target"


def choose_population(
    y: np.ndarray, recent: np.ndarray | None, min_class_count: int
) -> tuple[str, list[str]]:
    """Where the decision is made: the recent rows when each class has at least
    ``min_class_count`` of them, else the whole holdout (and why, as a note)."""
    if recent is None or not recent.any():
        return "holdout", []
    yr = y[recent]
    pos = int(yr.sum())
    return population_of(pos, int(yr.size) - pos, min_class_count)


def population_of(pos: int, neg: int, min_class_count: int) -> tuple[str, list[str]]:
    """:func:`choose_population` from the recent rows' class counts."""
    if pos + neg == 0:
        return "holdout", []
    if min(pos, neg) >= min_class_count:
        return "recent", []
    return "holdout", [
        f"decided on the whole holdout: its {pos + neg} recent rows (from batches production "
        f"was not trained on) have {pos} positives and {neg} negatives, fewer than "
        f"{min_class_count} of each"
    ]


def _batch_array(batches: Sequence[str], n: int) -> np.ndarray:
    ids = np.asarray(batches, dtype=object)
    if ids.shape != (n,):
        raise ComparisonInputError(f"batches must hold one batch id per row ({n}), got {ids.shape}")
    return ids.astype(str)


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
