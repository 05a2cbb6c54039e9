"""The stable split: a uint64 key per row from a hash of its id (else its raw values) and a
train / val / test code from that key, so a row keeps its split in every later preparation; or,
for a time split, codes from quantiles of the timestamp (oldest rows train, newest test).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from model.data.messages import brief, quote, quote_list
from model.data.spec import FeatureSpec
from model.data.validate import _empty_as_null, _first_true, _is_numeric_type, _is_string_type
from model.errors import DataValidationError

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = (0.7, 0.15, 0.15)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_INT_TAG = np.uint64(0x243F6A8885A308D3)
_FLOAT_TAG = np.uint64(0x13198A2E03707344)
_TIME_TAG = np.uint64(0xA4093822299F31D0)
_TEXT_KEY = "retraining-rowky"  # 16 characters: the SipHash key of text values


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _text_hash(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _hash_numbers(values: np.ndarray) -> np.ndarray:
    """Integral values hash as integers (so 1 == 1.0 from CSV or Parquet), others by bits."""
    if values.dtype.kind in "iub":
        out = values.astype(np.int64, copy=True).view(np.uint64)
        out ^= _INT_TAG
        return _mix(out)
    floats = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(floats) & (np.abs(floats) < 2.0**63)
        integral &= np.trunc(floats) == floats
    out = (floats + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0
    out ^= _FLOAT_TAG
    if integral.any():
        out[integral] = floats[integral].astype(np.int64).view(np.uint64) ^ _INT_TAG
    return _mix(out)


def _column_hash(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint64 hash per value of a column, and a mask of valid values (None: all valid)."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    valid = None
    if col.null_count:
        valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_boolean(t) or _is_numeric_type(t):
        if pa.types.is_integer(t) and col.null_count:  # exact beyond 2**53, row by row
            values = pc.fill_null(col, 0).to_numpy()
        elif pa.types.is_decimal(t) or pa.types.is_boolean(t) or col.null_count:
            values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            values = col.to_numpy()
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if nan.any():
                valid = ~nan if valid is None else valid & ~nan
        return _hash_numbers(values), valid
    if pa.types.is_temporal(t) and not pa.types.is_time(t) and not pa.types.is_duration(t):
        ns = pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64())
        out = np.asarray(pc.fill_null(ns, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        hashed = out.view(np.uint64) ^ _TIME_TAG
        return _mix(hashed), valid
    if _is_string_type(t) and pc.any(pc.equal(col, "")).as_py():  # "" is missing, like in CSV
        col = _empty_as_null(col)
        valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    try:
        text = pc.cast(col, pa.string()) if not _is_string_type(t) else col
        objects = pc.fill_null(text, "").to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # lists, structs, binary: by value
        objects = np.array(["" if v is None else repr(v) for v in col.to_pylist()], dtype=object)
    hashed = pd.util.hash_array(objects, hash_key=_TEXT_KEY, categorize=True)
    return np.asarray(hashed, dtype=np.uint64), valid


def row_keys(table: pa.Table, columns: Sequence[str], salt: str = "retraining") -> np.ndarray:
    """A stable uint64 key per row from the canonical values of ``columns``.

    Columns are taken in sorted name order; a missing (null) value contributes nothing, so a
    column added later (null in older rows) leaves the keys of older rows unchanged.
    """
    keys = np.full(table.num_rows, _text_hash(f"salt:{salt}"), dtype=np.uint64)
    for name in sorted(columns):
        hashed, valid = _column_hash(table.column(name))
        hashed ^= _text_hash(f"column:{name}")
        combined = keys * _GOLDEN
        combined += hashed
        del hashed
        _mix(combined)
        if valid is None:
            keys = combined
        else:
            np.copyto(keys, combined, where=valid)
        del combined
    return keys


def assign_hash_splits(keys: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) from row keys: the same key, the same split."""
    unit = (keys >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)
    cuts = np.cumsum(np.asarray(fractions, dtype=np.float64))[:-1]
    return np.searchsorted(cuts, unit, side="right").astype(np.int8)


def assign_time_splits(
    table: pa.Table, column: str, fractions: Sequence[float], label: str
) -> np.ndarray:
    """Oldest rows train, newest test, by quantiles of the timestamp (ties stay together)."""
    col = table.column(column)
    if col.null_count:
        raise DataValidationError(
            f"{label}: timestamp column {quote(column)} has {col.null_count} missing value(s)"
        )
    try:
        ns = pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataValidationError(
            f"{label}: timestamp column {quote(column)} does not hold timestamps: {brief(exc)}"
        ) from exc
    values = np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)
    cum = np.cumsum(np.asarray(fractions, dtype=np.float64))[:-1]
    cuts = [np.quantile(values, q, method="higher") if q > 0 else values.min() for q in cum]
    codes = np.zeros(len(values), dtype=np.int8)
    for i, cut in enumerate(cuts, start=1):
        if cum[i - 1] >= 1.0:
            continue
        codes[values >= cut] = i
    return codes


def _check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(x) for x in split)
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 for v in values):
        raise DataValidationError(f"split must be three non-negative fractions, got {quote(split)}")
    if abs(sum(values) - 1.0) > 1e-9 or values[0] <= 0 or values[2] <= 0:
        raise DataValidationError(
            f"split fractions must sum to 1 with train > 0 and test > 0, got {quote(split)}"
        )
    return values[0], values[1], values[2]


def _split_codes(
    table: pa.Table,
    spec: FeatureSpec,
    fractions: tuple[float, float, float],
    *,
    time_split: bool,
    salt: str,
    partition_columns: Sequence[str],
    label: str,
) -> tuple[np.ndarray, dict[str, Any]]:
    desc: dict[str, Any] = {"fractions": list(fractions)}
    if time_split:
        if spec.timestamp_column is None:
            raise DataValidationError(f"{label}: a time split needs a declared timestamp column")
        desc.update(method="time", key=[spec.timestamp_column])
        return assign_time_splits(table, spec.timestamp_column, fractions, label), desc
    if spec.id_column is not None:
        ids = table.column(spec.id_column)
        if ids.null_count:
            row = _first_true(pc.is_null(ids))
            raise DataValidationError(
                f"{label}: id column {quote(spec.id_column)} has {ids.null_count} missing "
                f"value(s), first at row {row}"
            )
        key_columns = [spec.id_column]
    else:
        key_columns = sorted(str(c) for c in table.column_names if c not in partition_columns)
    desc.update(method="hash", key=key_columns, salt=salt)
    keys = row_keys(table, key_columns, salt)
    codes = assign_hash_splits(keys, fractions)
    # equal keys = equal ids (integer ids map one-to-one to keys; text ids by a 64-bit hash)
    keys.sort()
    desc["duplicate_keys"] = (
        int(len(keys) - 1 - np.count_nonzero(np.diff(keys))) if len(keys) else 0
    )
    return codes, desc


def _check_splits_not_empty(
    rows: np.ndarray, fractions: Sequence[float], split_desc: dict[str, Any], label: str
) -> None:
    """Every split with a positive fraction must get rows (``rows``: each split's count),
    checked before anything is written."""
    total = int(rows.sum())
    for k, name in enumerate(SPLITS):
        if rows[k] == 0 and fractions[k] > 0:
            dup = int(split_desc.get("duplicate_keys", 0))
            key = quote_list(split_desc.get("key", []))
            if split_desc.get("method") == "time":
                cause = (
                    f"the timestamps {key} of {total} rows have too few "
                    "distinct values (rows with one timestamp stay together)"
                )
            elif dup:
                cause = (
                    f"{dup} of {total} rows share a split key with another row "
                    f"(key {key}); rows with one key stay together"
                )
            else:
                cause = f"{total} rows are too few"
            raise DataValidationError(
                f"{label}: split {quote(name)} is empty: {cause} (fractions {list(fractions)})"
            )
