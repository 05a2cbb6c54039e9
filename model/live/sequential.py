"""A group-sequential test of one model against another on a growing labelled sample.

Labels of live traffic arrive day by day; testing the AUC difference at level α on every look
promotes an equal challenger far more often than α (daily peeking over 30 looks: about 21 %
at α = 0.05, measured in the tests). Here the looks are one *group-sequential* test:

- a maximum sample ``n_max`` (default 5,000 labelled rows) where the final decision is made;
- the test's total level α (live labels are fresh rows, so a challenger evaluation tests at the
  model's full α at any age, :mod:`model.gate.evidence`) is spent over the information
  fraction t = n / n_max with
  the Lan–DeMets O'Brien–Fleming-type spending function α(t) = 2 − 2Φ(z_{1−α/2} / √t)
  (``spending="pocock"``: α·ln(1 + (e − 1)t));
- the boundary of look k is the c_k with P(no earlier crossing, Z_k ≥ c_k) = α(t_k) − α(t_{k−1})
  for the canonical joint law of the z statistics (Brownian motion, corr(Z_i, Z_j) =
  √(t_i / t_j)), computed by numerical integration over the looks actually taken, so looks
  may come at any sample sizes (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000,
  ch. 19);
- a look with fewer than ``min_class_count`` positives or negatives tests nothing and spends
  nothing (its α stays for later looks); the last look (n ≥ n_max, or ``final=True`` when a
  watch window closes early) spends whatever is left.

Efficacy ("H1 shown": PROMOTE a challenger, ROLLBACK a new production) is the upper boundary
of z = (estimate − null) / se, oriented so that large z favours H1. A challenger evaluation also
stops for futility (REJECT) when the mirrored statistic crosses the same boundary, and at the
final look whenever efficacy is not shown; futility is non-binding (the efficacy boundaries are
computed as if it never stopped), so it can only lower the chance of a false promotion.

Estimates come from :func:`paired_difference` (both models scored the same rows: DeLong's
paired test) or :func:`unpaired_difference` (routed traffic: z = (A₁ − A₂)/√(V₁ + V₂), each V
DeLong's variance of one AUC, as pROC's ``roc.test(paired = FALSE)``). Plain numpy and scipy;
the state of the looks is a plain dict (:meth:`SequentialState.to_dict`), kept in the history.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy import optimize
from scipy import stats as sps

from model.errors import ComparisonInputError
from model.gate.stats import auc_interval, delong_test

Spending = Literal["obrien_fleming", "pocock"]
Kind = Literal["challenger", "watch"]
SPENDING_FUNCTIONS = ("obrien_fleming", "pocock")
DEFAULT_N_MAX = 5000
DEFAULT_MIN_CLASS_COUNT = 100
DEFAULT_WATCH_MARGIN = 0.01

#: Decision names by kind: (efficacy, futility/final, keep collecting).
DECISIONS: dict[str, tuple[str, str, str]] = {
    "challenger": ("PROMOTE", "REJECT", "INCONCLUSIVE"),
    "watch": ("ROLLBACK", "KEEP", "INCONCLUSIVE"),
}
_GRID = 1601  # points of the integration grid at each look (boundaries to ~1e-3)
NEVER = 40.0
"""The boundary of a look that spends nothing new: never crossed (finite, so JSON keeps it)."""


# ---------------------------------------------------------------------------- spending


def alpha_spent_by(t: float, alpha: float, spending: str = "obrien_fleming") -> float:
    """Cumulative α spent at information fraction ``t`` (0 at t ≤ 0, ``alpha`` at t ≥ 1)."""
    if not 0 < alpha < 1:
        raise ComparisonInputError(f"alpha must be in (0, 1), got {alpha!r}")
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    if spending == "obrien_fleming":
        return float(min(alpha, 2.0 * sps.norm.sf(sps.norm.isf(alpha / 2.0) / math.sqrt(t))))
    if spending == "pocock":
        return float(alpha * math.log(1.0 + (math.e - 1.0) * t))
    raise ComparisonInputError(
        f"spending must be one of {', '.join(SPENDING_FUNCTIONS)}, got {spending!r}"
    )


def boundaries(times: tuple[float, ...], cumulative: tuple[float, ...]) -> list[float]:
    """Upper z boundaries c_1..c_K for looks at information ``times`` (increasing, > 0) that
    spend ``cumulative`` α in total by each look. A look that spends nothing new gets
    :data:`NEVER`."""
    return list(_boundaries(tuple(float(t) for t in times), tuple(float(a) for a in cumulative)))


def _boundaries(times: tuple[float, ...], cumulative: tuple[float, ...]) -> tuple[float, ...]:
    if len(times) != len(cumulative):
        raise ValueError("one cumulative alpha per look")
    if any(b <= a for a, b in zip((0.0, *times), times, strict=False)):
        raise ValueError(f"information times must increase from 0, got {times}")
    return tuple(_recursion(times, cumulative)[0]) if times else ()


@lru_cache(maxsize=8192)
def _recursion(
    times: tuple[float, ...], cumulative: tuple[float, ...]
) -> tuple[tuple[float, ...], np.ndarray, np.ndarray]:
    """(boundaries, grid of S = Z √t at the last look, density of S there among the paths that
    have crossed no boundary yet); each prefix of looks is computed once and cached."""
    t, a = times[-1], cumulative[-1]
    root_t = math.sqrt(t)
    if len(times) == 1:  # first look: S ~ N(0, t)
        c = min(float(sps.norm.isf(a)), NEVER) if a > 0 else NEVER
        grid = np.linspace(-9.0 * root_t, min(c, 9.0) * root_t, _GRID)
        return (c,), grid, _pdf(grid, root_t)
    done, grid, dens = _recursion(times[:-1], cumulative[:-1])
    step, sd = a - cumulative[-2], math.sqrt(t - times[-2])
    weights = _trapezoid(grid) * dens
    c = _solve_boundary(grid, weights, root_t, sd, step) if step > 0 else NEVER
    hi = min(c * root_t, grid[-1] + 9.0 * sd)
    new_grid = np.linspace(min(-9.0 * root_t, hi - 1.0), hi, _GRID)
    new_dens = _pdf(new_grid[:, None] - grid[None, :], sd) @ weights
    return (*done, c), new_grid, new_dens


def _pdf(x: np.ndarray, sd: float) -> np.ndarray:
    return np.exp(-0.5 * (x / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))


def _trapezoid(grid: np.ndarray) -> np.ndarray:
    h = np.diff(grid)
    w = np.zeros_like(grid)
    w[:-1] += h / 2.0
    w[1:] += h / 2.0
    return w


def _solve_boundary(
    grid: np.ndarray, weights: np.ndarray, root_t: float, sd: float, step: float
) -> float:
    """The c with P(continued so far, S_k ≥ c √t_k) = ``step``."""

    def crossing(c: float) -> float:
        return float(weights @ sps.norm.sf((c * root_t - grid) / sd)) - step

    if crossing(-10.0) < 0:  # even c = −10 spends less than asked: all mass is spent
        return -10.0
    if crossing(NEVER) > 0:
        return NEVER
    return float(optimize.brentq(crossing, -10.0, NEVER, xtol=1e-7))


# ---------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate:
    """An AUC difference (challenger − champion, or new − previous) with its standard error."""

    auc_baseline: float
    auc_candidate: float
    diff: float
    se: float
    n: int
    n_positive: int  # the fewer of either class over both arms (routed) or the rows (paired)
    n_negative: int
    method: str


def paired_difference(y: np.ndarray, baseline: np.ndarray, candidate: np.ndarray) -> Estimate:
    """DeLong's paired estimate of AUC(candidate) − AUC(baseline) on the same rows."""
    y = np.asarray(y)
    n_pos = int(np.count_nonzero(y == 1))
    n_neg = int(y.size - n_pos)
    if min(n_pos, n_neg) < 2:
        return Estimate(math.nan, math.nan, math.nan, math.nan, int(y.size), n_pos, n_neg, "paired")
    r = delong_test(y, baseline, candidate)
    return Estimate(
        r.auc_baseline, r.auc_candidate, r.diff, r.se, int(y.size), n_pos, n_neg, "delong-paired"
    )


def unpaired_difference(
    y_baseline: np.ndarray,
    baseline: np.ndarray,
    y_candidate: np.ndarray,
    candidate: np.ndarray,
) -> Estimate:
    """A₂ − A₁ with se √(V₁ + V₂), each V DeLong's variance of one AUC on its own rows (pROC's
    ``roc.test(paired = FALSE)``, with the normal reference distribution)."""
    counts = []
    for y in (np.asarray(y_baseline), np.asarray(y_candidate)):
        pos = int(np.count_nonzero(y == 1))
        counts.append((pos, int(y.size - pos)))
    n = int(np.asarray(y_baseline).size + np.asarray(y_candidate).size)
    n_pos = min(c[0] for c in counts)
    n_neg = min(c[1] for c in counts)
    if min(n_pos, n_neg) < 2:
        return Estimate(math.nan, math.nan, math.nan, math.nan, n, n_pos, n_neg, "unpaired")
    a1, se1, _, _ = auc_interval(y_baseline, baseline)
    a2, se2, _, _ = auc_interval(y_candidate, candidate)
    se = math.sqrt(se1 * se1 + se2 * se2)
    return Estimate(a1, a2, a2 - a1, se, n, n_pos, n_neg, "delong-unpaired")


# ---------------------------------------------------------------------------- the test


@dataclass(frozen=True)
class SequentialPlan:
    """What the sequential test promises: level, maximum sample, spending, null and side.

    ``kind="challenger"`` tests H1: diff > ``threshold`` (PROMOTE), and stops for futility
    (REJECT) when diff < threshold is shown. ``kind="watch"`` tests H1: diff < −``threshold``
    (the new production is worse than the previous by more than the margin: ROLLBACK), with no
    early futility stop: the watch runs to its window's end (KEEP)."""

    kind: Kind = "challenger"
    alpha: float = 0.05
    n_max: int = DEFAULT_N_MAX
    spending: Spending = "obrien_fleming"
    min_class_count: int = DEFAULT_MIN_CLASS_COUNT
    threshold: float = 0.0
    comparison: int | None = None  # states written before live tests ran at the full α: k
    budget: float | None = None  # … and the old family budget of which ``alpha`` was α_k

    def __post_init__(self) -> None:
        if self.kind not in DECISIONS:
            raise ComparisonInputError(f"kind must be 'challenger' or 'watch', got {self.kind!r}")
        if not 0 < self.alpha < 0.5:
            raise ComparisonInputError(f"alpha must be in (0, 0.5), got {self.alpha!r}")
        if isinstance(self.n_max, bool) or not isinstance(self.n_max, int) or self.n_max < 10:
            raise ComparisonInputError(f"n_max must be an integer >= 10, got {self.n_max!r}")
        if self.spending not in SPENDING_FUNCTIONS:
            raise ComparisonInputError(
                f"spending must be one of {', '.join(SPENDING_FUNCTIONS)}, got {self.spending!r}"
            )
        if self.min_class_count < 2:
            raise ComparisonInputError(
                f"min_class_count must be >= 2, got {self.min_class_count!r}"
            )
        if not math.isfinite(self.threshold) or abs(self.threshold) >= 1:
            raise ComparisonInputError(f"threshold must be in (-1, 1), got {self.threshold!r}")


@dataclass(frozen=True)
class Look:
    """One look: the sample, the estimate, the α spent by then and the boundary crossed or not."""

    n: int
    n_positive: int
    n_negative: int
    information: float  # n / n_max (above 1 when a look comes after n_max)
    diff: float | None
    se: float | None
    z: float | None  # oriented: large favours H1
    z_futility: float | None
    alpha_spent: float  # cumulative, after this look
    alpha_this_look: float
    boundary: float | None  # None: the look tested nothing (too few of a class)
    decision: str
    reason: str
    auc_baseline: float | None = None
    auc_candidate: float | None = None
    rows_still_needed: int | None = None
    final: bool = False


@dataclass
class SequentialState:
    """The plan and every look so far; serialisable with :meth:`to_dict` / :meth:`from_dict`."""

    plan: SequentialPlan
    looks: list[Look] = field(default_factory=list)

    @property
    def tested(self) -> list[Look]:
        """The looks that spent α (enough of each class)."""
        return [lk for lk in self.looks if lk.boundary is not None]

    @property
    def alpha_spent(self) -> float:
        return self.tested[-1].alpha_spent if self.tested else 0.0

    @property
    def decision(self) -> str:
        return self.looks[-1].decision if self.looks else DECISIONS[self.plan.kind][2]

    @property
    def done(self) -> bool:
        return self.decision != DECISIONS[self.plan.kind][2]

    @property
    def last_n(self) -> int:
        return self.looks[-1].n if self.looks else 0

    def to_dict(self) -> dict[str, Any]:
        return {"plan": asdict(self.plan), "looks": [_finite(asdict(lk)) for lk in self.looks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequentialState:
        try:
            plan = SequentialPlan(**data["plan"])
            looks = [Look(**lk) for lk in data.get("looks", [])]
        except (KeyError, TypeError) as exc:
            raise ComparisonInputError(f"unreadable sequential state: {exc}") from exc
        return cls(plan, looks)

    def look(self, est: Estimate, *, final: bool = False) -> Look:
        """Take one look at ``est`` (the whole sample so far), append it and return it.

        ``final`` closes the test here (a watch window that ends before ``n_max``): whatever α
        is left is spent. A look at or beyond ``n_max`` is always final. After a decision
        other than INCONCLUSIVE the test is over: another look raises.
        """
        if self.done:
            raise ComparisonInputError(f"the sequential test already decided {self.decision}")
        if self.looks and est.n <= self.last_n and not final:
            raise ComparisonInputError(
                f"no new rows since the last look ({est.n} rows, {self.last_n} before)"
            )
        result = self._evaluate(est, final or est.n >= self.plan.n_max)
        self.looks.append(result)
        return result

    def _evaluate(self, est: Estimate, final: bool) -> Look:
        plan = self.plan
        win, lose, wait = DECISIONS[plan.kind]
        info = est.n / plan.n_max
        base: dict[str, Any] = {
            "n": est.n,
            "n_positive": est.n_positive,
            "n_negative": est.n_negative,
            "information": info,
            "final": final,
        }
        spent_before = self.alpha_spent
        few = min(est.n_positive, est.n_negative) < plan.min_class_count
        if few or not math.isfinite(est.se) or est.se <= 0:
            why = (
                f"{est.n_positive} positives and {est.n_negative} negatives: fewer than "
                f"{plan.min_class_count} of a class, nothing tested and no α spent"
                if few
                else "the AUC difference has no variability (standard error 0): nothing tested"
            )
            decision = lose if final else wait
            if final:
                why += f"; the test ends here ({'window closed' if info < 1 else 'n_max reached'})"
            return Look(
                **base,
                diff=_f(est.diff),
                se=_f(est.se),
                z=None,
                z_futility=None,
                alpha_spent=spent_before,
                alpha_this_look=0.0,
                boundary=None,
                decision=decision,
                reason=why,
                rows_still_needed=None if final else self._rows_for_classes(est),
            )
        times = [lk.information for lk in self.tested]
        if times and info <= times[-1]:
            info = times[-1] + 1e-9  # a final look at the same n: spend the rest there
        cum = [lk.alpha_spent for lk in self.tested]
        a_now = plan.alpha if final else alpha_spent_by(info, plan.alpha, plan.spending)
        a_now = max(a_now, spent_before)
        c = boundaries(tuple([*times, info]), tuple([*cum, a_now]))[-1]
        sign = 1.0 if plan.kind == "challenger" else -1.0
        null = plan.threshold if plan.kind == "challenger" else -plan.threshold
        z = sign * (est.diff - null) / est.se  # large: H1 (better / worse by the margin)
        z_fut = -z
        what = "gain" if plan.kind == "challenger" else "change"
        head = (
            f"AUC {what} {est.diff:+.4f} (se {est.se:.4f}, {est.auc_baseline:.4f} → "
            f"{est.auc_candidate:.4f}) on {est.n} rows; z = {z:+.3f} vs boundary {c:.3f} "
            f"(α spent {a_now:.4g} of {plan.alpha:.4g}, t = {min(info, 1.0):.3f})"
        )
        rows = None
        if z >= c:
            decision = win
            reason = (
                f"{head}: the challenger is better than the champion by more than "
                f"{plan.threshold:g}"
                if plan.kind == "challenger"
                else f"{head}: the new production is worse than the previous by more than "
                f"{plan.threshold:g}"
            )
        elif final:
            decision = lose
            reason = (
                f"{head}: final look, the gain over {plan.threshold:g} is not shown"
                if plan.kind == "challenger"
                else f"{head}: watch over, the new production is not shown worse by more "
                f"than {plan.threshold:g}"
            )
        elif plan.kind == "challenger" and z_fut >= c:
            decision = lose
            reason = f"{head}: shown not to reach the threshold {plan.threshold:g}"
        else:
            decision = wait
            rows = self._rows_to_decide(est, z, c)
            reason = f"{head}: keep collecting; about {rows:,} more labelled rows at most"
        return Look(
            **base,
            diff=est.diff,
            se=est.se,
            z=z,
            z_futility=z_fut,
            alpha_spent=a_now,
            alpha_this_look=a_now - spent_before,
            boundary=c,
            decision=decision,
            reason=reason,
            auc_baseline=est.auc_baseline,
            auc_candidate=est.auc_candidate,
            rows_still_needed=rows,
        )

    def _rows_to_decide(self, est: Estimate, z: float, c: float) -> int:
        """Rows still needed: up to ``n_max`` (the final decision), fewer when the observed
        effect would cross the final boundary earlier (z grows like √n)."""
        to_max = max(self.plan.n_max - est.n, 1)
        if abs(z) <= 0:
            return to_max
        final_c = float(sps.norm.isf(self.plan.alpha))  # about the final boundary
        n_cross = math.ceil(est.n * (final_c / abs(z)) ** 2)  # where |z| would reach it
        return min(to_max, max(1, n_cross - est.n))

    def _rows_for_classes(self, est: Estimate) -> int:
        """Rows until both classes reach ``min_class_count`` at the observed balance."""
        need = self.plan.min_class_count
        rare = min(est.n_positive, est.n_negative)
        if est.n == 0 or rare == 0:
            return max(self.plan.n_max - est.n, 1)
        return max(1, math.ceil(est.n * need / rare) - est.n)


def new_state(plan: SequentialPlan) -> SequentialState:
    return SequentialState(plan, [])


def naive_look(est: Estimate, alpha: float, threshold: float = 0.0) -> bool:
    """The rule the sequential test replaces: promote when one look's one-sided p < α."""
    if not math.isfinite(est.se) or est.se <= 0:
        return False
    return bool((est.diff - threshold) / est.se >= sps.norm.isf(alpha))


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


__all__ = [
    "DECISIONS",
    "DEFAULT_MIN_CLASS_COUNT",
    "DEFAULT_N_MAX",
    "DEFAULT_WATCH_MARGIN",
    "SPENDING_FUNCTIONS",
    "Estimate",
    "Look",
    "SequentialPlan",
    "SequentialState",
    "alpha_spent_by",
    "boundaries",
    "naive_look",
    "new_state",
    "paired_difference",
    "unpaired_difference",
]
