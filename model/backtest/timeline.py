"""Dated history cut into what a backtest replays: the start window (the first production
model's data) and one batch per period after it.

A data set with a time column (a Parquet file, folder or CSV), or a folder of dated batches
(``date=YYYY-MM-DD`` partitions: the partition date is each row's time), is cut at ``start``:
rows before it are the base data, rows from it on go to the batch of their period (``day``,
``week`` from Monday, ``month`` or ``year``, in UTC). A batch's rows arrive during its period;
it *arrives* (its labels are in, its cycle runs) when the period ends. Periods without rows
have no batch. The batches are written as the incoming folder the cycle reads
(``batches/date=<period start>/part-0.parquet``), ordered by time and without the time column
(time is the partition's, never a feature); each row's time is kept beside them
(``times/date=<period start>.parquet``), for when the scoring service served it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.data import encode_target, read_table
from model.data.demo import write_parquet_atomic
from model.data.messages import quote
from model.errors import DataValidationError

PERIODS = ("day", "week", "month", "year")
PARTITION_TIME = "date"
"""The time column of a folder of ``date=YYYY-MM-DD`` batches (its partition column)."""
BASE_FILE = "base.parquet"
TIME_FIELD = "time"
"""The column of a batch's times file."""
MAX_BATCHES = 1_000


def period_start(t: pd.Timestamp, period: str) -> pd.Timestamp:
    """The first instant (UTC) of the period that holds ``t``."""
    day = t.tz_convert("UTC").normalize()
    if period == "day":
        return day
    if period == "week":
        return day - pd.Timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    raise DataValidationError(f"period {quote(period)}: use one of {', '.join(PERIODS)}")


def next_period(t: pd.Timestamp, period: str) -> pd.Timestamp:
    """The first instant of the period after the one that starts at ``t``."""
    if period == "day":
        return t + pd.Timedelta(days=1)
    if period == "week":
        return t + pd.Timedelta(days=7)
    if period == "month":
        return t + pd.DateOffset(months=1)
    return t + pd.DateOffset(years=1)


@dataclass(frozen=True)
class Batch:
    """One period's rows: written at ``path``, served from ``starts``, in at ``arrives``."""

    name: str  # "date=YYYY-MM-DD": the partition the cycle sees (its period's first day)
    starts: str  # ISO 8601 UTC
    arrives: str
    rows: int
    positives: int
    path: str  # the batch as it lands in incoming/ (no time column)
    times_path: str  # each row's time, in the batch's row order (when it is served)

    @property
    def start_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.starts)

    @property
    def arrival_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.arrives)


@dataclass
class Timeline:
    """The start window and the batches of one backtest, as written under a folder."""

    source: str
    time_column: str
    period: str
    start: str  # ISO 8601 UTC: the end of the start window, when the first model is trained
    base_path: str
    base_rows: int
    target_column: str
    batches: list[Batch] = field(default_factory=list)

    @property
    def start_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.start)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        batches = [Batch(**b) for b in data.get("batches") or []]
        return cls(**{**data, "batches": batches})


def parse_instant(value: str | dt.date | dt.datetime, what: str) -> pd.Timestamp:
    """A date or time given by the user, as a UTC timestamp (a naive one is UTC)."""
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataValidationError(
            f"{what} {quote(value)} is not a date (YYYY-MM-DD) or time (ISO 8601)"
        ) from None
    if pd.isna(t):
        raise DataValidationError(f"{what} {quote(value)} is not a date")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def read_dated(path: str | Path, time_column: str | None) -> tuple[pd.DataFrame, pd.Series, str]:
    """The rows of ``path``, each row's time (UTC) and the time column's name: ``time_column``,
    or, for a folder of ``date=...`` batches, the partition date."""
    frame = read_table(path)
    label = str(path)
    column = time_column
    if column is None:
        if PARTITION_TIME in frame.attrs.get("partition_columns", []):
            column = PARTITION_TIME
        else:
            raise DataValidationError(
                f"{label}: say which column holds each row's time (--time-column), or give a "
                "folder of date=YYYY-MM-DD batches"
            )
    if column not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:12]))
        raise DataValidationError(f"{label}: no time column {quote(column)} (columns: {shown})")
    raw = frame[column]
    try:
        times = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        times = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    bad = times.isna()
    if bad.any():
        first = raw[bad].iloc[0]
        raise DataValidationError(
            f"{label}: time column {quote(column)} has {int(bad.sum()):,} value(s) that are not "
            f"times, e.g. {quote(first)} (row {int(np.flatnonzero(bad.to_numpy())[0])})"
        )
    return frame.drop(columns=[column]), times, column


def cut(
    frame: pd.DataFrame,
    times: pd.Series,
    start: pd.Timestamp,
    period: str,
    end: pd.Timestamp | None = None,
    label: str = "data",
) -> tuple[pd.DataFrame, list[tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame, pd.Series]]]:
    """The base rows (before ``start``) and each period's start, end, rows and their times
    (in time order), from ``start`` (to ``end``)."""
    if period not in PERIODS:
        raise DataValidationError(f"period {quote(period)}: use one of {', '.join(PERIODS)}")
    first, last = times.min(), times.max()
    base = frame[(times < start).to_numpy()]
    if base.empty:
        raise DataValidationError(
            f"{label}: no rows before the start {start.isoformat()} (the data begins "
            f"{first.isoformat()}): the first production model would have nothing to train on"
        )
    later = (times >= start) & (times < end if end is not None else True)
    if not later.any():
        raise DataValidationError(
            f"{label}: no rows from the start {start.isoformat()} on (the data ends "
            f"{last.isoformat()}): nothing to replay"
        )
    keys = times[later].map(lambda t: period_start(t, period))
    batches = []
    for key, index in sorted(keys.groupby(keys).groups.items()):
        begins = pd.Timestamp(key)  # type: ignore[arg-type]
        order = times[index].sort_values(kind="stable").index
        batches.append((begins, next_period(begins, period), frame.loc[order], times[order]))
    if len(batches) > MAX_BATCHES:
        raise DataValidationError(
            f"{label}: {len(batches):,} {period} batches from {start.date()}; at most "
            f"{MAX_BATCHES:,} (choose a longer period or a later start)"
        )
    return base, batches


def write_timeline(
    path: str | Path,
    folder: Path,
    *,
    start: str | dt.date | dt.datetime,
    period: str,
    target_column: str,
    time_column: str | None = None,
    end: str | dt.date | dt.datetime | None = None,
) -> Timeline:
    """Read dated history from ``path``, cut it, and write the base data and the batches under
    ``folder``. Every problem is a one-line DataValidationError naming the file, column or
    value."""
    if period not in PERIODS:
        raise DataValidationError(f"period {quote(period)}: use one of {', '.join(PERIODS)}")
    at = parse_instant(start, "start")
    stop = parse_instant(end, "end") if end is not None else None
    if stop is not None and stop <= at:
        raise DataValidationError(f"end {stop.date()} is not after the start {at.date()}")
    frame, times, column = read_dated(path, time_column)
    label = str(path)
    if target_column not in frame.columns:
        raise DataValidationError(f"{label}: no target column {quote(target_column)}")
    base, periods = cut(frame, times, at, period, stop, label)
    base_path = write_parquet_atomic(base, folder / BASE_FILE)
    batches = []
    for begins, ends, rows, stamps in periods:
        name = f"date={begins.date().isoformat()}"
        written = write_parquet_atomic(rows, folder / "batches" / name / "part-0.parquet")
        when = pd.DataFrame({TIME_FIELD: stamps.to_numpy()})
        times_path = write_parquet_atomic(when, folder / "times" / f"{name}.parquet")
        labels = encode_target(rows[target_column], f"{label} ({name})")
        batches.append(
            Batch(
                name=name,
                starts=max(begins, at).isoformat(),  # a first period cut by the start
                arrives=ends.isoformat(),
                rows=len(rows),
                positives=int(labels.sum()),
                path=str(written),
                times_path=str(times_path),
            )
        )
    return Timeline(
        source=label,
        time_column=column,
        period=period,
        start=at.isoformat(),
        base_path=str(base_path),
        base_rows=len(base),
        target_column=target_column,
        batches=batches,
    )
