"""Checks of a table against its feature spec, target encoding and imputation.

Arrow type predicates shared by the package; ``encode_target`` turns a binary target into int8
0/1; ``_output_table`` imputes missing values (the training rows' median for numeric features,
``MISSING_LEVEL`` for categorical ones) and builds the table that is split and written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from model.data.messages import brief, quote, quote_list
from model.data.spec import MAX_LEVEL_CHARS, MISSING_LEVEL, FeatureSpec
from model.errors import DataValidationError


def _is_numeric_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_string_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, pa.scalar(True)).as_py())


def missing_count(col: pa.ChunkedArray | pa.Array) -> int:
    """Missing values of a column: nulls, NaN numbers and empty texts."""
    nulls = col.null_count
    if pa.types.is_floating(col.type) and nulls < len(col):
        nulls += int(pc.sum(pc.is_nan(col)).as_py() or 0)
    elif _is_string_type(col.type) and nulls < len(col):
        nulls += int(pc.sum(pc.equal(col, "")).as_py() or 0)
    return nulls


def _check_not_all_null(table: pa.Table, columns: Iterable[str], label: str) -> None:
    for name in columns:
        col = table.column(name)
        if missing_count(col) == len(col):
            raise DataValidationError(f"{label}: column {quote(name)} has only missing values")


def _check_level_lengths(table: pa.Table, columns: Iterable[str], label: str) -> None:
    """Text values of categorical features (and target labels) of at most ``MAX_LEVEL_CHARS``
    characters: each becomes a level stored in ``model.json``."""
    for name in columns:
        problem = level_length_problem(table.column(name), name, label)
        if problem is not None:
            raise DataValidationError(problem)


def level_length_problem(
    col: pa.ChunkedArray | pa.Array, name: str, label: str, offset: int = 0
) -> str | None:
    """Why a column's text values cannot be levels (one too long, at its row plus
    ``offset``), or None."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not _is_string_type(col.type) or col.null_count == len(col):
        return None
    lengths = pc.utf8_length(col)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= MAX_LEVEL_CHARS:
        return None
    row = _first_true(pc.fill_null(pc.greater(lengths, MAX_LEVEL_CHARS), False))
    return (
        f"{label}: column {quote(name)} has a value of {lengths[row].as_py():,} characters "
        f"at row {offset + row} ({quote(col[row].as_py(), 40)}): categorical levels and target "
        f"labels are limited to {MAX_LEVEL_CHARS:,} characters"
    )


POSITIVE_LABELS = {
    frozenset({"0", "1"}): "1",
    frozenset({"no", "yes"}): "yes",
    frozenset({"n", "y"}): "y",
    frozenset({"false", "true"}): "true",
    frozenset({"f", "t"}): "t",
    frozenset({"negative", "positive"}): "positive",
    frozenset({"neg", "pos"}): "pos",
}


def _positive_label(labels: list[Any]) -> Any:
    if all(isinstance(v, bool) for v in labels):
        return True
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        return max(labels)
    lowered = {str(v).strip().lower(): v for v in labels}
    known = POSITIVE_LABELS.get(frozenset(lowered))
    if known is not None:
        return lowered[known]
    return sorted(labels, key=str)[1]


def _encode_target_arrow(col: pa.ChunkedArray, name: str, source: str) -> tuple[np.ndarray, Any]:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if col.null_count:
        row = _first_true(pc.is_null(col))
        raise DataValidationError(target_missing(name, source, col.null_count, row))
    if pa.types.is_floating(col.type) and int(pc.sum(pc.is_nan(col)).as_py() or 0):
        raise DataValidationError(f"{source}: target column {quote(name)} has NaN values")
    positive = target_positive(pc.unique(col).to_pylist(), name, source)
    return target_codes(col, positive), positive


def target_missing(name: str, source: str, count: int, first_row: int) -> str:
    """The error for a target column with missing values."""
    return (
        f"{source}: target column {quote(name)} has {count} missing value(s), "
        f"first at row {first_row}"
    )


def target_positive(labels: list[Any], name: str, source: str, more: bool = False) -> Any:
    """The positive label of a target column's distinct ``labels`` (in order of first
    appearance; ``more``: there are more than those), which must be exactly two."""
    if len(labels) > 2:
        shown = sorted(labels, key=str)[:5]
        count = f"more than {len(labels)}" if more else str(len(labels))
        raise DataValidationError(
            f"{source}: target column {quote(name)} is not binary: {count} distinct values, "
            f"e.g. {quote_list(shown)} (expected 0/1, bool or exactly two labels)"
        )
    if len(labels) < 2:
        raise DataValidationError(
            f"{source}: target column {quote(name)} has a single class ({quote(labels[0])}); "
            "both classes are needed"
        )
    return _positive_label(labels)


def target_codes(col: pa.ChunkedArray | pa.Array, positive: Any) -> np.ndarray:
    """1 where the target is the positive label, else 0 (int8)."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    codes = pc.equal(col, pa.scalar(positive, type=col.type))
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int8)


def encode_target(series: pd.Series, source: str = "data") -> np.ndarray:
    """The target as int8 0/1: from 0/1, bool, or exactly two labels (positive: 1, True,
    the larger number, yes/true/positive, else the label that sorts last)."""
    name = str(series.name) if series.name is not None else "target"
    try:
        arr = pa.chunked_array([pa.array(series, from_pandas=True)])
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise DataValidationError(f"{source}: target column {quote(name)} has mixed types") from exc
    codes, _ = _encode_target_arrow(arr, name, source)
    return codes


def _is_unsupported_feature_type(t: pa.DataType) -> bool:
    """Nested and binary columns cannot be features (numeric or categorical)."""
    return bool(
        pa.types.is_nested(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _check_spec_types(spec: FeatureSpec, table: pa.Table, label: str) -> None:
    for name in spec.numeric:
        t = table.schema.field(name).type
        if not (_is_numeric_type(t) or pa.types.is_null(t)):
            raise DataValidationError(
                f"{label}: feature spec declares {quote(name)} numeric, but the data has type "
                f"{brief(t, 60)}"
            )
    for name in spec.categorical:
        t = table.schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if _is_unsupported_feature_type(t):
            raise DataValidationError(
                f"{label}: column {quote(name)} has type {brief(t, 60)}, which cannot be a "
                f"feature; exclude it (--exclude {quote(name)}) or remove it from the data"
            )


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest number a model reads (the network computes in float32)."""


def number_range_problem(table: pa.Table, columns: Sequence[str], label: str) -> str | None:
    """Why a numeric column of ``table`` cannot be read by a model: a value beyond float32's
    range (what a corrupt file without page checksums decodes to, e.g. 2.7e304), or None."""
    for name in columns:
        if name in table.column_names:
            problem = column_range_problem(table.column(name), name, label)
            if problem is not None:
                return problem
    return None


def column_range_problem(
    col: pa.ChunkedArray | pa.Array, name: str, label: str, offset: int = 0
) -> str | None:
    """:func:`number_range_problem` of one column whose first row is row ``offset``."""
    if not pa.types.is_floating(col.type):
        return None  # integers of 64 bits are within float32's range
    big = pc.fill_null(pc.greater(pc.abs(col), FLOAT32_MAX), False)
    if not pc.any(big).as_py():
        return None
    row = _first_true(big)
    return (
        f"{label}: column {quote(name)} has {quote(col[row].as_py())} at row {offset + row}, "
        "beyond the range a model reads (|x| > 3.4e38): a corrupt file?"
    )


def _median(values: np.ndarray) -> float:
    """The median of a non-empty array, without overflow: ``np.median`` averages the middle
    two values as (a + b) / 2, which is inf for two values near the float64 maximum."""
    n = values.size
    lo, hi = np.partition(values, [(n - 1) // 2, n // 2])[[(n - 1) // 2, n // 2]]
    return float(lo if lo == hi else lo / 2 + hi / 2) + 0.0  # -0.0 and 0.0: one median


def _impute_numeric(
    col: pa.ChunkedArray, train: np.ndarray
) -> tuple[pa.Array | pa.ChunkedArray, int, float | None]:
    """Median of the training rows for missing (null or NaN) values: column, count, median."""
    if col.null_count == 0 and not pa.types.is_floating(col.type):
        return col, 0, None
    values = float_values(col)
    missing = np.isnan(values)
    count = int(missing.sum())
    if count == 0:
        return col, 0, None
    pool = values[train & ~missing]
    if pool.size == 0:
        pool = values[~missing]
    median = _median(pool)
    values[missing] = median
    return pa.array(values), count, median


def float_values(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as a writable float64 array (missing values: NaN)."""
    cast = pc.cast(col, pa.float64(), safe=False)  # integers beyond 2**53: the nearest float
    return np.array(cast.to_numpy(zero_copy_only=False), dtype=np.float64)


def _empty_as_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty strings are missing values: a CSV cannot tell them apart from nulls, so the
    Parquet and CSV copies of the same rows must treat them alike."""
    if not pc.any(pc.equal(col, "")).as_py():
        return col
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)


def _impute_categorical(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    """Categorical values as text; missing (null or empty) values become ``"missing"``."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_boolean(t):
        text = pc.if_else(col, pa.scalar("True"), pa.scalar("False"))
    elif _is_string_type(t):
        text = _empty_as_null(col)
    else:
        text = pc.cast(col, pa.string())
    count = int(text.null_count)
    return pc.fill_null(text, MISSING_LEVEL), count


def _output_table(
    table: pa.Table, spec: FeatureSpec, y: np.ndarray, train: np.ndarray
) -> tuple[pa.Table, dict[str, int], dict[str, Any]]:
    columns: dict[str, Any] = {}
    for col_name in (spec.id_column, spec.timestamp_column):
        if col_name is not None:  # a column may be named ''
            columns[col_name] = table.column(col_name)
    missing: dict[str, int] = {}
    imputation: dict[str, Any] = {}
    for name in spec.numeric:
        col, count, median = _impute_numeric(table.column(name), train)
        columns[name], missing[name] = col, count
        if median is not None:
            imputation[name] = median
    for name in spec.categorical:
        columns[name], missing[name] = _impute_categorical(table.column(name))
        if missing[name]:
            imputation[name] = MISSING_LEVEL
    columns[spec.target] = pa.array(y.astype(np.int64))
    return pa.table(columns), missing, imputation
