"""The live tests on a real registry and a prediction log in the adapter's format: the
challenger evaluation (promote, reject, keep collecting, at the full alpha) and the
post-promotion watch (roll back, end on a manual change, close its window)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import make_model
from prediction_log import shadow_rows, write_log

from model.errors import DataValidationError, ParameterError
from model.live import labelled_log as log
from model.live.challenger import apply_evaluation, evaluate_challenger
from model.live.outcome import LiveSettings, labelled
from model.live.watch import apply_watch, check_watch, current_watch
from model.registry import ModelRegistry

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _registry(tmp_path: Path, n: int = 2) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "models")
    for i in range(n):
        reg.register(make_model(tmp_path / f"m{i}", seed=i))
    reg.promote("v0001", "first")
    return reg


def _rows(rng: np.random.Generator, parts: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat(parts, ignore_index=True)
    return log.labelled_rows(frame, as_of=T0 + dt.timedelta(days=400))


def _daily(rng, days, per_day, served, shadow, start=T0):  # type: ignore[no-untyped-def]
    return [
        shadow_rows(rng, per_day, served, shadow, start + dt.timedelta(days=d), first_id=d * 10**6)
        for d in range(days)
    ]


def test_better_challenger_is_promoted_with_the_evaluation_as_reason(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.set_challenger("v0002", 100)
    rng = np.random.default_rng(1)
    cfg = LiveSettings(n_max=3000)
    chunks = _daily(rng, 10, 300, ("v0001", 0.75), ("v0002", 0.85))
    for day in range(1, 11):
        outcome = evaluate_challenger(reg, _rows(rng, chunks[:day]), cfg)
        apply_evaluation(reg, outcome, run_id="run-1")
        if outcome.decision == "PROMOTE":
            break
    assert outcome.decision == "PROMOTE"
    prod = reg.production()
    assert prod is not None and prod.version == "v0002"
    evaluated = [e for e in reg.history() if e["event"] == "challenger_evaluated"]
    assert len(evaluated) == day and len({e["evaluation"] for e in evaluated}) == 1
    # live labels are fresh rows: the evaluation tests at the full alpha, whatever came before
    assert evaluated[-1]["alpha_total"] == pytest.approx(0.05)
    assert 0 < evaluated[-1]["alpha_spent"] <= 0.05
    promoted = reg.last_event("promoted")
    assert promoted is not None and promoted["comparison"]["evaluation"] == outcome.test_id
    assert "challenger evaluation on live labels" in promoted["reason"]
    assert reg.challenger() is None


def test_worse_challenger_is_rejected_and_cleared(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.set_challenger("v0002", 100)
    rng = np.random.default_rng(2)
    rows = _rows(rng, _daily(rng, 3, 1000, ("v0001", 0.85), ("v0002", 0.75)))
    outcome = evaluate_challenger(reg, rows, LiveSettings(n_max=5000))
    apply_evaluation(reg, outcome)
    assert outcome.decision == "REJECT"
    assert reg.challenger() is None
    prod = reg.production()
    assert prod is not None and prod.version == "v0001"


def test_inconclusive_continues_the_same_evaluation_and_waits_without_new_rows(
    tmp_path: Path,
) -> None:
    reg = _registry(tmp_path)
    reg.set_challenger("v0002", 100)
    rng = np.random.default_rng(3)
    chunks = _daily(rng, 3, 200, ("v0001", 0.80), ("v0002", 0.80))
    cfg = LiveSettings(n_max=5000)
    first = evaluate_challenger(reg, _rows(rng, chunks[:1]), cfg)  # 80 positives: too few
    apply_evaluation(reg, first)
    assert first.decision == "INCONCLUSIVE" and first.alpha_spent == 0.0
    assert first.look is not None and first.look["rows_still_needed"] > 0
    second = evaluate_challenger(reg, _rows(rng, chunks[:3]), cfg)
    apply_evaluation(reg, second)
    assert second.test_id == first.test_id and second.decision == "INCONCLUSIVE"
    assert 0 < second.alpha_spent < 0.05
    assert second.state is not None and len(second.state["looks"]) == 2
    again = evaluate_challenger(reg, _rows(rng, chunks[:3]), cfg)
    assert again.status == "waiting" and "no new labelled rows" in again.reasons[0]
    assert apply_evaluation(reg, again) is None
    assert len([e for e in reg.history() if e["event"] == "challenger_evaluated"]) == 2


def test_routed_mode_uses_one_row_per_entity(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.set_challenger("v0002", 50)
    rng = np.random.default_rng(4)
    a = shadow_rows(rng, 1500, ("v0001", 0.8), None, T0)
    b = shadow_rows(rng, 1500, ("v0002", 0.8), None, T0, role="challenger", first_id=10**6)
    repeat = a.iloc[:500].copy()  # the same customers again: not independent rows
    repeat[log.REQUEST_TIME] = repeat[log.REQUEST_TIME] + pd.Timedelta(days=1)
    rows = _rows(rng, [a, b, repeat])
    served = log.routed_rows(rows, "v0001", "v0002")
    assert len(served) == 3000
    outcome = evaluate_challenger(reg, rows, LiveSettings(mode="routed"))
    assert outcome.look is not None and outcome.look["n"] == 3000
    assert outcome.mode == "routed"


def test_no_challenger_or_production_is_skipped(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    out = evaluate_challenger(reg, pd.DataFrame(), LiveSettings())
    assert out.status == "skipped" and "no challenger" in out.reasons[0]


# ---------------------------------------------------------------------------- watch


def test_watch_rolls_back_a_worse_new_production(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.promote("v0002", "deliberately worse", force=True)
    started = pd.Timestamp(reg.history()[-1]["time"]).to_pydatetime()
    rng = np.random.default_rng(5)
    chunks = _daily(rng, 5, 600, ("v0002", 0.72), ("v0001", 0.82), start=started)
    for day in range(1, 6):
        outcome = check_watch(reg, _rows(rng, chunks[:day]), LiveSettings(), started)
        restored = apply_watch(reg, outcome)
        if restored:
            break
    assert restored == "v0001" and outcome.decision == "ROLLBACK"
    prod = reg.production()
    assert prod is not None and prod.version == "v0001"
    kinds = [e["event"] for e in reg.history() if e["event"] != "registered"]
    assert kinds[-day - 2 :] == ["forced", *["watch_checked"] * day, "rolled_back"]
    rolled = reg.last_event("rolled_back")
    assert rolled is not None and "post-promotion watch" in rolled["reason"]
    # a rollback ends the watch
    assert current_watch(reg.history())[0] is None


def test_manual_promotion_or_rollback_ends_the_watch(tmp_path: Path) -> None:
    reg = _registry(tmp_path, n=3)
    reg.promote("v0002", "manual", force=True)
    watch, _ = current_watch(reg.history())
    assert watch is not None and (watch.new, watch.previous) == ("v0002", "v0001")
    reg.promote("v0003", "another", force=True)
    watch, _ = current_watch(reg.history())
    assert watch is not None and (watch.new, watch.previous) == ("v0003", "v0002")
    reg.rollback()
    assert current_watch(reg.history())[0] is None
    out = check_watch(reg, pd.DataFrame(), LiveSettings(), T0)
    assert out.status == "skipped" and "rollback" in out.reasons[0]


def test_the_watch_and_the_service_agree_on_the_maximum_age() -> None:
    from model.serving.models import DEFAULT_WATCH_MAX_DAYS

    assert LiveSettings().watch_max_days == DEFAULT_WATCH_MAX_DAYS == 60.0


def test_watch_at_its_maximum_age_keeps_an_equal_new_production(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.promote("v0002", "manual", force=True)
    started = pd.Timestamp(reg.history()[-1]["time"]).to_pydatetime()
    rng = np.random.default_rng(6)
    rows = _rows(rng, _daily(rng, 2, 500, ("v0002", 0.8), ("v0001", 0.8), start=started))
    cfg = LiveSettings(watch_max_days=14)
    first = check_watch(reg, rows, cfg, started + dt.timedelta(days=3))
    apply_watch(reg, first)
    assert first.decision == "INCONCLUSIVE"
    last = check_watch(reg, rows, cfg, started + dt.timedelta(days=15))  # past its max age
    apply_watch(reg, last)
    assert last.decision == "KEEP" and last.alpha_spent == pytest.approx(cfg.watch_alpha)
    ended = check_watch(reg, rows, cfg, started + dt.timedelta(days=16))
    assert ended.status == "ended" and ended.decision == "KEEP"
    prod = reg.production()
    assert prod is not None and prod.version == "v0002"


# ---------------------------------------------------------------------------- input


def test_the_log_is_read_from_its_files_and_bad_input_is_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = shadow_rows(rng, 200, ("v0001", 0.8), ("v0002", 0.8), T0, days=3)
    rows.loc[rows.index[:20], log.LABEL] = np.nan  # not labelled yet
    files = write_log(tmp_path, "demo", rows)
    assert len(files) == 3
    got = labelled(tmp_path, "demo", T0 + dt.timedelta(days=10), 0)
    assert len(got) == 180
    late = labelled(tmp_path, "demo", T0 + dt.timedelta(days=2), 0)  # label window open
    assert len(late) < 180
    bad = rows.copy()
    bad[log.LABEL] = 2.0
    write_log(tmp_path / "bad", "demo", bad)
    with pytest.raises(DataValidationError, match=f"'{log.LABEL}' must be 0 or 1"):
        labelled(tmp_path / "bad", "demo", T0 + dt.timedelta(days=10), 0)
    write_log(tmp_path / "cols", "demo", rows.drop(columns=[log.SHADOW_SCORE]))
    with pytest.raises(DataValidationError, match=r"lacks column.*shadow_score"):
        labelled(tmp_path / "cols", "demo", T0 + dt.timedelta(days=10), 0)
    assert labelled(tmp_path / "none", "demo", T0, 0).empty


def test_bad_settings_are_refused_in_one_line() -> None:
    with pytest.raises(ParameterError, match="watch_margin"):
        LiveSettings(watch_margin=-0.1)
    with pytest.raises(ParameterError, match="mode must be shadow or routed"):
        LiveSettings(mode="split")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- issue 23 review


def test_a_live_promotion_holds_the_guardrails_on_the_paired_rows(tmp_path: Path) -> None:
    """A challenger clearly better in AUC whose scores are badly calibrated (cubed: the same
    ranking, a much worse log loss) is not promoted on live labels: the calibration guardrail
    is held on the same rows, as the offline gate would hold it."""
    reg = _registry(tmp_path)
    reg.set_challenger("v0002", 0, reason="INCONCLUSIVE offline")
    rng = np.random.default_rng(31)
    rows = _rows(rng, _daily(rng, 3, 2000, ("v0001", 0.75), ("v0002", 0.85)))
    cubed = rows.assign(**{log.SHADOW_SCORE: rows[log.SHADOW_SCORE] ** 3})
    outcome = evaluate_challenger(reg, cubed, LiveSettings(n_max=5000))
    assert outcome.decision == "REJECT", outcome.reasons
    assert "a guardrail on the live rows" in outcome.reasons[0]
    kinds = {g["kind"]: g["status"] for g in outcome.guardrails}
    assert kinds == {"calibration": "breached"}
    apply_evaluation(reg, outcome)
    prod = reg.production()
    assert prod is not None and prod.version == "v0001" and reg.challenger() is None
    # the same challenger, calibrated: promoted, its guardrail recorded as shown
    reg.set_challenger("v0002", 0)
    fine = evaluate_challenger(reg, rows, LiveSettings(n_max=5000))
    assert fine.decision == "PROMOTE" and [g["status"] for g in fine.guardrails] == ["ok"]


def test_one_paired_row_per_entity_and_the_batches_its_labels_reached(tmp_path: Path) -> None:
    rng = np.random.default_rng(32)
    rows = shadow_rows(rng, 400, ("v0001", 0.8), ("v0002", 0.85), T0)
    twice = pd.concat(
        [rows, rows.assign(**{log.REQUEST_TIME: rows[log.REQUEST_TIME] + pd.Timedelta(days=1)})]
    )
    labelled = log.labelled_rows(twice, as_of=T0 + dt.timedelta(days=30))
    pairs = log.paired_rows(labelled, "v0001", "v0002")
    assert len(pairs) == 400 and pairs[log.ID].is_unique  # each entity once: its first request
    assert (pairs[log.REQUEST_TIME] < T0 + dt.timedelta(days=1)).all()
    # labels joined from a labels file say which one; its incoming batch is named
    incoming = tmp_path / "incoming"
    (incoming / "date=2026-11-02").mkdir(parents=True)
    (incoming / "date=2026-11-02" / "labels-abc.parquet").write_bytes(b"")
    pairs[log.LABELS_FILE] = "labels-abc.parquet"
    assert log.labelled_batches(pairs, incoming) == ["date=2026-11-02"]
    assert log.labelled_batches(pairs.drop(columns=log.LABELS_FILE), incoming) == []


def test_a_challenger_the_flow_set_is_cleared_when_production_changes(tmp_path: Path) -> None:
    from model.live.challenger import INCONCLUSIVE_SOURCE, clear_stale

    reg = _registry(tmp_path, n=3)
    reg.set_challenger("v0002", 0, reason="by hand")
    assert reg.challenger_source() is None
    assert clear_stale(reg, "production changed") is None  # a person's challenger stays
    reg.set_challenger("v0002", 0, reason="INCONCLUSIVE", source=INCONCLUSIVE_SOURCE)
    assert reg.challenger_source() == INCONCLUSIVE_SOURCE
    reg.promote("v0003", "offline", force=True)
    assert clear_stale(reg, "production changed to v0003") == "v0002"
    assert reg.challenger() is None
    assert reg.history()[-1]["reason"] == "production changed to v0003"


def test_the_watch_ends_at_watch_rows_long_before_its_maximum_age(tmp_path: Path) -> None:
    """Labels at a high rate: the watch ends by evidence (KEEP at ``watch_rows``) on day 2 of
    60, and the service's shadow of the previous production ends with it."""
    from model.serving.models import watched_previous

    reg = _registry(tmp_path)
    reg.promote("v0002", "manual", force=True)
    started = pd.Timestamp(reg.history()[-1]["time"]).to_pydatetime()
    rng = np.random.default_rng(33)
    chunks = _daily(rng, 3, 1500, ("v0002", 0.8), ("v0001", 0.8), start=started)
    cfg = LiveSettings(watch_rows=2500)  # watch_max_days stays 60
    first = check_watch(reg, _rows(rng, chunks[:1]), cfg, started + dt.timedelta(days=1))
    apply_watch(reg, first)
    assert first.decision == "INCONCLUSIVE"
    second = check_watch(reg, _rows(rng, chunks[:2]), cfg, started + dt.timedelta(days=2))
    apply_watch(reg, second)
    assert second.decision == "KEEP" and second.look is not None and second.look["n"] >= 2500
    assert "n_max reached" in second.reasons[0] or "watch over" in second.reasons[0]
    assert check_watch(reg, _rows(rng, chunks), cfg, started + dt.timedelta(days=3)).status == (
        "ended"
    )
    now = started + dt.timedelta(days=3)
    assert watched_previous(reg.history(), "v0002", now, 60.0) is None  # the shadow ends too
