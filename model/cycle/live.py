"""Judging models on live traffic: the challenger evaluation and the post-promotion watch.

Both are sequential tests (:mod:`model.gate.sequential`) over the labelled rows of the
prediction log (read through :mod:`model.serving.labelled_log`, the one adapter to the log's
columns); each look is a history event that carries the whole state of the test, so the next
run continues it and the history shows every look with the α it spent.

- **Challenger evaluation** (``challenger_evaluated``): production (champion) against the
  registry's challenger. The evaluation is one comparison of the model's family: its total α is
  α_k of :mod:`model.gate.budget`, k fixed at its first look. PROMOTE → the registry promotes
  the challenger with the evaluation as its comparison; REJECT → the challenger is cleared;
  INCONCLUSIVE → keep collecting. Shadow mode (both models scored every row: paired DeLong) is
  the default; routed mode compares the rows each served (unpaired, one row per entity).
- **Post-promotion watch** (``watch_checked``): after a promotion (``promoted`` or ``forced``
  with a previous production) the previous version keeps scoring in shadow; the watch tests
  "the new production is worse than the previous by more than ``watch_margin``" (one-sided,
  level ``alpha``) until the window closes (``watch_days`` since the promotion, or
  ``watch_rows`` labelled rows). ROLLBACK → ``registry.rollback`` to the previous version. The
  watch belongs to the promotion event that started it: any later production change (a manual
  promotion or rollback) ends it.

No Prefect here: the flows call these functions through ``tasks/live.py``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from model.errors import ParameterError, RegistryError
from model.gate.budget import alpha_for, next_comparison
from model.gate.sequential import (
    DEFAULT_MIN_CLASS_COUNT,
    DEFAULT_N_MAX,
    DEFAULT_WATCH_MARGIN,
    SPENDING_FUNCTIONS,
    Estimate,
    SequentialPlan,
    SequentialState,
    paired_difference,
    unpaired_difference,
)
from model.gate.sequential_report import write_reports
from model.registry import ModelRegistry
from model.serving import labelled_log as log

EVALUATED = "challenger_evaluated"
WATCHED = "watch_checked"
MODES = ("shadow", "routed")


@dataclass(frozen=True)
class LiveSettings:
    """The options of both live tests (flat flow parameters gathered in one object)."""

    alpha: float = 0.05  # challenger: the family budget (α_k is spent); watch: its level
    n_max: int = DEFAULT_N_MAX
    spending: str = "obrien_fleming"
    min_class_count: int = DEFAULT_MIN_CLASS_COUNT
    improvement_threshold: float = 0.0  # AUC gain the challenger must exceed
    mode: Literal["shadow", "routed"] = "shadow"
    label_window_hours: float = 0.0
    watch_margin: float = DEFAULT_WATCH_MARGIN
    watch_days: float = 14.0
    watch_rows: int = DEFAULT_N_MAX

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("alpha", 0 < self.alpha < 0.5, "in (0, 0.5)"),
            ("n_max", _int(self.n_max) and self.n_max >= 10, "an integer >= 10"),
            ("spending", self.spending in SPENDING_FUNCTIONS, " or ".join(SPENDING_FUNCTIONS)),
            ("min_class_count", _int(self.min_class_count) and self.min_class_count >= 2, ">= 2"),
            ("improvement_threshold", 0 <= self.improvement_threshold < 1, "in [0, 1)"),
            ("mode", self.mode in MODES, "shadow or routed"),
            ("label_window_hours", 0 <= self.label_window_hours <= 24 * 366, "in [0, 8784]"),
            ("watch_margin", 0 <= self.watch_margin < 1, "in [0, 1)"),
            ("watch_days", 0 < self.watch_days <= 366, "in (0, 366]"),
            ("watch_rows", _int(self.watch_rows) and self.watch_rows >= 10, "an integer >= 10"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ParameterError(f"{name} must be {what}, got {getattr(self, name)!r}")


def _int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass
class LiveOutcome:
    """What one run of a live test found: a new look, or why there was none."""

    kind: Literal["challenger", "watch"]
    status: Literal["looked", "waiting", "skipped", "ended"]
    decision: str | None
    reasons: list[str]
    baseline_version: str | None = None
    candidate_version: str | None = None
    test_id: str | None = None  # evaluation id, or the id of the promotion being watched
    mode: str = "shadow"
    state: dict[str, Any] | None = None
    look: dict[str, Any] | None = None
    started_at: str | None = None
    window_ends: str | None = None
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def alpha_spent(self) -> float:
        looks = (self.state or {}).get("looks") or []
        return float(looks[-1]["alpha_spent"]) if looks else 0.0

    def history_fields(self) -> dict[str, Any]:
        """The fields of this look's history event (the state included, to continue)."""
        look = self.look or {}
        plan = (self.state or {}).get("plan") or {}
        return {
            "version": self.candidate_version,
            "baseline_version": self.baseline_version,
            ("evaluation" if self.kind == "challenger" else "promotion"): self.test_id,
            "decision": self.decision,
            "reasons": self.reasons,
            "mode": self.mode,
            "n": look.get("n"),
            "alpha_spent": self.alpha_spent,
            "alpha_this_look": look.get("alpha_this_look"),
            "alpha_total": plan.get("alpha"),
            "comparison": plan.get("comparison"),
            "window_ends": self.window_ends,
            "state": self.state,
            "reports": self.reports or None,
        }


# ---------------------------------------------------------------------------- challenger


def evaluate_challenger(
    registry: ModelRegistry, rows: pd.DataFrame, cfg: LiveSettings
) -> LiveOutcome:
    """One look of the challenger's evaluation on the labelled log ``rows`` (adapter output of
    :func:`model.serving.labelled_log.labelled_rows`); nothing is recorded here."""
    prod, chal = registry.production(), registry.challenger()
    if prod is None or chal is None:
        why = "no production model" if prod is None else "no challenger is set"
        return LiveOutcome("challenger", "skipped", None, [f"{why}: nothing to evaluate"])
    events = registry.history()
    open_ev = _open_test(events, EVALUATED, "evaluation", chal.version, prod.version)
    if open_ev is not None:
        test_id, state = open_ev
    else:
        k = next_comparison(events)
        plan = SequentialPlan(
            kind="challenger",
            alpha=alpha_for(k, cfg.alpha),
            n_max=cfg.n_max,
            spending=cfg.spending,  # type: ignore[arg-type]
            min_class_count=cfg.min_class_count,
            threshold=cfg.improvement_threshold,
            comparison=k,
            budget=cfg.alpha,
        )
        test_id, state = uuid.uuid4().hex, SequentialState(plan)
    if cfg.mode == "routed":
        est = _routed_estimate(rows, prod.version, chal.version)
    else:
        est = _paired_estimate(rows, prod.version, chal.version)
    out = LiveOutcome(
        "challenger",
        "looked",
        None,
        [],
        baseline_version=prod.version,
        candidate_version=chal.version,
        test_id=test_id,
        mode=cfg.mode,
        started_at=chal.set_at,
    )
    return _look(out, state, est, final=False)


def promotion_summary(outcome: LiveOutcome) -> dict[str, Any]:
    """The comparison handed to ``registry.promote``: the evaluation that decided PROMOTE."""
    look = outcome.look or {}
    return {
        "decision": outcome.decision,
        "candidate_version": outcome.candidate_version,
        "baseline_version": outcome.baseline_version,
        "source": "challenger-evaluation",
        "evaluation": outcome.test_id,
        "mode": outcome.mode,
        "n": look.get("n"),
        "auc_baseline": look.get("auc_baseline"),
        "auc_candidate": look.get("auc_candidate"),
        "diff": look.get("diff"),
        "z": look.get("z"),
        "boundary": look.get("boundary"),
        "alpha_spent": outcome.alpha_spent,
        "reasons": outcome.reasons,
        "reports": outcome.reports or None,
    }


def apply_evaluation(
    registry: ModelRegistry, outcome: LiveOutcome, run_id: str | None = None
) -> dict[str, Any] | None:
    """Record the look (``challenger_evaluated``), then act: PROMOTE → promote the challenger
    with the evaluation as its comparison; REJECT → clear the challenger. Returns the event."""
    if outcome.status != "looked":
        return None
    ev = registry.record(EVALUATED, run_id=run_id, **outcome.history_fields())
    reason = "; ".join(outcome.reasons)
    if outcome.decision == "PROMOTE":
        assert outcome.candidate_version is not None
        registry.promote(
            outcome.candidate_version,
            f"challenger evaluation on live labels: {reason}",
            run_id=run_id,
            comparison=promotion_summary(outcome),
        )
    elif outcome.decision == "REJECT":
        registry.clear_challenger(
            reason=f"challenger evaluation on live labels: {reason}", run_id=run_id
        )
    return ev


# ---------------------------------------------------------------------------- watch


@dataclass(frozen=True)
class Watch:
    """The pair a promotion put under watch, and since when."""

    promotion: str  # id of the promotion event
    new: str
    previous: str
    started: dt.datetime
    event: str  # "promoted" or "forced"


def current_watch(events: Sequence[Mapping[str, Any]]) -> tuple[Watch | None, str]:
    """The watch of the newest production change, or None and why there is none."""
    last = None
    for ev in reversed(events):
        if ev.get("event") in ("promoted", "forced", "rolled_back"):
            last = ev
            break
    if last is None:
        return None, "no promotion yet"
    if last.get("event") == "rolled_back":
        return None, f"the last production change was a rollback to {last.get('version')}"
    if not last.get("previous"):
        return None, f"{last.get('version')} was the first production model: no previous one"
    started = pd.Timestamp(last["time"]).to_pydatetime()
    return (
        Watch(str(last["id"]), last["version"], last["previous"], started, last["event"]),
        "",
    )


def check_watch(
    registry: ModelRegistry, rows: pd.DataFrame, cfg: LiveSettings, now: dt.datetime
) -> LiveOutcome:
    """One look of the post-promotion watch on the labelled log ``rows``."""
    events = registry.history()
    watch, why = current_watch(events)
    if watch is None:
        return LiveOutcome("watch", "skipped", None, [f"nothing to watch: {why}"])
    ends = watch.started + dt.timedelta(days=cfg.watch_days)
    base: dict[str, Any] = {
        "baseline_version": watch.previous,
        "candidate_version": watch.new,
        "test_id": watch.promotion,
        "started_at": watch.started.isoformat(),
        "window_ends": ends.isoformat(),
    }
    found = _test_states(events, WATCHED, "promotion").get(watch.promotion)
    if found is not None and found.done:
        return LiveOutcome(
            "watch",
            "ended",
            found.decision,
            [f"the watch of {watch.new} (promoted over {watch.previous}) ended: {found.decision}"],
            state=found.to_dict(),
            **base,
        )
    state = found or SequentialState(
        SequentialPlan(
            kind="watch",
            alpha=cfg.alpha,
            n_max=cfg.watch_rows,
            spending=cfg.spending,  # type: ignore[arg-type]
            min_class_count=cfg.min_class_count,
            threshold=cfg.watch_margin,
        )
    )
    if len(rows):
        rows = rows[rows[log.REQUEST_TIME] >= pd.Timestamp(watch.started)]
    est = _paired_estimate(rows, watch.previous, watch.new)
    out = LiveOutcome("watch", "looked", None, [], **base)
    return _look(out, state, est, final=now >= ends)


def apply_watch(
    registry: ModelRegistry, outcome: LiveOutcome, run_id: str | None = None
) -> str | None:
    """Record the look (``watch_checked``); on ROLLBACK restore the previous production with
    the evidence as the reason. Returns the restored version, or None."""
    if outcome.status != "looked":
        return None
    registry.record(WATCHED, run_id=run_id, **outcome.history_fields())
    if outcome.decision != "ROLLBACK":
        return None
    assert outcome.baseline_version is not None
    return registry.rollback(
        outcome.baseline_version,
        reason="post-promotion watch: " + "; ".join(outcome.reasons),
        run_id=run_id,
    )


# ---------------------------------------------------------------------------- shared


def _look(out: LiveOutcome, state: SequentialState, est: Estimate, final: bool) -> LiveOutcome:
    if state.looks and est.n <= state.last_n and not final:
        out.status, out.decision = "waiting", state.decision
        out.reasons = [
            f"no new labelled rows since the last look ({est.n} rows): nothing tested, "
            f"α spent so far {state.alpha_spent:.4g} of {state.plan.alpha:.4g}"
        ]
        out.state = state.to_dict()
        return out
    look = state.look(est, final=final)
    out.decision, out.reasons = look.decision, [look.reason]
    out.state, out.look = state.to_dict(), state.to_dict()["looks"][-1]
    return out


def _paired_estimate(rows: pd.DataFrame, baseline: str, candidate: str) -> Estimate:
    pairs = log.paired_rows(rows, baseline, candidate)
    return paired_difference(
        pairs[log.LABEL].to_numpy(),
        pairs[log.BASELINE_SCORE].to_numpy(float),
        pairs[log.CANDIDATE_SCORE].to_numpy(float),
    )


def _routed_estimate(rows: pd.DataFrame, baseline: str, candidate: str) -> Estimate:
    served = log.routed_rows(rows, baseline, candidate)
    b = served[served[log.ARM] == "baseline"]
    c = served[served[log.ARM] == "candidate"]
    return unpaired_difference(
        b[log.LABEL].to_numpy(),
        b[log.SCORE].to_numpy(float),
        c[log.LABEL].to_numpy(),
        c[log.SCORE].to_numpy(float),
    )


def _test_states(
    events: Sequence[Mapping[str, Any]], kind: str, key: str
) -> dict[str, SequentialState]:
    """The newest state of each test (by its id field ``key``) in the history."""
    states: dict[str, SequentialState] = {}
    for ev in events:
        if ev.get("event") == kind and ev.get(key) and isinstance(ev.get("state"), dict):
            try:
                states[str(ev[key])] = SequentialState.from_dict(ev["state"])
            except Exception as exc:
                raise RegistryError(
                    f"history event {ev.get('id')} ({kind}): unreadable state: {exc}"
                ) from exc
    return states


def _open_test(
    events: Sequence[Mapping[str, Any]], kind: str, key: str, version: str, baseline: str
) -> tuple[str, SequentialState] | None:
    """The newest undecided test of ``version`` against ``baseline``, if any."""
    for ev in reversed(events):
        if (
            ev.get("event") == kind
            and ev.get("version") == version
            and ev.get("baseline_version") == baseline
        ):
            test_id = str(ev.get(key))
            state = _test_states([ev], kind, key).get(test_id)
            return (test_id, state) if state is not None and not state.done else None
    return None


def write_outcome_reports(outcome: LiveOutcome, reports_dir: Path) -> LiveOutcome:
    """Write a look's text/JSON/HTML reports under ``reports_dir/live/<test id>/`` and keep
    their paths in ``outcome.reports`` (a run without a new look writes none)."""
    if outcome.status != "looked":
        return outcome
    n = len((outcome.state or {}).get("looks") or [])
    stem = f"{outcome.kind}-{outcome.candidate_version}-vs-{outcome.baseline_version}-look{n:03d}"
    folder = Path(reports_dir) / "live" / str(outcome.test_id)
    outcome.reports = write_reports(outcome.to_dict(), folder, stem)
    return outcome


def labelled(
    home: Any, model_name: str, now: dt.datetime, label_window_hours: float
) -> pd.DataFrame:
    """The labelled rows of the model's prediction log whose label window has closed."""
    return log.load_labelled(
        log.predictions_dir(home, model_name),
        as_of=now,
        label_window=dt.timedelta(hours=label_window_hours),
    )
