"""Retraining triggers: each fires and stays silent on constructed states; the cooldown holds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from model.cycle.triggers import (
    TRIGGER_ORDER,
    TriggerDecision,
    TriggerParams,
    TriggerState,
    evaluate_triggers,
)
from model.errors import RetrainError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUIET_PARAMS = TriggerParams(min_hours_between_trainings=0)


def quiet_state(**changes: object) -> TriggerState:
    """A production model trained 5 days ago, nothing wrong, nothing measured."""
    state = TriggerState(
        now=NOW,
        has_production=True,
        production_version="v0003",
        production_trained_at=NOW - timedelta(days=5),
        last_training_at=NOW - timedelta(days=5),
        drift={"dataset_drift": False, "drift_share": 0.1, "source": "computed"},
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def fired(decision: TriggerDecision) -> set[str]:
    return {c.name for c in decision.checks if c.counts and c.name != "cooldown"}


def test_quiet_state_does_not_retrain() -> None:
    d = evaluate_triggers(QUIET_PARAMS, quiet_state())
    assert not d.should_retrain
    assert d.primary == "none"
    assert fired(d) == set()
    assert [c.name for c in d.checks] == [*TRIGGER_ORDER, "cooldown"]


def test_force() -> None:
    d = evaluate_triggers(replace(QUIET_PARAMS, force_retrain=True), quiet_state())
    assert d.should_retrain and d.primary == "force"
    assert fired(d) == {"force"}


def test_no_production() -> None:
    state = quiet_state(
        has_production=False,
        production_version=None,
        production_trained_at=None,
        last_training_at=None,
        drift=None,
    )
    d = evaluate_triggers(TriggerParams(), state)
    assert d.should_retrain and d.primary == "no-production"
    assert not d.check("age").checked
    assert evaluate_triggers(TriggerParams(), quiet_state()).check("no-production").fired is False


def test_drift_fires_from_report_and_stays_silent_without_drift() -> None:
    drift = {"dataset_drift": True, "drift_share": 0.6, "report_path": "r.json", "source": "file"}
    d = evaluate_triggers(QUIET_PARAMS, quiet_state(drift=drift))
    assert d.should_retrain and d.primary == "drift"
    assert "0.60" in d.check("drift").detail and "r.json" in d.check("drift").detail
    assert d.check("drift").values["drift_share"] == 0.6
    # A file's boolean decides (an external job has its own rule): the detail must not
    # suggest that this flow's threshold was applied to the file's share.
    params = TriggerParams(min_hours_between_trainings=0, dataset_drift_threshold=0.3)
    external = {**drift, "dataset_drift": False, "drift_share": 0.4}
    c = evaluate_triggers(params, quiet_state(drift=external)).check("drift")
    assert not c.fired and "threshold 0.30" not in c.detail and "own dataset_drift" in c.detail
    computed = {"dataset_drift": True, "drift_share": 0.4, "source": "computed"}
    c = evaluate_triggers(params, quiet_state(drift=computed)).check("drift")
    assert c.fired and "threshold 0.30" in c.detail
    silent = evaluate_triggers(QUIET_PARAMS, quiet_state())
    assert silent.check("drift").checked and not silent.check("drift").fired


def test_drift_not_checked_without_report() -> None:
    state = quiet_state(drift=None, notes={"drift": "no incoming batch yet"})
    c = evaluate_triggers(QUIET_PARAMS, state).check("drift")
    assert not c.checked and not c.fired
    assert "no incoming batch yet" in c.detail


def test_age() -> None:
    old = quiet_state(production_trained_at=NOW - timedelta(days=31))
    d = evaluate_triggers(QUIET_PARAMS, old)
    assert d.should_retrain and d.primary == "age"
    assert d.check("age").values["days"] == pytest.approx(31)
    exactly = quiet_state(production_trained_at=NOW - timedelta(days=30))
    assert evaluate_triggers(QUIET_PARAMS, exactly).check("age").fired  # ≥
    young = quiet_state(production_trained_at=NOW - timedelta(days=29, hours=23))
    assert not evaluate_triggers(QUIET_PARAMS, young).check("age").fired
    off = replace(QUIET_PARAMS, max_days_since_training=None)
    assert not evaluate_triggers(off, old).check("age").checked
    unknown = quiet_state(production_trained_at=None)
    assert not evaluate_triggers(QUIET_PARAMS, unknown).check("age").checked


def test_schedule() -> None:
    scheduled = quiet_state(is_scheduled=True)
    on = replace(QUIET_PARAMS, retrain_on_schedule=True)
    d = evaluate_triggers(on, scheduled)
    assert d.should_retrain and d.primary == "schedule"
    off = evaluate_triggers(QUIET_PARAMS, scheduled)
    assert not off.should_retrain
    assert "other triggers" in off.check("schedule").detail
    # a scheduled run without retrain_on_schedule still evaluates the other triggers
    old = quiet_state(is_scheduled=True, production_trained_at=NOW - timedelta(days=40))
    assert evaluate_triggers(QUIET_PARAMS, old).primary == "age"
    assert not evaluate_triggers(on, quiet_state()).check("schedule").fired


def test_degradation_min_auc_and_drop() -> None:
    params = replace(QUIET_PARAMS, min_auc=0.75, max_auc_drop=0.05)
    low = quiet_state(production_auc_recent=0.70, production_test_auc=0.72)
    d = evaluate_triggers(params, low)
    assert d.should_retrain and d.primary == "degradation"
    assert "0.700" in d.check("degradation").detail
    drop = quiet_state(production_auc_recent=0.80, production_test_auc=0.90)
    assert evaluate_triggers(params, drop).check("degradation").fired
    fine = quiet_state(production_auc_recent=0.86, production_test_auc=0.90)
    c = evaluate_triggers(params, fine).check("degradation")
    assert c.checked and not c.fired
    no_labels = evaluate_triggers(params, quiet_state()).check("degradation")
    assert not no_labels.checked and "not checked" in no_labels.detail
    disabled = evaluate_triggers(QUIET_PARAMS, low).check("degradation")
    assert not disabled.checked and not disabled.fired
    no_recorded = quiet_state(production_auc_recent=0.80)
    c = evaluate_triggers(replace(QUIET_PARAMS, max_auc_drop=0.05), no_recorded).check(
        "degradation"
    )
    assert c.checked and not c.fired and "no recorded" in c.detail


def test_volume() -> None:
    params = replace(QUIET_PARAMS, min_new_samples=1000)
    d = evaluate_triggers(params, quiet_state(new_rows_since_training=1000))
    assert d.should_retrain and d.primary == "volume"
    assert not evaluate_triggers(params, quiet_state(new_rows_since_training=999)).should_retrain
    unknown = evaluate_triggers(params, quiet_state()).check("volume")
    assert not unknown.checked
    assert (
        not evaluate_triggers(QUIET_PARAMS, quiet_state(new_rows_since_training=10**6))
        .check("volume")
        .checked
    )


def test_cooldown_suppresses_drift_and_volume_but_not_force() -> None:
    params = TriggerParams(min_new_samples=100)  # default cooldown: 24 h
    drift = {"dataset_drift": True, "drift_share": 0.8, "source": "computed"}
    recent = quiet_state(
        last_training_at=NOW - timedelta(hours=3), drift=drift, new_rows_since_training=500
    )
    d = evaluate_triggers(params, recent)
    assert not d.should_retrain
    assert d.check("drift").fired and d.check("drift").suppressed_by_cooldown
    assert d.check("volume").suppressed_by_cooldown
    assert d.check("cooldown").fired
    assert all("suppressed" in r for r in d.reasons)
    forced = evaluate_triggers(replace(params, force_retrain=True), recent)
    assert forced.should_retrain and forced.primary == "force"
    assert not forced.check("drift").suppressed_by_cooldown
    later = replace(recent, last_training_at=NOW - timedelta(hours=25))
    assert evaluate_triggers(params, later).primary == "drift"
    off = evaluate_triggers(replace(params, min_hours_between_trainings=0), recent)
    assert off.should_retrain and off.primary == "drift"
    # age is not a storm risk: the cooldown does not hold it back
    old = replace(recent, production_trained_at=NOW - timedelta(days=60))
    assert evaluate_triggers(params, old).primary == "age"


def test_cooldown_suppression_says_which_trigger_what_cooldown_until_when() -> None:
    """The decision names what the cooldown suppressed, its length and its end (last training
    + min_hours_between_trainings), in the JSON and the Markdown of the artifact."""
    params = TriggerParams(min_new_samples=100, min_hours_between_trainings=24)
    drift = {"dataset_drift": True, "drift_share": 0.8, "source": "computed"}
    last = NOW - timedelta(hours=3)
    state = quiet_state(last_training_at=last, drift=drift, new_rows_since_training=500)
    d = evaluate_triggers(params, state)
    assert d.suppressed == ["drift", "volume"]
    data = d.to_dict()
    until = "2026-06-02T09:00:00+00:00"
    assert (last + timedelta(hours=24)).isoformat() == until
    assert data["suppressed"] == ["drift", "volume"]
    assert data["cooldown"]["until"] == until
    text = (
        "drift, volume fired but suppressed by the cooldown (min_hours_between_trainings 24 h; "
        f"last training 2026-06-01T09:00:00+00:00) until {until}"
    )
    assert data["suppression"] == text
    assert f"**Cooldown**: {text}." in d.to_markdown()
    quiet = evaluate_triggers(params, quiet_state())
    assert quiet.suppressed == [] and quiet.suppression_text() is None
    assert "**Cooldown**" not in quiet.to_markdown()


def test_decision_renders_markdown_and_json() -> None:
    drift = {"dataset_drift": True, "drift_share": 0.6, "report_path": "a|b.json"}
    d = evaluate_triggers(replace(QUIET_PARAMS, min_auc=0.7), quiet_state(drift=drift))
    md = d.to_markdown()
    assert md.count("\n| ") == len(d.checks) + 1  # header + one row per check
    assert "| drift | yes | **yes** |" in md
    assert "a\\|b.json" in md
    data = json.loads(json.dumps(d.to_dict()))
    assert data["primary"] == "drift" and data["should_retrain"] is True
    assert {c["name"] for c in data["checks"]} == {*TRIGGER_ORDER, "cooldown"}


def test_naive_datetimes_are_utc() -> None:
    state = quiet_state(
        now=NOW.replace(tzinfo=None),
        production_trained_at=(NOW - timedelta(days=40)).replace(tzinfo=None),
    )
    assert evaluate_triggers(QUIET_PARAMS, state).primary == "age"


@pytest.mark.parametrize(
    "bad",
    [
        {"dataset_drift_threshold": 1.2},
        {"min_auc": 1.5},
        {"max_auc_drop": -0.1},
        {"min_new_samples": 0},
        {"min_hours_between_trainings": -1},
        {"max_days_since_training": -2},
    ],
)
def test_params_validated(bad: dict[str, object]) -> None:
    with pytest.raises(RetrainError, match=next(iter(bad))):
        TriggerParams(**bad)  # type: ignore[arg-type]
