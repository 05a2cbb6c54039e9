"""The backtest replays the real cycle in simulated time.

- A replay of 4 monthly batches against the same 4 cycles run by hand, as an operator would
  (the service's model set scores the batch, its labels are joined, it lands in incoming/, the
  live flows look, the drift monitor runs, then the retraining flow on its report): the same
  decisions, versions, model bytes, AUCs and history.
- Simulated time: a 24 h cooldown holds back the retrain of the next day's batch, not of the
  next week's (with the wall clock, every cycle after the first would be held back: they all
  run within minutes).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fakes import FAST_BACKTEST_POLICY
from sklearn.metrics import roc_auc_score

from flows.backtest import backtest
from flows.challenger_evaluation import challenger_evaluation
from flows.drift_monitor import drift_monitor
from flows.post_promotion_watch import post_promotion_watch
from flows.retraining import retraining
from model import clock
from model.artifact import load_model
from model.backtest.timeline import Timeline
from model.data.demo import DEMO_TIME, make_customers, make_timeline
from model.registry import ModelRegistry
from model.serving.log import LABEL, PredictionLog, log_folder
from model.serving.models import ModelHolder
from model.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def fast_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "retraining.toml"
    path.write_text(FAST_BACKTEST_POLICY)
    monkeypatch.setenv("RETRAIN_CONFIG", str(path))
    return path


def _serve_by_hand(settings: Settings, batch_path: str) -> float:
    """The scoring service's model set scores the whole batch in one request, logged now."""
    holder = ModelHolder(settings.models_dir, shadow="watch")
    holder.refresh()
    models = holder.current
    assert models is not None
    enc = models.production.encoder
    log = PredictionLog(
        log_folder(settings.predictions_dir, "demo"), enc.id_column, enc.numeric, enc.categorical
    )
    table = pa.Table.from_pandas(pd.read_parquet(batch_path), preserve_index=False)
    scored = models.score(enc.from_table(table), table)
    log.append(scored, when=clock.now().timestamp())
    log.flush()
    return float(roc_auc_score(table.column("target").to_numpy(), scored.scores))


def _labels_by_hand(settings: Settings, batch_path: str, name: str) -> None:
    frame = pd.read_parquet(batch_path)
    labels = pd.DataFrame({"id": frame["id"].astype(str), LABEL: frame["target"]})
    folder = log_folder(settings.predictions_dir, "demo") / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    labels.to_parquet(folder / f"labels-{name}.parquet", index=False)


def _decisions(history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("event", "version", "baseline", "decision", "previous", "alpha_spent")
    return [tuple(ev.get(k) for k in keys) for ev in history]


def test_replay_equals_the_same_cycles_run_by_hand(
    prefect_harness: None,
    settings: Settings,
    fast_policy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = tmp_path / "history.parquet"
    make_timeline(
        4, base_months=3, base_rows=3_000, rows_per_month=1_200, drift=0.8, drift_from_month=3
    ).to_parquet(history)
    result = backtest(
        data_path=str(history),
        start="2024-01-01",
        period="month",
        time_column=DEMO_TIME,
        baselines=["configured"],
        keep_scratch=True,
        out_dir=str(tmp_path / "report"),
    )
    assert json.loads((tmp_path / "report" / "backtest.json").read_text())["policies"]
    replay = result["policies"][0]
    timeline = Timeline.from_dict(result["timeline"])
    assert len(timeline.batches) == 4

    # The same cycles by hand, in another working root, through the deployed flows.
    hand = Settings(home=tmp_path / "hand", model_name="demo")
    monkeypatch.setenv("RETRAIN_HOME", str(hand.home))
    hand.raw_data_path.parent.mkdir(parents=True)
    shutil.copyfile(timeline.base_path, hand.raw_data_path)
    with clock.at(timeline.start_time + dt.timedelta(seconds=1)):
        first = retraining()
        ended = clock.now()
    assert first.candidate_version == replay["first"]["candidate"] == "v0001"
    for batch, step in zip(timeline.batches, replay["steps"], strict=True):
        with clock.at(max(batch.start_time, ended)):
            auc = _serve_by_hand(hand, batch.path)
        with clock.at(batch.arrival_time):
            _labels_by_hand(hand, batch.path, batch.name)
            (hand.incoming_dir / batch.name).mkdir(parents=True)
            shutil.copyfile(batch.path, hand.incoming_dir / batch.name / "part-0.parquet")
            looks = [challenger_evaluation(), post_promotion_watch()]  # the daily live flows
            drift = drift_monitor(emit=False)
        with clock.at(batch.arrival_time + dt.timedelta(seconds=1)):  # then the cycle
            cycle = retraining(
                drift_report_path=None if drift.get("blocked") else drift.get("report_path")
            )
            ended = clock.now()
        assert step["auc"] == pytest.approx(auc, abs=1e-12), batch.name
        production = load_model(hand.models_dir / "versions" / step["served"]["production"])
        frame = pd.read_parquet(batch.path)
        reference = roc_auc_score(frame["target"], production.predict_proba(frame))
        assert step["auc"] == pytest.approx(reference, abs=1e-6)  # sklearn on load_model
        assert step["drift"]["dataset_drift"] == drift.get("dataset_drift")
        assert (step["cycle"]["status"], step["cycle"]["candidate"]) == (
            cycle.status,
            cycle.candidate_version,
        ), batch.name
        assert step["cycle"]["production"] == cycle.production_version
        for kind, look in zip(("challenger", "watch"), looks, strict=True):
            mine = step["live"].get(kind)
            if look["status"] == "looked":
                assert mine is not None and mine["decision"] == look["decision"]
            else:
                assert mine is None or mine["status"] != "looked"

    scratch = Settings(home=Path(replay["scratch"]), model_name="demo")
    mine, theirs = ModelRegistry(scratch.models_dir), ModelRegistry(hand.models_dir)
    assert _decisions(mine.history()) == _decisions(theirs.history())
    assert mine.version_names() == theirs.version_names() and len(mine.version_names()) >= 3
    for version in mine.version_names():
        assert mine.metadata(version)["sha256"] == theirs.metadata(version)["sha256"], version
    statuses = [s["cycle"]["status"] for s in replay["steps"]]
    assert {"promoted", "rejected", "inconclusive"} & set(statuses), statuses


def _dated(start: str, days: int, rows_per_day: int, first_batch: int) -> pd.DataFrame:
    """Demo customers with a ``when`` column: ``rows_per_day`` rows on each of ``days`` days."""
    parts = []
    for k in range(days):
        day = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=k)
        part = make_customers(rows_per_day, seed=3, batch=first_batch + k)
        offsets = np.sort(np.random.default_rng(k).integers(0, 86_400, rows_per_day))
        part.insert(1, "when", day + pd.to_timedelta(offsets, unit="s"))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _statuses(result: dict[str, Any]) -> list[tuple[str, str]]:
    steps = result["policies"][0]["steps"]
    return [(s["cycle"]["status"], " ".join(s["cycle"]["reasons"])) for s in steps]


def test_a_24h_cooldown_holds_back_daily_batches_not_weekly_ones(
    prefect_harness: None, settings: Settings, fast_policy: Path, tmp_path: Path
) -> None:
    def every_batch(history: pd.DataFrame, start: str, period: str) -> dict[str, Any]:
        """Replay with the volume trigger firing on every new batch (its scratch root kept)."""
        path = tmp_path / f"{period}.parquet"
        history.to_parquet(path)
        return backtest(
            data_path=str(path),
            start=start,
            period=period,  # type: ignore[arg-type]
            time_column="when",
            baselines=[],
            variants=["min_new_samples=1"],
            keep_scratch=True,
        )

    by_day = every_batch(_dated("2024-01-01", 17, 150, 100), "2024-01-15", "day")  # 3 days
    by_week = every_batch(_dated("2023-12-18", 35, 60, 200), "2024-01-01", "week")  # 3 weeks
    days, weeks = _statuses(by_day), _statuses(by_week)
    assert [len(days), len(weeks)] == [3, 3]
    trained = ("promoted", "rejected", "inconclusive")
    # Daily: a cycle 24 h after the last training (minus the seconds that training took) is
    # within the cooldown; 48 h after, it is not.
    assert days[0][0] == "skipped" and "cooldown" in days[0][1], days
    assert days[1][0] in trained, days
    assert days[2][0] == "skipped" and "cooldown" in days[2][1], days
    assert all(status in trained for status, _ in weeks), weeks
    scratch = Settings(home=Path(by_day["policies"][0]["scratch"]), model_name="demo")
    gaps, last = [], None
    for ev in ModelRegistry(scratch.models_dir).history():
        if ev["event"] == "registered":
            last = pd.Timestamp(ev["time"])
        elif ev["event"] == "skipped":  # its cooldown: hours since the last training, simulated
            assert last is not None and "cooldown" in " ".join(ev["reasons"])
            gaps.append((ev["time"][:10], (pd.Timestamp(ev["time"]) - last) / pd.Timedelta("1h")))
    assert [day for day, _ in gaps] == ["2024-01-16", "2024-01-18"]
    assert all(23.99 < hours < 24.0 for _, hours in gaps), gaps  # a day apart, not seconds


def test_bad_history_is_one_line_before_any_cycle(
    prefect_harness: None,
    settings: Settings,
    fast_policy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model.cli import main

    history = tmp_path / "history.csv"
    pd.DataFrame({"when": ["2024-01-01", "2024-02-30"], "target": [0, 1]}).to_csv(history)
    args = ["backtest", "--data", str(history), "--start", "2024-01-15", "--verbose"]
    assert main([*args, "--time-column", "time"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "no time column 'time'" in err, err
    assert main([*args, "--time-column", "when"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'2024-02-30'" in err and "row 1" in err, err
    assert not list(settings.backtests_dir.glob("*/homes"))  # no policy started


def test_policies_on_dask_give_what_they_give_one_after_another(
    prefect_harness: None, settings: Settings, fast_policy: Path, tmp_path: Path
) -> None:
    """Two policies on a LocalCluster of 2 workers: the same steps as in this process, and the
    candidates both would train identically trained once (the training cache)."""
    history = tmp_path / "history.parquet"
    make_timeline(
        2, base_months=2, base_rows=2_000, rows_per_month=1_000, drift_from_month=2
    ).to_parquet(history)

    def replay(workers: int) -> dict[str, Any]:
        return backtest(
            data_path=str(history),
            start="2024-01-01",
            time_column=DEMO_TIME,
            baselines=["configured", "always"],
            workers=workers,
        )

    alone, parallel = replay(1), replay(2)
    assert parallel["compute"]["workers"] == 2

    def steps(result: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (
                p["name"],
                s["batch"],
                s["auc"],
                (s["cycle"] or {}).get("status"),
                (s["cycle"] or {}).get("candidate"),
                s["served"]["production"],
            )
            for p in result["policies"]
            for s in p["steps"]
        ]

    assert steps(parallel) == steps(alone)
    trained = sum(1 + p["summary"]["trainings"] for p in parallel["policies"])
    assert parallel["compute"]["trainings_run"] + parallel["compute"]["trainings_reused"] == trained
    assert parallel["compute"]["trainings_reused"] >= 1  # at least the first model, once
