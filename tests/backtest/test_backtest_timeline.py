"""Dated history cut into the start window and one batch per period (model.backtest.timeline),
checked against a plain pandas reference; every bad input is one line naming what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.backtest.timeline import (
    TIME_FIELD,
    Timeline,
    next_period,
    period_start,
    write_timeline,
)
from model.data.demo import DEMO_TIME, make_timeline
from model.errors import DataValidationError


def _history(tmp_path: Path, days: int = 70, rows_per_day: int = 5) -> Path:
    rng = np.random.default_rng(3)
    n = days * rows_per_day
    times = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, days * 86_400, n), unit="s"
    )
    frame = pd.DataFrame(
        {"id": np.arange(n), "x": rng.normal(size=n), "when": times, "y": rng.integers(0, 2, n)}
    )
    path = tmp_path / "history.parquet"
    frame.to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("period", "t", "start", "after"),
    [
        ("day", "2024-03-05T17:00Z", "2024-03-05", "2024-03-06"),
        ("week", "2024-03-07T01:00Z", "2024-03-04", "2024-03-11"),  # a Thursday: Monday's week
        ("month", "2024-02-29T23:59Z", "2024-02-01", "2024-03-01"),
        ("year", "2024-07-01T00:00Z", "2024-01-01", "2025-01-01"),
    ],
)
def test_periods(period: str, t: str, start: str, after: str) -> None:
    begins = period_start(pd.Timestamp(t), period)
    assert begins == pd.Timestamp(start, tz="UTC")
    assert next_period(begins, period) == pd.Timestamp(after, tz="UTC")


def test_weekly_batches_match_a_pandas_reference(tmp_path: Path) -> None:
    source = _history(tmp_path)
    out = tmp_path / "bt"
    timeline = write_timeline(
        source, out, start="2024-01-15", period="week", target_column="y", time_column="when"
    )
    frame = pd.read_parquet(source)
    assert timeline.base_rows == int((frame["when"] < "2024-01-15").sum())
    later = frame[frame["when"] >= "2024-01-15"]
    weeks = later["when"].dt.tz_convert("UTC").dt.normalize()
    weeks = weeks - pd.to_timedelta(weeks.dt.day_of_week, unit="D")
    expected = later.groupby(weeks)["y"].agg(["size", "sum"])
    assert [b.name for b in timeline.batches] == [
        f"date={d.date().isoformat()}" for d in expected.index
    ]
    assert [b.rows for b in timeline.batches] == expected["size"].tolist()
    assert [b.positives for b in timeline.batches] == expected["sum"].tolist()
    for b in timeline.batches:
        rows = pd.read_parquet(b.path)
        times = pd.read_parquet(b.times_path)[TIME_FIELD]
        assert "when" not in rows.columns  # the time is the partition's, never a feature
        assert len(times) == len(rows) == b.rows
        assert times.is_monotonic_increasing
        assert (times >= pd.Timestamp(b.starts)).all() and (times < pd.Timestamp(b.arrives)).all()
        assert pd.Timestamp(b.arrives) - pd.Timestamp(b.name[5:], tz="UTC") == pd.Timedelta("7D")
        assert b.path.endswith(f"batches/{b.name}/part-0.parquet")
    assert Timeline.from_dict(timeline.to_dict()) == timeline


def test_a_folder_of_dated_batches_uses_the_partition_date(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    for day, n in (("2024-01-01", 30), ("2024-01-02", 20), ("2024-01-09", 10)):
        part = folder / f"date={day}" / "part-0.parquet"
        part.parent.mkdir(parents=True)
        pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.arange(n) % 2}).to_parquet(part)
    timeline = write_timeline(
        folder, tmp_path / "bt", start="2024-01-02", period="day", target_column="y"
    )
    assert timeline.time_column == "date"
    assert timeline.base_rows == 30
    assert [(b.name, b.rows) for b in timeline.batches] == [
        ("date=2024-01-02", 20),
        ("date=2024-01-09", 10),  # the empty days between have no batch
    ]
    assert timeline.batches[0].arrives.startswith("2024-01-03")


def test_demo_timeline_has_twelve_monthly_batches_with_drift_from_june(tmp_path: Path) -> None:
    frame = make_timeline()
    path = tmp_path / "demo.parquet"
    frame.to_parquet(path)
    timeline = write_timeline(
        path,
        tmp_path / "bt",
        start="2024-01-01",
        period="month",
        target_column="target",
        time_column=DEMO_TIME,
    )
    assert timeline.base_rows == 10_000
    assert len(timeline.batches) == 12 and {b.rows for b in timeline.batches} == {2_000}
    assert timeline.batches[-1].arrives.startswith("2025-01-01")
    income = [pd.read_parquet(b.path)["income"].mean() for b in timeline.batches]
    assert max(income[:5]) < 67_000 < 72_000 < min(income[5:])  # +16000*0.7 from June on


def _error(tmp_path: Path, **kwargs: object) -> str:
    args = {"start": "2024-01-15", "period": "week", "target_column": "y", "time_column": "when"}
    args.update(kwargs)
    source = args.pop("source", None) or _history(tmp_path)
    with pytest.raises(DataValidationError) as info:
        write_timeline(source, tmp_path / "bt", **args)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_input_is_one_line_naming_what(tmp_path: Path) -> None:
    assert "no time column 'time'" in _error(tmp_path, time_column="time")
    assert "--time-column" in _error(tmp_path, time_column=None)
    assert "no rows before the start 2023-01-01" in _error(tmp_path, start="2023-01-01")
    assert "no rows from the start 2025-01-01" in _error(tmp_path, start="2025-01-01")
    assert "period 'fortnight'" in _error(tmp_path, period="fortnight")
    assert "start 'soon' is not a date" in _error(tmp_path, start="soon")
    assert "no target column 'label'" in _error(tmp_path, target_column="label")
    assert "end 2024-01-10 is not after the start" in _error(tmp_path, end="2024-01-10")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"when": ["2024-01-01", "yesterday"], "y": [0, 1]}).to_csv(bad, index=False)
    message = _error(tmp_path, source=bad)
    assert "time column 'when'" in message and "'yesterday'" in message and "row 1" in message


def test_the_start_cuts_a_first_period(tmp_path: Path) -> None:
    """A start inside a period: that period's batch is served from the start, not before."""
    source = _history(tmp_path)
    timeline = write_timeline(
        source,
        tmp_path / "bt",
        start="2024-01-17",
        period="week",
        target_column="y",
        time_column="when",
    )
    first = timeline.batches[0]
    assert first.name == "date=2024-01-15"
    assert dt.datetime.fromisoformat(first.starts) == dt.datetime(2024, 1, 17, tzinfo=dt.UTC)
