"""What both live tests share: their options, what one look found, and the pieces of a look.

:class:`LiveSettings` gathers the flat parameters of both live flows; :class:`LiveOutcome` is
what one run found (a new look, or why there was none) with the history fields that let the
next run continue the test; :func:`take_look` takes one look of a
:class:`~model.live.sequential.SequentialState` unless no new rows arrived; the estimates come
from the labelled prediction log through :mod:`model.live.labelled_log`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from model import clock
from model.errors import ParameterError, RegistryError
from model.live import labelled_log as log
from model.live.report import write_reports
from model.live.sequential import (
    DEFAULT_MIN_CLASS_COUNT,
    DEFAULT_N_MAX,
    DEFAULT_WATCH_MARGIN,
    SPENDING_FUNCTIONS,
    Estimate,
    SequentialState,
    paired_difference,
    unpaired_difference,
)

EVALUATED = "challenger_evaluated"
WATCHED = "watch_checked"
MODES = ("shadow", "routed")
DEFAULT_IMPROVEMENT_THRESHOLD = 0.005
"""The challenger must be shown better by more than the offline gate's T (one promise)."""
DEFAULT_WATCH_ALPHA = 0.10
"""The watch's level at the edge of its null (new production worse by exactly the margin),
where a rollback costs nothing: it restores a model at least as good. Chosen for power: at 167
labelled rows a day a production worse by 0.02 (margin 0.01) is rolled back in about 73 % of
watches at 0.10, 62 % at 0.05 (issue 23's simulations)."""
DEFAULT_WATCH_MAX_DAYS = 60.0
DEFAULT_WATCH_ROWS = 10_000


@dataclass(frozen=True)
class LiveSettings:
    """The options of both live tests (flat flow parameters gathered in one object)."""

    alpha: float = 0.05  # the challenger evaluation's level (live rows are fresh: full α)
    n_max: int = DEFAULT_N_MAX
    spending: str = "obrien_fleming"
    min_class_count: int = DEFAULT_MIN_CLASS_COUNT
    improvement_threshold: float = DEFAULT_IMPROVEMENT_THRESHOLD  # the gate's T by default
    mode: Literal["shadow", "routed"] = "shadow"
    label_window_hours: float = 0.0
    watch_margin: float = DEFAULT_WATCH_MARGIN
    watch_alpha: float = DEFAULT_WATCH_ALPHA
    watch_max_days: float = DEFAULT_WATCH_MAX_DAYS
    watch_rows: int = DEFAULT_WATCH_ROWS
    calibration_margin: float | None = 0.01  # the gate's guardrails, held on live labels too
    guardrails: Mapping[str, float] | None = None
    guardrail_mode: str = "non_inferiority"

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("alpha", 0 < self.alpha < 0.5, "in (0, 0.5)"),
            ("watch_alpha", 0 < self.watch_alpha < 0.5, "in (0, 0.5)"),
            ("n_max", _int(self.n_max) and self.n_max >= 10, "an integer >= 10"),
            ("spending", self.spending in SPENDING_FUNCTIONS, " or ".join(SPENDING_FUNCTIONS)),
            ("min_class_count", _int(self.min_class_count) and self.min_class_count >= 2, ">= 2"),
            ("improvement_threshold", 0 <= self.improvement_threshold < 1, "in [0, 1)"),
            ("mode", self.mode in MODES, "shadow or routed"),
            ("label_window_hours", 0 <= self.label_window_hours <= 24 * 366, "in [0, 8784]"),
            ("watch_margin", 0 <= self.watch_margin < 1, "in [0, 1)"),
            ("watch_max_days", 0 < self.watch_max_days <= 366, "in (0, 366]"),
            ("watch_rows", _int(self.watch_rows) and self.watch_rows >= 10, "an integer >= 10"),
            (
                "guardrail_mode",
                self.guardrail_mode in ("non_inferiority", "harm"),
                "non_inferiority or harm",
            ),
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
    batches: list[str] = field(default_factory=list)  # labelled batches its rows reached
    guardrails: list[dict[str, Any]] = field(default_factory=list)  # held at a PROMOTE look
    created_at: str = field(default_factory=lambda: clock.now().isoformat())
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
            "batches": (self.batches or None) if self.alpha_spent > 0 else None,
            "guardrails": self.guardrails or None,
        }


def take_look(out: LiveOutcome, state: SequentialState, est: Estimate, final: bool) -> LiveOutcome:
    """One look of ``state`` at ``est`` into ``out`` (unless no new rows arrived since the
    last look and the test is not ending)."""
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
    out.state = state.to_dict()
    out.look = out.state["looks"][-1]
    return out


def paired_estimate(rows: pd.DataFrame, baseline: str, candidate: str) -> Estimate:
    """DeLong's paired estimate on the rows both versions scored (one in shadow)."""
    pairs = log.paired_rows(rows, baseline, candidate)
    return paired_difference(
        pairs[log.LABEL].to_numpy(),
        pairs[log.BASELINE_SCORE].to_numpy(float),
        pairs[log.CANDIDATE_SCORE].to_numpy(float),
    )


def routed_estimate(rows: pd.DataFrame, baseline: str, candidate: str) -> Estimate:
    """The unpaired estimate on the rows each version served (one row per entity)."""
    served = log.routed_rows(rows, baseline, candidate)
    b = served[served[log.ARM] == "baseline"]
    c = served[served[log.ARM] == "candidate"]
    return unpaired_difference(
        b[log.LABEL].to_numpy(),
        b[log.SCORE].to_numpy(float),
        c[log.LABEL].to_numpy(),
        c[log.SCORE].to_numpy(float),
    )


def states_in_history(
    events: Sequence[Mapping[str, Any]], kind: str, key: str
) -> dict[str, SequentialState]:
    """The newest state of each test (by its id field ``key``) in the history."""
    states: dict[str, SequentialState] = {}
    for ev in reversed(events):  # each event carries its test's whole state: read the newest
        test = ev.get(key)
        if ev.get("event") == kind and test and str(test) not in states:
            found = state_of(ev, kind)
            if found is not None:
                states[str(test)] = found
    return states


def newest_state(
    events: Sequence[Mapping[str, Any]], kind: str, key: str, test_id: str
) -> SequentialState | None:
    """The newest state of test ``test_id`` in the history (only that event is parsed)."""
    for ev in reversed(events):
        if ev.get("event") == kind and str(ev.get(key)) == test_id:
            found = state_of(ev, kind)
            if found is not None:
                return found
    return None


def state_of(ev: Mapping[str, Any], kind: str) -> SequentialState | None:
    if not isinstance(ev.get("state"), dict):
        return None
    try:
        return SequentialState.from_dict(ev["state"])
    except Exception as exc:
        raise RegistryError(
            f"history event {ev.get('id')} ({kind}): unreadable state: {exc}"
        ) from exc


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
