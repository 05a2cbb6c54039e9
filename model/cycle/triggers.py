"""Should we retrain? Every trigger is checked and explained, with its numbers.

Triggers, in the order they are checked (the first one that fires is the ``primary``
reason, used in flow run names): ``force``, ``no-production``, ``drift``, ``degradation``,
``estimated_auc_drop``, ``age``, ``volume``, ``schedule``. A cooldown
(``min_hours_between_trainings`` since the last training) suppresses the drift and volume
triggers, so repeated drift events do not start a storm of trainings; a forced run ignores
it (``estimated_auc_drop``, a performance trigger like ``degradation``, is not suppressed).
A trigger whose inputs are missing is listed as "not checked" with the reason; it never
raises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from model import clock
from model.errors import RetrainError

TRIGGER_ORDER = (
    "force",
    "no-production",
    "drift",
    "degradation",
    "estimated_auc_drop",
    "age",
    "volume",
    "schedule",
)
COOLDOWN_SUPPRESSES = frozenset({"drift", "volume"})


class TriggerInputError(RetrainError, ValueError):
    """Trigger parameters out of range."""


@dataclass(frozen=True)
class TriggerParams:
    """What the user configures (flat flow parameters map onto these)."""

    force_retrain: bool = False
    drift_report_path: str | None = None
    dataset_drift_threshold: float = 0.5
    max_days_since_training: float | None = 30
    retrain_on_schedule: bool = False
    min_auc: float | None = None
    max_auc_drop: float | None = None
    min_new_samples: int | None = None
    min_hours_between_trainings: float = 24
    estimated_auc_margin: float | None = None

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.dataset_drift_threshold <= 1, "dataset_drift_threshold must be in [0, 1]"),
            (
                self.max_days_since_training is None or self.max_days_since_training >= 0,
                "max_days_since_training must be >= 0",
            ),
            (self.min_auc is None or 0 <= self.min_auc <= 1, "min_auc must be in [0, 1]"),
            (
                self.max_auc_drop is None or 0 <= self.max_auc_drop <= 1,
                "max_auc_drop must be in [0, 1]",
            ),
            (
                self.min_new_samples is None or self.min_new_samples >= 1,
                "min_new_samples must be >= 1",
            ),
            (self.min_hours_between_trainings >= 0, "min_hours_between_trainings must be >= 0"),
            (
                self.estimated_auc_margin is None or 0 <= self.estimated_auc_margin <= 1,
                "estimated_auc_margin must be in [0, 1]",
            ),
        ]
        errors = [msg for ok, msg in checks if not ok]
        if errors:
            raise TriggerInputError("trigger parameters: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TriggerState:
    """What the flow gathered from the registry and the data. Unknowns stay None.

    ``drift`` is a drift summary: ``dataset_drift`` (bool), ``drift_share``,
    ``drifted_features``, ``report_path``, ``source`` ("file" | "computed").
    ``notes`` maps a trigger name to why its input is missing (shown as the detail).
    """

    now: datetime = field(default_factory=clock.now)
    is_scheduled: bool = False
    has_production: bool = True
    production_version: str | None = None
    production_trained_at: datetime | None = None
    last_training_at: datetime | None = None
    new_rows_since_training: int | None = None
    production_auc_recent: float | None = None
    production_auc_rows: int | None = None
    production_test_auc: float | None = None
    estimated_auc: dict[str, Any] | None = None  # CBPE on the newest batch (auc, ci, n_rows)
    production_holdout_auc: dict[str, Any] | None = None  # recorded at its promotion
    estimates_missed: list[dict[str, Any]] = field(default_factory=list)  # new checks it failed
    drift: dict[str, Any] | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class TriggerCheck:
    name: str
    checked: bool
    fired: bool
    detail: str
    suppressed_by_cooldown: bool = False
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> bool:
        """Fired and not suppressed: this check asks for a retraining."""
        return self.fired and not self.suppressed_by_cooldown

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checked": self.checked,
            "fired": self.fired,
            "suppressed_by_cooldown": self.suppressed_by_cooldown,
            "detail": self.detail,
            "values": {k: _jsonable(v) for k, v in self.values.items()},
        }


@dataclass
class TriggerDecision:
    should_retrain: bool
    primary: str
    reasons: list[str]
    checks: list[TriggerCheck]
    cooldown: dict[str, Any]
    evaluated_at: datetime

    def check(self, name: str) -> TriggerCheck:
        return next(c for c in self.checks if c.name == name)

    @property
    def suppressed(self) -> list[str]:
        """The triggers that fired but were suppressed by the cooldown, in trigger order."""
        return [c.name for c in self.checks if c.suppressed_by_cooldown]

    def suppression_text(self) -> str | None:
        """Which trigger(s) the cooldown suppressed, by what cooldown, until when."""
        if not self.suppressed:
            return None
        until = self.cooldown.get("until")
        return (
            f"{', '.join(self.suppressed)} fired but suppressed by the cooldown "
            f"(min_hours_between_trainings {self.cooldown.get('min_hours'):g} h; last training "
            f"{_jsonable(self.cooldown.get('last_training_at'))}) until {_jsonable(until)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "should_retrain": self.should_retrain,
            "primary": self.primary,
            "reasons": list(self.reasons),
            "checks": [c.to_dict() for c in self.checks],
            "cooldown": {k: _jsonable(v) for k, v in self.cooldown.items()},
            "suppressed": self.suppressed,
            "suppression": self.suppression_text(),
            "evaluated_at": self.evaluated_at.isoformat(timespec="seconds"),
        }

    def to_markdown(self) -> str:
        verdict = (
            f"**Retrain** (primary reason: `{self.primary}`)"
            if self.should_retrain
            else "**No retraining**"
        )
        lines = [
            "# Retraining triggers",
            "",
            f"{verdict}, evaluated {self.evaluated_at.isoformat(timespec='seconds')}.",
            "",
            *([f"**Cooldown**: {self.suppression_text()}.", ""] if self.suppressed else []),
            "| Trigger | Checked | Fired | Detail |",
            "|---|:---:|:---:|---|",
        ]
        for c in self.checks:
            fired = "yes" if c.fired else "no"
            if c.fired and c.suppressed_by_cooldown:
                fired = "yes (cooldown)"
            elif c.fired:
                fired = "**yes**"
            detail = c.detail.replace("|", "\\|")
            lines.append(f"| {c.name} | {'yes' if c.checked else 'no'} | {fired} | {detail} |")
        if self.reasons:
            lines += ["", "Reasons:", *[f"- {r}" for r in self.reasons]]
        return "\n".join(lines) + "\n"


def _jsonable(v: Any) -> Any:
    return v.isoformat(timespec="seconds") if isinstance(v, datetime) else v


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _hours_between(later: datetime, earlier: datetime) -> float:
    return (_aware(later) - _aware(earlier)).total_seconds() / 3600


def _check_force(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    if p.force_retrain:
        return TriggerCheck("force", True, True, "force_retrain=True (manual force)")
    return TriggerCheck("force", True, False, "force_retrain=False")


def _check_no_production(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    if not s.has_production:
        return TriggerCheck("no-production", True, True, "no production model yet: train one")
    return TriggerCheck(
        "no-production",
        True,
        False,
        f"production model {s.production_version or '(version unknown)'} exists",
        values={"production_version": s.production_version},
    )


def _check_drift(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    d = s.drift
    if d is None:
        why = s.notes.get("drift", "no drift report given and no drift computed")
        return TriggerCheck("drift", False, False, f"not checked: {why}")
    drifted = bool(d.get("dataset_drift"))
    share = d.get("drift_share")
    source = d.get("source", "file" if d.get("report_path") else "computed")
    where = f" ({d['report_path']})" if d.get("report_path") else ""
    share_txt = f"drift share {share:.2f}" if isinstance(share, int | float) else "no drift share"
    features = d.get("drifted_features") or []
    feats = f"; drifted: {', '.join(map(str, features))}" if features else ""
    changes = d.get("schema_changes") or {}
    if changes:
        feats += "; schema changes: " + ", ".join(
            f"{name} ({str(kind).replace('_', ' ')})" for name, kind in changes.items()
        )
    # A report file's own dataset_drift decides (an external job may use its own rule);
    # computed drift used dataset_drift_threshold already.
    rule = (
        "the report's own dataset_drift decides"
        if source == "file"
        else f"threshold {p.dataset_drift_threshold:.2f}"
    )
    detail = (
        f"dataset drift {'detected' if drifted else 'not detected'} by the {source} "
        f"report{where}: {share_txt} ({rule}){feats}"
    )
    values = {
        "dataset_drift": drifted,
        "drift_share": share,
        "threshold": p.dataset_drift_threshold,
        "source": source,
        "report_path": d.get("report_path"),
        "schema_changes": dict(changes),
    }
    return TriggerCheck("drift", True, drifted, detail, values=values)


def _check_degradation(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    if p.min_auc is None and p.max_auc_drop is None:
        return TriggerCheck(
            "degradation", False, False, "not checked: min_auc and max_auc_drop unset"
        )
    if not s.has_production:
        return TriggerCheck("degradation", False, False, "not checked: no production model")
    recent = s.production_auc_recent
    if recent is None:
        why = s.notes.get("degradation", "no labelled incoming batch to score")
        return TriggerCheck("degradation", False, False, f"not checked: {why}")
    rows = f" on {s.production_auc_rows:,} recent labelled rows" if s.production_auc_rows else ""
    parts: list[str] = []
    fired = False
    if p.min_auc is not None:
        below = recent < p.min_auc
        fired |= below
        parts.append(f"AUC {recent:.3f}{rows} {'<' if below else '≥'} min_auc {p.min_auc:.3f}")
    if p.max_auc_drop is not None:
        if s.production_test_auc is None:
            parts.append("drop not checked: no recorded test/validation AUC")
        else:
            drop = s.production_test_auc - recent
            over = drop > p.max_auc_drop
            fired |= over
            parts.append(
                f"drop {drop:+.3f} from recorded {s.production_test_auc:.3f} "
                f"{'>' if over else '≤'} max_auc_drop {p.max_auc_drop:.3f}"
            )
    values = {
        "auc_recent": recent,
        "auc_rows": s.production_auc_rows,
        "auc_recorded": s.production_test_auc,
        "min_auc": p.min_auc,
        "max_auc_drop": p.max_auc_drop,
    }
    return TriggerCheck("degradation", True, fired, "; ".join(parts), values=values)


def _check_estimated_auc_drop(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    name = "estimated_auc_drop"
    if p.estimated_auc_margin is None:
        return TriggerCheck(name, False, False, "not checked: estimated_auc_margin unset")
    if not s.has_production:
        return TriggerCheck(name, False, False, "not checked: no production model")
    holdout = s.production_holdout_auc
    if not holdout or holdout.get("ci_low") is None:
        why = (
            f"production model {s.production_version or ''} has no recorded holdout AUC "
            "interval (promoted before intervals were recorded, or never compared)"
        )
        return TriggerCheck(name, False, False, f"not checked: {why}")
    est = s.estimated_auc
    if not est or est.get("auc") is None:
        why = s.notes.get(name, "no incoming batch to estimate on")
        return TriggerCheck(name, False, False, f"not checked: {why}")
    low, auc = float(holdout["ci_low"]), float(est["auc"])
    limit = low - p.estimated_auc_margin
    ci = ""
    if est.get("auc_ci_low") is not None and est.get("auc_ci_high") is not None:
        ci = f" [{est['auc_ci_low']:.3f}, {est['auc_ci_high']:.3f}]"
    rows = f" on {est['n_rows']:,} rows" if est.get("n_rows") else ""
    what = f"estimated AUC {auc:.3f}{ci}{rows} (CBPE, no labels)"
    if est.get("reliable") is False and est.get("realised_auc") is not None:
        # labels contradicted the estimate: the realised AUC decides instead
        auc = float(est["realised_auc"])
        what = (
            f"realised AUC {auc:.3f} (the estimate is unreliable: {est.get('unreliable_because')})"
        )
    fired = auc < limit
    detail = (
        f"{what} {'<' if fired else '≥'} {limit:.3f} = holdout AUC lower bound {low:.3f} − "
        f"estimated_auc_margin {p.estimated_auc_margin:.3f}"
    )
    values = {
        "estimated_auc": auc,
        "estimated_auc_ci_low": est.get("auc_ci_low"),
        "estimated_auc_ci_high": est.get("auc_ci_high"),
        "holdout_auc_ci_low": low,
        "margin": p.estimated_auc_margin,
        "realised_auc": est.get("realised_auc"),
        "estimate_reliable": est.get("reliable", True),
    }
    return TriggerCheck(name, True, fired, detail, values=values)


def _check_age(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    if p.max_days_since_training is None:
        return TriggerCheck("age", False, False, "not checked: max_days_since_training unset")
    if not s.has_production:
        return TriggerCheck("age", False, False, "not checked: no production model")
    if s.production_trained_at is None:
        why = s.notes.get("age", "production model has no trained_at")
        return TriggerCheck("age", False, False, f"not checked: {why}")
    days = _hours_between(s.now, s.production_trained_at) / 24
    fired = days >= p.max_days_since_training
    detail = (
        f"production model trained {days:.1f} days ago "
        f"{'≥' if fired else '<'} max_days_since_training {p.max_days_since_training:g}"
    )
    values = {"days": round(days, 3), "max_days": p.max_days_since_training}
    return TriggerCheck("age", True, fired, detail, values=values)


def _check_volume(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    if p.min_new_samples is None:
        return TriggerCheck("volume", False, False, "not checked: min_new_samples unset")
    if s.new_rows_since_training is None:
        why = s.notes.get("volume", "rows since the last training unknown")
        return TriggerCheck("volume", False, False, f"not checked: {why}")
    n = s.new_rows_since_training
    fired = n >= p.min_new_samples
    detail = (
        f"{n:,} new rows since the last training "
        f"{'≥' if fired else '<'} min_new_samples {p.min_new_samples:,}"
    )
    values = {"new_rows": n, "min_new_samples": p.min_new_samples}
    return TriggerCheck("volume", True, fired, detail, values=values)


def _check_schedule(p: TriggerParams, s: TriggerState) -> TriggerCheck:
    if not s.is_scheduled:
        return TriggerCheck("schedule", True, False, "not a scheduled run")
    if p.retrain_on_schedule:
        return TriggerCheck(
            "schedule", True, True, "scheduled run with retrain_on_schedule=True: retrain"
        )
    return TriggerCheck(
        "schedule",
        True,
        False,
        "scheduled run; retrain_on_schedule=False, so the other triggers decide",
    )


_CHECKS = {
    "force": _check_force,
    "no-production": _check_no_production,
    "drift": _check_drift,
    "degradation": _check_degradation,
    "estimated_auc_drop": _check_estimated_auc_drop,
    "age": _check_age,
    "volume": _check_volume,
    "schedule": _check_schedule,
}


def _cooldown(p: TriggerParams, s: TriggerState) -> dict[str, Any]:
    last = s.last_training_at or s.production_trained_at
    if p.min_hours_between_trainings <= 0:
        return {"active": False, "detail": "cooldown off (min_hours_between_trainings=0)"}
    if last is None:
        return {"active": False, "detail": "cooldown inactive: no earlier training known"}
    hours = _hours_between(s.now, last)
    active = hours < p.min_hours_between_trainings
    return {
        "active": active,
        "hours_since_training": round(hours, 3),
        "min_hours": p.min_hours_between_trainings,
        "last_training_at": last,
        "until": _aware(last) + timedelta(hours=p.min_hours_between_trainings),
        "detail": (
            f"last training {hours:.1f} h ago "
            f"{'<' if active else '≥'} min_hours_between_trainings "
            f"{p.min_hours_between_trainings:g}"
        ),
    }


def evaluate_triggers(params: TriggerParams, state: TriggerState) -> TriggerDecision:
    """Check every trigger, apply the cooldown, and explain the decision."""
    cooldown = _cooldown(params, state)
    checks = [_CHECKS[name](params, state) for name in TRIGGER_ORDER]
    for c in checks:
        if (
            c.fired
            and c.name in COOLDOWN_SUPPRESSES
            and cooldown["active"]
            and not params.force_retrain
        ):
            c.suppressed_by_cooldown = True
            c.detail += f" — suppressed by cooldown: {cooldown['detail']}"
    firing = [c for c in checks if c.counts]
    reasons = [f"{c.name}: {c.detail}" for c in firing]
    suppressed = [c for c in checks if c.suppressed_by_cooldown]
    if not firing:
        reasons = [f"{c.name} suppressed: {c.detail}" for c in suppressed] or ["no trigger fired"]
    checks.append(
        TriggerCheck(
            "cooldown",
            params.min_hours_between_trainings > 0,
            bool(cooldown["active"]),
            cooldown["detail"] + (" (applies to drift and volume; force overrides)"),
            values={k: v for k, v in cooldown.items() if k != "detail"},
        )
    )
    return TriggerDecision(
        should_retrain=bool(firing),
        primary=firing[0].name if firing else "none",
        reasons=reasons,
        checks=checks,
        cooldown=cooldown,
        evaluated_at=_aware(state.now),
    )
