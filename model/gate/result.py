"""What a comparison produces: per-metric tests, populations, guardrails and the decision.

Plain data with ``to_dict`` (the JSON report, DESIGN.md's schema plus the lab's keys). Every
number a report prints comes from here, so the decision and its reports cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from model import clock
from model.gate.stats import DeLongResult, McNemarResult

Decision = Literal["PROMOTE", "REJECT", "INCONCLUSIVE"]
EXIT_CODES: Mapping[str, int] = {"PROMOTE": 0, "REJECT": 3, "INCONCLUSIVE": 4}

METHOD_NAMES: Mapping[str, str] = {
    "delong": "DeLong",
    "paired-normal": "paired mean difference, normal interval",
    "bootstrap-normal": "paired bootstrap standard error, normal interval",
}


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
    """One metric for both models, with its test at the comparison's level.

    ``improvement`` is oriented (positive = candidate better; sign flipped for log loss and
    Brier). ``ci_low``/``ci_high`` are the two-sided (1 − 2a) interval of the improvement at the
    decision's level a, i.e. its one-sided (1 − a) lower and upper bounds; ``p_value`` is
    one-sided for H1: improvement > ``null_value`` (the threshold for the primary metric, else
    0).
    """

    name: str
    baseline: float | None
    candidate: float
    absolute_change: float | None  # candidate − baseline
    relative_change: float | None  # (candidate − baseline) / |baseline|
    improvement: float | None
    higher_is_better: bool
    method: str | None = None  # "delong", "paired-normal" or "bootstrap-normal"
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    null_value: float = 0.0
    df: int | None = None  # Student's t degrees of freedom (bootstrap standard errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "absolute_change": self.absolute_change,
            "relative_change": self.relative_change,
            "improvement": self.improvement,
            "higher_is_better": self.higher_is_better,
            "method": self.method,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "null_value": self.null_value,
            "df": self.df,
        }


@dataclass
class Population:
    """Both models measured on one set of holdout rows ("holdout": the whole stable test
    split; "recent": its rows from batches production has not trained on)."""

    name: str
    n: int
    n_positive: int
    metrics: dict[str, MetricComparison]
    delong: DeLongResult | None = None
    mcnemar: McNemarResult | None = None
    bootstrap: dict[str, Any] | None = None
    curves: dict[str, Any] = field(default_factory=dict)
    bootstrap_deltas: list[float] = field(default_factory=list)
    candidate_auc: dict[str, float] | None = None  # the candidate's own AUC interval
    identical: bool = False  # the candidate scores every row as the baseline does
    changed: int = 0  # rows whose predicted label differs between the models

    @property
    def n_negative(self) -> int:
        return self.n - self.n_positive

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": self.n,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "identical_scores": self.identical,
            "changed_predictions": self.changed,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "candidate_auc": self.candidate_auc,
            "tests": {
                "delong": None if self.delong is None else self.delong.to_dict(),
                "bootstrap": self.bootstrap,
                "mcnemar": None if self.mcnemar is None else self.mcnemar.to_dict(),
            },
        }


@dataclass(frozen=True)
class GuardrailResult:
    """A guardrail on one metric and population: the candidate may be worse by ``margin``.

    ``mode`` "non_inferiority": safety must be shown (lower bound > −margin), else the
    candidate cannot be promoted; "harm": only a shown breach counts (Holm across harm
    guardrails). ``status``: "ok", "breached" (shown worse than the margin) or "not_shown".
    """

    metric: str
    margin: float
    mode: str
    population: str
    improvement: float
    ci_low: float | None
    ci_high: float | None
    p_value: float  # non_inferiority: H1 improvement > −margin; harm: H1 improvement < −margin
    p_adjusted: float
    status: str
    kind: str = "user"  # "user", "calibration" or "holdout"
    level: float = 0.05  # the model's α: guardrails never take the decision's reuse level

    @property
    def breached(self) -> bool:
        return self.status == "breached"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "breached": self.breached}

    def describe(self) -> str:
        what = {
            "user": f"Guardrail {self.metric}",
            "calibration": f"Calibration guardrail ({self.metric})",
            "holdout": f"Whole-holdout guardrail ({self.metric})",
        }[self.kind]
        where = "" if self.population == "holdout" else f" on the {self.population} rows"
        change = f"{'worse' if self.improvement < 0 else 'better'} by {abs(self.improvement):.4f}"
        if self.mode == "harm":  # decided by Holm-adjusted p-values, not by the interval
            shown = "shown" if self.breached else "not shown"
            sign = "<" if self.breached else ">="
            return (
                f"{what}{where} {'breached' if self.breached else 'ok'}: worse by more than "
                f"{self.margin:.4f} {shown} ({change}, Holm-adjusted p = "
                f"{fmt_p(self.p_adjusted)} {sign} α = {self.level:.3g})"
            )
        bounds = _bounds(self.ci_low, self.ci_high)
        if self.status == "breached":
            verdict = f"breached: shown worse by more than {self.margin:.4f}"
        elif self.status == "ok" and self.mode == "non_inferiority":
            verdict = f"ok: shown not worse by more than {self.margin:.4f}"
        else:
            verdict = f"not shown: could be worse by more than {self.margin:.4f}"
        p = (
            ""
            if self.breached and self.mode == "non_inferiority"
            else f", p = {fmt_p(self.p_adjusted)}"
        )
        return f"{what}{where} {verdict} ({change}{bounds}{p})"


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
    """Everything the reports need: populations, tests, guardrails, the decision and why.

    The top-level metric table, curves and primary numbers are those of the population the
    decision was made on (``decided_on``); every population is in ``populations``.
    """

    primary_metric: str
    threshold: float
    threshold_type: str
    threshold_absolute: float
    significance_level: float  # α: the level of a decision on fresh rows, and of guardrails
    rule: str  # "threshold" (the default) or "lab"
    holdout_uses: int  # j: this decision's number among decisions on the same rows
    level: float  # what the primary test may spend: α (fresh rows) or α·6/(π²j²)
    min_class_count: int
    test: str  # the primary metric's method
    baseline: ModelInfo | None
    candidate: ModelInfo
    populations: dict[str, Population]
    decided_on: str
    decision: Decision = "REJECT"
    reasons: list[str] = field(default_factory=list)
    factors: list[Factor] = field(default_factory=list)
    n_bootstrap: int = 0
    seed: int | None = None
    guardrails: list[GuardrailResult] = field(default_factory=list)
    guardrail_mode: str = "non_inferiority"
    evidence: dict[str, Any] = field(default_factory=dict)  # model.gate.evidence.Evidence
    guardrail_level: float = 0.05  # every guardrail's level (the model's α)
    untested: str | None = None  # why the primary test was not carried out (spent nothing)
    policy: list[PolicyCheck] = field(default_factory=list)
    samples_needed: int | None = None
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"  # where the bootstrap and DeLong's test ran: "cpu" or "cuda"
    created_at: str = field(default_factory=lambda: clock.now().isoformat())

    # -- the deciding population's numbers
    @property
    def population(self) -> Population:
        return self.populations[self.decided_on]

    @property
    def metrics(self) -> dict[str, MetricComparison]:
        return self.population.metrics

    @property
    def primary(self) -> MetricComparison:
        return self.metrics[self.primary_metric]

    @property
    def improvement(self) -> float | None:
        return self.primary.improvement

    @property
    def p_value(self) -> float | None:
        return self.primary.p_value

    @property
    def se(self) -> float | None:
        return self.primary.se

    @property
    def lower_bound(self) -> float | None:
        return self.primary.ci_low

    @property
    def upper_bound(self) -> float | None:
        return self.primary.ci_high

    @property
    def confidence(self) -> float:
        """Two-sided confidence of the reported intervals: 1 − 2a (a: the decision's level)."""
        return 1.0 - 2.0 * self.level

    @property
    def n_test(self) -> int:
        return self.population.n

    @property
    def n_positive(self) -> int:
        return self.population.n_positive

    @property
    def curves(self) -> dict[str, Any]:
        return self.population.curves

    @property
    def bootstrap_deltas(self) -> list[float]:
        return self.population.bootstrap_deltas

    @property
    def primary_shown(self) -> bool:
        """The primary test cleared the threshold (L > T): whatever blocked the promotion was
        a guardrail or a policy, which live labels do not test."""
        if self.untested:
            return False
        if self.rule == "lab":  # the lab's rule: Δ ≥ T and significant
            est = self.improvement
            return est is not None and est >= self.threshold_absolute and self.significant
        low = self.lower_bound
        return low is not None and low > self.threshold_absolute

    @property
    def alpha_spent(self) -> float:
        """What this decision spent: its level when the primary test was carried out, 0 when
        it tested nothing (:attr:`untested` says why)."""
        return 0.0 if self.untested else self.level

    @property
    def should_promote(self) -> bool:
        return self.decision == "PROMOTE"

    @property
    def significant(self) -> bool:
        """The primary test rejects its null ("gain ≤ threshold"; the lab's rule: "gain ≤ 0")
        at this comparison's level, with a standard error above 0."""
        p, se = self.p_value, self.se
        return p is not None and p < self.level and se is not None and se > 0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to :meth:`to_dict` (the lab's scripts index the result)."""
        return self.to_dict()[key]

    def primary_dict(self) -> dict[str, Any]:
        """The decision's own numbers: every report prints exactly these."""
        m = self.primary
        return {
            "metric": self.primary_metric,
            "population": self.decided_on,
            "baseline": m.baseline,
            "candidate": m.candidate,
            "improvement": m.improvement,
            "relative_change": m.relative_change,
            "test": m.method,
            "method": None if m.method is None else METHOD_NAMES[m.method],
            "threshold": self.threshold_absolute,
            "rule": self.rule,
            "p_value": m.p_value,
            "null_value": m.null_value,
            "null_hypothesis": f"improvement <= {m.null_value:g}",
            "se": m.se,
            "lower_bound": m.ci_low,
            "upper_bound": m.ci_high,
            "confidence": self.confidence,
            "level": self.level,
            "significant": self.significant,
            "samples_needed": self.samples_needed,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (DESIGN.md schema plus the lab's keys)."""
        pop = self.population
        tests = pop.to_dict()["tests"]
        return {
            "primary_metric": self.primary_metric,
            "threshold": self.threshold,
            "threshold_type": self.threshold_type,
            "threshold_absolute": self.threshold_absolute,
            "significance_level": self.significance_level,
            "rule": self.rule,
            "strict": self.rule == "threshold",
            "holdout_uses": self.holdout_uses,
            "alpha_k": self.level,  # the decision's level (the old key, kept for readers)
            "level": self.level,
            "alpha_spent": self.alpha_spent,
            "untested": self.untested,
            "evidence": self.evidence,
            "guardrail_level": self.guardrail_level,
            "alpha_spending": "alpha for rows no earlier decision used; alpha * 6 / (pi^2 * j^2) "
            "for the j-th decision on the same rows",
            "confidence": self.confidence,
            "min_class_count": self.min_class_count,
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "decided_on": self.decided_on,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "primary": self.primary_dict(),
            "populations": {name: p.to_dict() for name, p in self.populations.items()},
            "tests": tests,
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
            "device": self.device,
            "created_at": self.created_at,
            "samples_needed": self.samples_needed,
            "notes": list(self.notes),
            "candidate_auc": pop.candidate_auc,
            # the lab's spellings
            "improvements": self._improvements(),
            "baseline_metrics": {n: m.baseline for n, m in self.metrics.items()},
            "new_metrics": {n: m.candidate for n, m in self.metrics.items()},
            "statistical_significance": {
                "test": self.test,
                "p_value": self.p_value,
                "alpha": self.level,
                "significant": self.significant,
                "is_significant": self.significant,
            },
            "curves": pop.curves,
            "bootstrap_deltas": pop.bootstrap_deltas,
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


def fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _bounds(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f", interval [{low:+.4f}, {high:+.4f}]"
