"""Property: whatever frame ``prepare`` is given, it succeeds or raises a ``RetrainError`` with a
short message; never another exception, never a hang (issue 12).

Frames are generated with random dtypes (floats with NaN/inf/huge values, 64-bit and unbounded
and unsigned integers, nullable integers and booleans, text with empty and huge values, pandas
strings, categories, timestamps, durations, complex numbers, decimals, bytes, lists, mixed
objects, all-missing columns), unicode, empty, numeric and duplicate column names, and random
``prepare`` options, given as a frame or written to Parquet or CSV first. Each example runs
under ``signal.alarm`` (Hypothesis's ``deadline`` only reports a slow example after it
returns); the test as a whole under pytest-timeout's thread method. A numeric
``RuntimeWarning`` (an overflow) is a failure too, and a prepared folder must read back with
every feature value present and finite.

The examples are derandomized, so every run tests the same ones; to explore further, set
``HYPOTHESIS_EXPLORE=1`` (random examples; ``--hypothesis-seed=N`` to repeat a run) and
``HYPOTHESIS_MAX_EXAMPLES``.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fakes import time_limit
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from model.data import SPLITS, load_manifest, load_split, prepare
from model.errors import RetrainError

MAX_MESSAGE = 300
EXAMPLE_SECONDS = 20
MAX_EXAMPLES = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "150"))
EXPLORE = bool(os.environ.get("HYPOTHESIS_EXPLORE"))


# ---------------------------------------------------------------- strategies

huge_text = st.builds(lambda n, c: c * n, st.integers(1_001, 20_000), st.sampled_from("xé\x00 "))
text = st.one_of(
    st.sampled_from(["", " ", "a", "b", "missing", "1", "2.5", "nan", "inf", "True"]),
    st.text(max_size=12),
    huge_text,
)
column_names = st.one_of(
    st.sampled_from(["x", "y", "id", "target", "date", "", " ", "x"]),
    st.text(max_size=10),
    st.integers(0, 3),
)
timestamps = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1))


mostly = st.sampled_from([True, True, True, True, False])
"""True four times in five (Hypothesis favours small integers, so not ``integers(0, 4) > 0``)."""


def cells(n: int, elements: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(elements, min_size=n, max_size=n)


def series(dtype: Any) -> Any:
    return lambda values: pd.Series(values, dtype=dtype)


def plain_columns(n: int) -> st.SearchStrategy[pd.Series]:
    """Columns a user may well have: numbers with gaps, flags, short text with gaps."""
    maybe = st.none
    small_text = st.sampled_from(["", " ", "a", "b", "missing", "é", "True"])
    return st.one_of(
        cells(n, st.one_of(st.floats(-1e6, 1e6), st.just(np.nan))).map(series("float64")),
        cells(n, st.integers(-(2**63), 2**63 - 1)).map(series("int64")),
        cells(n, st.one_of(maybe(), st.integers(-5, 5))).map(series("Int64")),
        cells(n, st.booleans()).map(series(bool)),
        cells(n, st.one_of(maybe(), st.booleans())).map(series("boolean")),
        cells(n, st.one_of(maybe(), small_text)).map(series(object)),
        cells(n, st.one_of(maybe(), small_text)).map(series("category")),
        cells(n, timestamps).map(lambda v: pd.Series(pd.to_datetime(v))),
        st.just(pd.Series(np.arange(n) * 7 + 1, dtype="int64")),  # an id-like column
        cells(n, st.one_of(maybe(), small_text)).map(series("string")),
        cells(n, st.floats(-1e3, 1e3, width=32)).map(series("float32")),
        cells(n, st.integers(0, 2**64 - 1)).map(series("uint64")),
        cells(n, st.integers(-128, 127)).map(series("int8")),
    )


def nasty_columns(n: int) -> st.SearchStrategy[pd.Series]:
    """Columns that should be refused, or accepted with care: inf, extreme and unbounded
    numbers, huge and odd text, mixed objects, decimals, bytes, nothing at all."""
    maybe = st.none
    return st.one_of(
        cells(n, st.floats(allow_nan=True, allow_infinity=True)).map(series("float64")),
        cells(n, st.sampled_from([0.0, 1.5, 1e308, -1e308, 5e-324, np.nan])).map(series("float64")),
        cells(n, st.sampled_from([1.7e308, 1e308, np.nan])).map(series("float64")),
        cells(n, st.integers()).map(series(object)),
        cells(n, st.one_of(maybe(), text)).map(series(object)),
        cells(n, st.one_of(maybe(), text)).map(series("category")),
        cells(n, st.one_of(maybe(), st.integers(), st.floats(), text)).map(series(object)),
        cells(n, st.one_of(maybe(), timestamps)).map(series(object)),
        cells(n, st.one_of(maybe(), st.decimals(-(10**6), 10**6, places=2))).map(series(object)),
        cells(n, st.sampled_from([Decimal(1), Decimal("NaN"), Decimal("-Infinity")])).map(
            series(object)
        ),
        cells(n, st.one_of(maybe(), st.binary(max_size=4))).map(series(object)),
        st.just(pd.Series([None] * n, dtype=object)),
        cells(n, st.timedeltas(-dt.timedelta(days=999), dt.timedelta(days=999))).map(
            series("timedelta64[ns]")
        ),
        cells(n, st.complex_numbers(max_magnitude=10)).map(series(complex)),
        cells(n, st.one_of(maybe(), st.lists(st.integers(0, 3), max_size=2))).map(series(object)),
    )


def columns(n: int) -> st.SearchStrategy[pd.Series]:
    """Mostly plain columns (one in five nasty), so that many frames get through."""
    return mostly.flatmap(lambda plain: plain_columns(n) if plain else nasty_columns(n))


def targets(n: int) -> st.SearchStrategy[pd.Series]:
    pairs = st.sampled_from(
        [(0, 1), (True, False), ("yes", "no"), ("a", "b"), (1.0, 0.0), (Decimal(1), Decimal(0))]
    )
    both = pairs.flatmap(
        lambda pair: cells(n, st.sampled_from(pair)).map(
            lambda v: pd.Series([*pair, *v[2:]] if n >= 2 else v, dtype=object)
        )
    )
    return st.one_of(both, both, both, both, columns(n))  # mostly binary


@st.composite
def cases(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, Any], str]:
    n = draw(st.one_of(st.integers(0, 6), st.integers(20, 60), st.integers(20, 60)))
    unique = draw(mostly)  # distinct column names
    names = draw(st.lists(column_names, max_size=5, unique_by=str if unique else None))
    if unique:
        names = [c for c in names if c != "target"]
    data = [draw(columns(n)) for _ in names]
    if draw(mostly):  # a target column
        names.append("target")
        data.append(draw(targets(n)))
    df = pd.DataFrame({i: s.reset_index(drop=True) for i, s in enumerate(data)})
    df.columns = pd.Index(names, dtype=object)
    options: dict[str, Any] = {}
    others = [c for c in names if isinstance(c, str) and c != "target"]
    if others and not draw(mostly):
        options["id_column"] = draw(st.sampled_from(others))
    if others and draw(st.booleans()):
        options["exclude"] = draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
    if others and draw(st.integers(0, 4)) == 0:
        options["timestamp_column"] = draw(st.sampled_from(others))
        options["time_split"] = draw(st.booleans())
    return df, options, draw(st.sampled_from(["frame", "frame", "parquet", "csv"]))


UNWRITABLE = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
"""What pandas raises for a frame Parquet cannot hold (mixed objects in a column, an integer
beyond 64 bits)."""


def as_source(df: pd.DataFrame, kind: str, folder: Path) -> pd.DataFrame | Path:
    """The frame itself, or a Parquet or CSV file holding it. Only a frame Parquet cannot
    hold (duplicate column names, mixed objects) is passed as the frame instead, counted as an
    event; any other failure of this setup (a full disk, a bug here) fails the test loudly
    rather than quietly testing the frame path."""
    if kind == "csv":
        df.to_csv(folder / "data.csv", index=False)
        return folder / "data.csv"
    if kind == "parquet":
        if df.columns.duplicated().any():
            event("parquet: duplicate names, the frame is used")
            return df
        try:
            df.to_parquet(folder / "data.parquet", index=False)
        except UNWRITABLE as exc:
            event(f"parquet: {type(exc).__name__}, the frame is used")
            (folder / "data.parquet").unlink(missing_ok=True)
            return df
        assert (folder / "data.parquet").stat().st_size > 0, "the Parquet setup wrote nothing"
        return folder / "data.parquet"
    return df


# ---------------------------------------------------------------- the property


@pytest.mark.timeout(600, method="thread")
@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. an overflow computing a median
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_prepare_succeeds_or_raises_a_short_retrain_error(
    case: tuple[pd.DataFrame, dict[str, Any], str],
) -> None:
    df, options, kind = case
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        source = as_source(df, kind, Path(tmp))
        try:
            with time_limit(EXAMPLE_SECONDS):
                manifest = prepare(source, out, **options)
        except RetrainError as exc:
            message = str(exc).replace(str(source), "<file>")  # the path's length is not ours
            event("refused: " + message.replace("<DataFrame>: ", "")[:45])
            assert len(message) <= MAX_MESSAGE, message[:1000]
            assert "\n" not in message, message[:1000]
            assert not out.exists() or not any(out.iterdir()), "a failure left output behind"
            return
        event("prepared")
        # success: the folder reads back (manifest re-hashed, split files verified)
        again = load_manifest(manifest.path)
        assert again.sha256 == manifest.sha256 and again.rows == manifest.rows
        if kind == "frame":  # a CSV file may lose a row that is all empty
            assert again.rows == len(df)
        parts = [load_split(again, name) for name in SPLITS]
        assert sum(len(p) for p in parts) == len(df)
        for part in parts:  # every missing value imputed, every number finite
            assert not part[again.spec.features].isna().any().any()
            assert np.isfinite(part[again.spec.numeric].to_numpy(dtype=float)).all()
