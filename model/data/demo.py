"""The original lab's synthetic customer data set, with optional drift and dated batches.

``make_customers(rows, seed)`` reproduces the lab's distributions (DESIGN.md "Demo data") with
NumPy's legacy ``RandomState(seed)`` drawn in the lab's column order. ``drift`` (0 to 1) moves
feature distributions *and* the target rule, both by an amount that grows linearly with it
(the recipe is :data:`DRIFT_RECIPE` and docs/demo-data.md). ``write_demo`` writes the base data set
and date-partitioned incoming batches under ``RETRAIN_HOME``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.data.messages import quote
from model.data.read import WRITE_OPTIONS
from model.errors import DataValidationError
from model.settings import Settings

DEMO_NUMERIC: list[str] = [
    "age",
    "income",
    "credit_score",
    "num_purchases",
    "account_age_days",
    "avg_transaction",
    "num_returns",
    "is_premium",
    "region",
    "category_preference",
]
"""The lab's 10 features, all numeric (is_premium 0/1, region 1-4, category_preference 1-9)."""
DEMO_FEATURES: list[str] = list(DEMO_NUMERIC)
DEMO_CATEGORICAL: list[str] = []
DEMO_ID = "id"
DEMO_TARGET = "target"
DEMO_COLUMNS: list[str] = [DEMO_ID, *DEMO_FEATURES, DEMO_TARGET]

ID_SEED_STRIDE = 10**14
"""Ids are ``seed * ID_SEED_STRIDE + batch * ID_BATCH_STRIDE + row``: disjoint per seed/batch."""
ID_BATCH_STRIDE = 10**9
MAX_ROWS = ID_BATCH_STRIDE
MAX_BATCHES = ID_SEED_STRIDE // ID_BATCH_STRIDE - 1
MAX_SEED = 90_000
DEFAULT_START_DATE = dt.date(2025, 1, 1)
BATCH_EPOCH = dt.date(2000, 1, 1)
"""A batch dated D is batch number ``(D - BATCH_EPOCH).days + 1``: its ids and random stream
depend on its date only, so batches written by separate calls never share ids."""

DRIFT_RECIPE: dict[str, str] = {
    "age": "mean 35 -> 35 + 8*d (sd 10), clip [18, 80]",
    "income": "mean 65000 -> 65000 + 16000*d (sd 20000), clip [20000, 200000]",
    "credit_score": "mean 700 -> 700 - 40*d (sd 50), clip [300, 850]",
    "num_purchases": "Poisson(5) -> Poisson(5 * (1 + 0.6*d))",
    "account_age_days": "U(1, 3650) -> U(1, 3650 * (1 - 0.5*d))  (newer accounts)",
    "avg_transaction": "LogNormal(4.5, 0.8) -> LogNormal(4.5 + 0.4*d, 0.8)",
    "num_returns": "Poisson(1) -> Poisson(1 + d)",
    "is_premium": "Bernoulli(0.3) -> Bernoulli(0.3 + 0.3*d)",
    "region": "unchanged (uniform 1-4)",
    "category_preference": "unchanged (uniform 1-9)",
    "target": (
        "0.3*[income > 70000 + 40000*d] + 0.4*(1 - d)*[is_premium]"
        " + 0.4*d*[credit_score < 680] + 0.3*U(0,1) > 0.5"
    ),
}
"""How ``drift = d`` changes each column (d = 0 is the lab's data set)."""


def _check_args(rows: int, seed: int, drift: float, rows_name: str = "rows") -> None:
    if not 1 <= rows <= MAX_ROWS:
        raise DataValidationError(f"demo data: {rows_name} must be in [1, {MAX_ROWS}], got {rows}")
    if not 0 <= seed <= MAX_SEED:
        raise DataValidationError(f"demo data: seed must be in [0, {MAX_SEED}], got {seed}")
    if not 0.0 <= drift <= 1.0 or not np.isfinite(drift):
        raise DataValidationError(f"demo data: drift must be in [0, 1], got {drift}")


def make_customers(
    rows: int = 10_000, seed: int = 42, drift: float = 0.0, *, batch: int = 0
) -> pd.DataFrame:
    """The lab's customers (``drift=0``, ``batch=0``: exactly the lab's draws for ``seed``).

    ``batch`` > 0 draws an independent stream (seeded by ``(seed, batch)``) with ids in a
    range of their own, so batches never share ids with the base data or with each other.
    """
    _check_args(rows, seed, drift)
    if not 0 <= batch <= MAX_BATCHES:
        raise DataValidationError(f"demo data: batch must be in [0, {MAX_BATCHES}], got {batch}")
    if batch == 0:
        rng = np.random.RandomState(seed)
    else:
        state = np.random.SeedSequence([seed, batch]).generate_state(1)[0]
        rng = np.random.RandomState(int(state))
    d = float(drift)
    n = rows
    cols: dict[str, np.ndarray] = {}
    cols["age"] = np.clip(rng.normal(35 + 8 * d, 10, n), 18, 80)
    cols["income"] = np.clip(rng.normal(65_000 + 16_000 * d, 20_000, n), 20_000, 200_000)
    cols["credit_score"] = np.clip(rng.normal(700 - 40 * d, 50, n), 300, 850)
    cols["num_purchases"] = rng.poisson(5 * (1 + 0.6 * d), n)
    cols["account_age_days"] = rng.uniform(1, 3650 * (1 - 0.5 * d), n)
    cols["avg_transaction"] = rng.lognormal(4.5 + 0.4 * d, 0.8, n)
    cols["num_returns"] = rng.poisson(1 + d, n)
    cols["is_premium"] = rng.binomial(1, 0.3 + 0.3 * d, n)
    cols["region"] = rng.randint(1, 5, n)
    cols["category_preference"] = rng.randint(1, 10, n)
    noise = rng.uniform(0, 1, n)
    score = (
        0.3 * (cols["income"] > 70_000 + 40_000 * d)
        + 0.4 * (1 - d) * cols["is_premium"]
        + 0.4 * d * (cols["credit_score"] < 680)
        + 0.3 * noise
    )
    ids = seed * ID_SEED_STRIDE + batch * ID_BATCH_STRIDE + np.arange(n, dtype=np.int64)
    out = pd.DataFrame(
        {
            DEMO_ID: ids,
            **{name: cols[name] for name in DEMO_FEATURES},
            DEMO_TARGET: (score > 0.5).astype(np.int64),
        }
    )
    for name in ("num_purchases", "num_returns", "is_premium", "region", "category_preference"):
        out[name] = out[name].astype(np.int64)
    return out


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` (no index) to ``path`` via a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, **WRITE_OPTIONS)
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, read-only: one line naming the file
        reason = exc.strerror or type(exc).__name__
        raise DataValidationError(f"{path}: cannot write: {reason}") from exc
    finally:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
    return path


def _as_settings(settings_or_root: Settings | str | Path) -> Settings:
    if isinstance(settings_or_root, Settings):
        return settings_or_root
    return Settings(home=Path(settings_or_root))


def next_batch_date(incoming_dir: Path) -> dt.date:
    """The day after the newest ``date=YYYY-MM-DD`` batch, or :data:`DEFAULT_START_DATE`."""
    days = []
    if incoming_dir.is_dir():
        for child in incoming_dir.iterdir():
            name = child.name
            if child.is_dir() and name.startswith("date="):
                try:
                    days.append(dt.date.fromisoformat(name.removeprefix("date=")))
                except ValueError:
                    continue
    return max(days) + dt.timedelta(days=1) if days else DEFAULT_START_DATE


def batch_dates(batches: int, start: dt.date | str) -> list[dt.date]:
    """One date per batch, a day apart, from ``start``."""
    if isinstance(start, str):
        try:
            start = dt.date.fromisoformat(start)
        except ValueError as exc:
            raise DataValidationError(
                f"demo data: start date {quote(start)} is not YYYY-MM-DD"
            ) from exc
    return [start + dt.timedelta(days=k) for k in range(batches)]


def batch_number(day: dt.date) -> int:
    """The batch number of a batch dated ``day`` (1 for 2000-01-01)."""
    number = (day - BATCH_EPOCH).days + 1
    if not 1 <= number <= MAX_BATCHES:
        raise DataValidationError(f"demo data: batch date {day} is outside the supported range")
    return number


def write_demo(
    settings_or_root: Settings | str | Path,
    rows: int = 10_000,
    seed: int = 42,
    drift: float = 0.0,
    batches: int = 0,
    batch_rows: int = 2_000,
    drift_from_batch: int | None = None,
    start_date: dt.date | str | None = None,
    *,
    out: str | Path | None = None,
    clean_incoming: bool = False,
) -> dict[str, Path]:
    """Write the demo base data set and ``batches`` dated incoming batches.

    Without batches, ``drift`` applies to the base data. With batches, the base data is the
    lab's undrifted set and batch ``k`` (1-based) is drifted by ``drift`` when
    ``k >= drift_from_batch`` (default 1: every batch). Batches go to
    ``incoming_dir/date=YYYY-MM-DD/part-0.parquet``; a batch's ids and draws depend on its date
    (:func:`batch_number`), so separate calls never produce colliding ids. Without
    ``start_date``, batches continue the day after the newest existing batch (2025-01-01 in an
    empty folder), so the output is deterministic for a seed and a starting state.
    Returns ``{"base": path, "batch-1": path, ...}``.
    """
    settings = _as_settings(settings_or_root)
    if batches < 0 or batches > MAX_BATCHES:
        raise DataValidationError(f"demo data: batches must be in [0, {MAX_BATCHES}]")
    _check_args(rows, seed, drift)
    if batches:
        _check_args(batch_rows, seed, drift, "batch_rows")
    first_drifted = 1 if drift_from_batch is None else int(drift_from_batch)
    if first_drifted < 1:
        raise DataValidationError(
            f"demo data: drift_from_batch must be >= 1, got {drift_from_batch}"
        )
    base_drift = drift if batches == 0 else 0.0
    base_path = Path(out) if out is not None else settings.raw_data_path
    if base_path.is_dir():
        raise DataValidationError(f"demo data: {base_path} is a folder; give a file name")
    # every argument is checked before anything is written (no half-written demo)
    incoming = settings.incoming_dir
    start = DEFAULT_START_DATE if clean_incoming else next_batch_date(incoming)
    days = batch_dates(batches, start if start_date is None else start_date)
    numbers = [batch_number(day) for day in days]
    paths: dict[str, Path] = {}
    paths["base"] = write_parquet_atomic(make_customers(rows, seed, base_drift), base_path)
    if clean_incoming and incoming.exists():
        shutil.rmtree(incoming)
    for k, (day, number) in enumerate(zip(days, numbers, strict=True), start=1):
        amount = drift if k >= first_drifted else 0.0
        frame = make_customers(batch_rows, seed, amount, batch=number)
        target = incoming / f"date={day.isoformat()}" / "part-0.parquet"
        paths[f"batch-{k}"] = write_parquet_atomic(frame, target)
    return paths


DEMO_TIME = "event_time"
"""The time column of the demo timeline (:func:`make_timeline`)."""
TIMELINE_START = dt.date(2024, 1, 1)


def _month_start(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after ``day``'s (negative: before)."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def make_timeline(
    months: int = 12,
    *,
    base_months: int = 6,
    base_rows: int = 10_000,
    rows_per_month: int = 2_000,
    drift: float = 1.0,
    drift_from_month: int = 6,
    ramp_months: int = 1,
    seed: int = 42,
    start: dt.date = TIMELINE_START,
) -> pd.DataFrame:
    """The demo customers as one dated table (column :data:`DEMO_TIME`): ``base_rows`` rows
    spread over the ``base_months`` months before ``start`` (the lab's undrifted data), then
    ``rows_per_month`` rows in each of ``months`` months from ``start``. Drift is injected from
    month ``drift_from_month`` (1-based) on, growing linearly to ``drift`` over ``ramp_months``
    months and staying there (``drift_from_month`` past ``months``: none). What
    ``retrain backtest --demo`` replays."""
    if not 1 <= months <= 120 or not 1 <= base_months <= 120:
        raise DataValidationError("demo timeline: months and base_months must be in [1, 120]")
    _check_args(base_rows, seed, drift, "base_rows")
    _check_args(rows_per_month, seed, drift, "rows_per_month")
    rng = np.random.default_rng(seed)
    first = _month_start(start, -base_months)
    frames = [make_customers(base_rows, seed)]
    spans = [(first, start)]
    for k in range(1, months + 1):
        begins = _month_start(start, k - 1)
        grown = min(1.0, (k - drift_from_month + 1) / max(1, ramp_months))
        amount = drift * grown if k >= drift_from_month else 0.0
        frames.append(make_customers(rows_per_month, seed, amount, batch=batch_number(begins)))
        spans.append((begins, _month_start(begins, 1)))
    for frame, (lo, hi) in zip(frames, spans, strict=True):
        seconds = (hi - lo).days * 86_400
        offsets = np.sort(rng.integers(0, seconds, len(frame)))
        epoch = pd.Timestamp(lo, tz="UTC")
        frame.insert(1, DEMO_TIME, epoch + pd.to_timedelta(offsets, unit="s"))
    return pd.concat(frames, ignore_index=True)
