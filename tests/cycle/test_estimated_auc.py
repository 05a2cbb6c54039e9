"""The ``estimated_auc_drop`` trigger: the rule on given numbers, and the whole path on a
real production model (trained on the demo data) with new batches scored by CBPE."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.cycle.triggers import TriggerParams, TriggerState, evaluate_triggers
from model.errors import RetrainError
from model.settings import Settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOLDOUT = {"auc": 0.85, "se": 0.01, "ci_low": 0.83, "ci_high": 0.87}


def _state(**changes: Any) -> TriggerState:
    state = TriggerState(
        now=NOW,
        production_version="v0003",
        production_trained_at=NOW - timedelta(days=5),
        last_training_at=NOW - timedelta(days=5),
        production_holdout_auc=HOLDOUT,
        estimated_auc={"auc": 0.80, "auc_ci_low": 0.78, "auc_ci_high": 0.82, "n_rows": 5000},
    )
    return replace(state, **changes)


def _check(margin: float | None, state: TriggerState) -> Any:
    params = TriggerParams(min_hours_between_trainings=24, estimated_auc_margin=margin)
    return evaluate_triggers(params, state)


def test_fires_only_below_the_holdout_lower_bound_by_more_than_the_margin() -> None:
    d = _check(0.02, _state())  # 0.80 < 0.83 - 0.02
    c = d.check("estimated_auc_drop")
    assert c.checked and c.fired and d.should_retrain and d.primary == "estimated_auc_drop"
    assert not c.suppressed_by_cooldown  # a performance trigger, like degradation
    assert "estimated AUC 0.800 [0.780, 0.820] on 5,000 rows" in c.detail
    assert "< 0.810 = holdout AUC lower bound 0.830 − estimated_auc_margin 0.020" in c.detail
    assert c.values["estimated_auc"] == 0.80 and c.values["holdout_auc_ci_low"] == 0.83
    d = _check(0.04, _state())  # 0.80 ≥ 0.79
    assert d.check("estimated_auc_drop").checked and not d.check("estimated_auc_drop").fired
    assert not d.should_retrain
    assert "≥ 0.790" in d.check("estimated_auc_drop").detail


@pytest.mark.parametrize(
    ("margin", "changes", "why"),
    [
        (None, {}, "estimated_auc_margin unset"),
        (0.0, {"has_production": False}, "no production model"),
        (0.0, {"production_holdout_auc": None}, "v0003 has no recorded holdout AUC interval"),
        (0.0, {"estimated_auc": None}, "no incoming batch to estimate on"),
        (
            0.0,
            {"estimated_auc": None, "notes": {"estimated_auc_drop": "val split unreadable"}},
            "val split unreadable",
        ),
    ],
)
def test_not_checked_says_why_and_never_fires(
    margin: float | None, changes: dict[str, Any], why: str
) -> None:
    d = _check(margin, _state(**changes))
    c = d.check("estimated_auc_drop")
    assert not c.checked and not c.fired and why in c.detail and c.detail.startswith("not checked")


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_margin_validated(bad: float) -> None:
    with pytest.raises(RetrainError, match="estimated_auc_margin"):
        TriggerParams(estimated_auc_margin=bad)


# --- the whole path on a real model ---


@pytest.fixture
def production(settings: Settings) -> dict[str, Any]:
    """A small network trained on 70,000 demo rows (a validation split of ≥ 10,000 rows, so
    the calibration is isotonic: the demo's label rule is a step function of the features,
    which Platt's two parameters do not fit), promoted with its holdout AUC interval measured
    on the prepared test split (DeLong, as the gate records it)."""
    from model.data import encode_target, load_split, prepare
    from model.data.demo import make_customers, write_parquet_atomic
    from model.gate.stats import auc_interval
    from model.registry import ModelRegistry
    from model.training import train_prepared
    from model.training.artifact import load_model

    base = settings.data_dir / "raw" / "customers.parquet"
    write_parquet_atomic(make_customers(70_000, 42), base)
    manifest = prepare([base], settings.prepared_dir, id_column="id")
    folder, _ = train_prepared(
        manifest.path,
        settings.runs_dir / "m1",
        {"num_epochs": 4, "batch_size": 1024, "patience": None, "seed": 1},
        data_path=settings.relative(manifest.path),
    )
    registry = ModelRegistry(settings.models_dir)
    version = registry.register(folder, reason="test")
    model = load_model(registry.version_path(version))
    test = load_split(manifest, "test")
    auc, se, low, high = auc_interval(encode_target(test["target"]), model.predict_proba(test))
    holdout = {"auc": auc, "se": se, "ci_low": low, "ci_high": high}
    registry.promote(version, None, comparison={"decision": "PROMOTE", "candidate_auc": holdout})
    return {"version": version, "model": model, "holdout": holdout}


def _config(margin: float | None) -> Any:
    from flows.retraining import flow_defaults
    from model.cycle import RetrainingConfig

    return RetrainingConfig(**{**flow_defaults(), "estimated_auc_margin": margin})


def test_real_model_trigger_fires_on_a_covariate_shift_and_not_without(
    settings: Settings, production: dict[str, Any]
) -> None:
    """Unshifted new batch: estimate ≈ realised, no firing. A covariate shift (rows selected
    by production's score, so P(y|x) is unchanged: the rows it finds hardest) lowers the
    realised AUC; the estimate follows it and the trigger fires."""
    from model.cycle import gather_trigger_state, select_sources
    from model.data.demo import make_customers, write_parquet_atomic

    model = production["model"]
    batch = settings.incoming_dir / "date=2026-02-01" / "part-0.parquet"
    write_parquet_atomic(make_customers(4000, 42, batch=1), batch)
    cfg = _config(0.03)
    state = gather_trigger_state(settings, cfg, select_sources(settings, cfg), is_scheduled=False)
    est = state.estimated_auc
    assert est is not None and est["n_rows"] == 4000
    assert state.production_holdout_auc == pytest.approx(production["holdout"])
    assert abs(est["auc"] - est["realised_auc"]) <= 0.03
    decision = evaluate_triggers(TriggerParams(estimated_auc_margin=0.03), state)
    assert decision.check("estimated_auc_drop").checked
    assert not decision.check("estimated_auc_drop").fired

    pool = make_customers(40_000, 42, batch=2)
    s = model.predict_proba(pool)
    hard = pool[(s > 0.2) & (s < 0.8)].head(4000)  # selection on x only: covariate shift
    write_parquet_atomic(
        hard.reset_index(drop=True), settings.incoming_dir / "date=2026-02-02" / "part-0.parquet"
    )
    state = gather_trigger_state(settings, cfg, select_sources(settings, cfg), is_scheduled=False)
    est = state.estimated_auc
    assert est is not None and est["paths"] == ["data/demo/incoming/date=2026-02-02"]
    assert est["realised_auc"] < production["holdout"]["ci_low"] - 0.05  # the shift bit
    assert abs(est["auc"] - est["realised_auc"]) <= 0.03
    decision = evaluate_triggers(TriggerParams(estimated_auc_margin=0.03), state)
    assert decision.check("estimated_auc_drop").fired
    # the same batch without labels: the estimate does not need them
    unlabelled = settings.incoming_dir / "date=2026-02-03" / "part-0.parquet"
    write_parquet_atomic(hard.drop(columns="target").reset_index(drop=True), unlabelled)
    state = gather_trigger_state(settings, cfg, select_sources(settings, cfg), is_scheduled=False)
    assert state.estimated_auc is not None and state.estimated_auc["realised_auc"] is None
    assert state.estimated_auc["auc"] == pytest.approx(est["auc"], abs=1e-9)
    assert evaluate_triggers(TriggerParams(estimated_auc_margin=0.03), state).should_retrain
    assert np.isfinite(state.estimated_auc["auc_ci_low"])


def test_drift_report_carries_the_estimate_beside_the_realised_auc(
    settings: Settings, production: dict[str, Any]
) -> None:
    from model.cycle.monitor import monitor_drift
    from model.data.demo import make_customers, write_parquet_atomic

    write_parquet_atomic(
        make_customers(3000, 42, drift=0.5, batch=1),
        settings.incoming_dir / "date=2026-02-01" / "part-0.parquet",
    )
    summary = monitor_drift(settings)
    report = json.loads(Path(summary["report_path"]).read_text())
    est = report["performance_estimate"]
    assert est["available"] and est["n_rows"] == 3000
    assert est["calibration"]["method"] == "isotonic" and est["calibration"]["n_rows"] >= 10_000
    assert est["realised"]["auc"] is not None and est["auc_ci_low"] <= est["auc"]
    assert est["reference"]["holdout_auc"] == pytest.approx(production["holdout"])
    assert est["reference"]["version"] == production["version"]
    md = Path(summary["reports"]["md"]).read_text()
    assert f"| ROC AUC | {est['auc']:.3f} [" in md and f"| {est['realised']['auc']:.3f} |" in md


def test_drift_monitor_flow_shows_the_estimate(
    prefect_harness: None, settings: Settings, production: dict[str, Any]
) -> None:
    from prefect.artifacts import Artifact

    from flows.drift_monitor import drift_monitor
    from model.data.demo import make_customers, write_parquet_atomic

    write_parquet_atomic(
        make_customers(3000, 42, batch=1),
        settings.incoming_dir / "date=2026-02-01" / "part-0.parquet",
    )
    summary = drift_monitor(emit=False)
    est = summary["performance_estimate"]
    assert est["available"] and abs(est["auc"] - est["realised"]["auc"]) <= 0.03
    markdown = str(getattr(Artifact.get("drift-report-demo"), "data", ""))
    assert "## Performance estimate (CBPE, no labels needed)" in markdown
    assert f"| ROC AUC | {est['auc']:.3f} [" in markdown


# --- the estimate held against the labels that came later (issue 23) ---


def _concept_drift(frame: Any, rng: np.random.Generator, share: float = 0.6) -> Any:
    """The same rows (so the same scores and the same estimate) with a share of their labels
    redrawn at random: P(y | x) changed, the realised AUC falls."""
    out = frame.copy()
    redraw = rng.random(len(out)) < share
    out.loc[redraw, "target"] = rng.integers(0, 2, int(redraw.sum()))
    return out


def test_labels_that_contradict_the_estimate_make_it_unreliable_and_the_trigger_use_them(
    settings: Settings, production: dict[str, Any]
) -> None:
    """A labelled batch whose P(y | x) changed: the estimate is checked once against its
    labels, the miss is recorded, the trigger decides on the realised AUC, and production's
    later estimates say they are unreliable until production changes."""
    from model.cycle import gather_trigger_state, select_sources
    from model.cycle.monitor import monitor_drift
    from model.data.demo import make_customers, write_parquet_atomic
    from model.live.estimates import estimate_miss
    from model.registry import ModelRegistry

    rng = np.random.default_rng(23)
    batch = settings.incoming_dir / "date=2026-03-01" / "part-0.parquet"
    write_parquet_atomic(_concept_drift(make_customers(4000, 42, batch=5), rng), batch)
    cfg = _config(0.03)
    state = gather_trigger_state(settings, cfg, select_sources(settings, cfg), is_scheduled=False)
    est = state.estimated_auc
    assert est is not None and est["reliable"] is False
    assert est["realised_auc"] < est["auc"] - 0.06  # the labels contradict the estimate
    (missed,) = state.estimates_missed
    assert (
        missed["check"]["missed"] is True
        and missed["check"]["realised_auc"] < missed["check"]["ci_low"]
    )
    assert missed["batches"] == ["date=2026-03-01"] and missed["version"] == production["version"]
    recorded = ModelRegistry(settings.models_dir).last_event("estimate_checked")
    assert recorded is not None and recorded["id"] == missed["id"] and recorded["k"] == 1
    check = evaluate_triggers(TriggerParams(estimated_auc_margin=0.03), state).check(
        "estimated_auc_drop"
    )
    assert check.fired and check.detail.startswith(f"realised AUC {est['realised_auc']:.3f}")
    # checked once: the same labels never test it again
    again = gather_trigger_state(settings, cfg, select_sources(settings, cfg), is_scheduled=False)
    assert again.estimates_missed == []
    registry = ModelRegistry(settings.models_dir)
    checks = [e for e in registry.history() if e["event"] == "estimate_checked"]
    assert len(checks) == 1
    assert estimate_miss(registry.history(), production["version"]) is not None
    # a later drift report on other data, without labels, says the estimate is unreliable
    later = settings.incoming_dir / "date=2026-03-02" / "part-0.parquet"
    write_parquet_atomic(make_customers(3000, 42, batch=6).drop(columns="target"), later)
    report = monitor_drift(settings, current=[later.parent])["performance_estimate"]
    assert report["reliable"] is False and "check" not in report
    assert "unreliable until production changes" in report["unreliable_because"]


def test_an_estimate_on_the_prediction_log_is_checked_once_when_its_labels_arrive(
    settings: Settings, production: dict[str, Any]
) -> None:
    import datetime as dt

    from prediction_log import write_log

    from model.cycle.estimate import check_pending_estimates, estimate_or_reason, record_estimate
    from model.data.demo import make_customers
    from model.live import labelled_log as log
    from model.registry import ModelRegistry

    version, model = production["version"], production["model"]
    rng = np.random.default_rng(29)
    rows = _concept_drift(make_customers(3000, 42, batch=7), rng)
    start = dt.datetime(2026, 4, 1, 8, tzinfo=dt.UTC)
    import pandas as pd

    pd_frame = pd.DataFrame(
        {
            log.REQUEST_TIME: start + pd.to_timedelta(np.linspace(0, 0.5, len(rows)), unit="D"),
            log.ID: rows["id"].to_numpy(),
            log.SERVED_VERSION: version,
            log.SERVED_SCORE: model.predict_proba(rows),
            log.ROLE: "production",
            log.SHADOW_VERSION: None,
            log.SHADOW_SCORE: np.nan,
            log.LABEL: np.nan,  # served without labels
        }
    )
    files = write_log(settings.root, settings.model_name, pd_frame)
    days = sorted({f.parent for f in files})
    est = estimate_or_reason(settings, version, model, rows.drop(columns="target"))
    recorded = record_estimate(settings, version, est, days)
    registry = ModelRegistry(settings.models_dir)
    assert recorded is not None
    assert [e for e in registry.history() if e["event"] == "estimated"] == [recorded]
    assert recorded["days"] == ["date=2026-04-01"] and recorded["source"] == "prediction-log"
    now = start + dt.timedelta(days=2)
    labelled = pd_frame.assign(**{log.LABEL: rows["target"].to_numpy(float)})
    # 1,500 labelled rows: not yet enough to check (2,000)
    few = log.labelled_rows(labelled.iloc[:1500], as_of=now)
    assert check_pending_estimates(settings, few, now=now) == []
    (checked,) = check_pending_estimates(settings, log.labelled_rows(labelled, as_of=now), now=now)
    assert checked["estimate"] == recorded["id"] and checked["missed"] is True
    assert checked["check"]["n_rows"] == 3000
    assert checked["check"]["realised_auc"] < checked["check"]["ci_low"]
    assert checked["k"] == 1 and checked["check"]["alpha"] == pytest.approx(0.05 * 6 / np.pi**2)
    # once: a later look finds nothing pending
    assert check_pending_estimates(settings, log.labelled_rows(labelled, as_of=now), now=now) == []
    # a later estimate on the same day and a new one is checked on the new day's rows only,
    # at the level of the second check
    later = pd_frame.assign(
        **{log.REQUEST_TIME: pd_frame[log.REQUEST_TIME] + pd.Timedelta(days=1)},
        **{log.ID: pd_frame[log.ID] + 10**6},
    )
    files2 = write_log(settings.root, settings.model_name, later)
    both_days = sorted({f.parent for f in [*files, *files2]})
    assert record_estimate(settings, version, est, both_days) is not None
    labelled2 = later.assign(**{log.LABEL: rows["target"].to_numpy(float)})
    all_rows = log.labelled_rows(pd.concat([labelled, labelled2]), as_of=now + pd.Timedelta(days=1))
    (second,) = check_pending_estimates(settings, all_rows, now=now)
    assert second["days"] == ["date=2026-04-02"] and second["k"] == 2
    assert second["check"]["n_rows"] == 3000  # the new day's rows, not the first day's again
