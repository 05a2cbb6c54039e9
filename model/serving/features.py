"""Request rows checked against a model's feature spec and encoded for the network, without
pandas (the scoring service's hot path).

:class:`FeatureEncoder` turns JSON rows (a list of objects) or an Arrow table into a
:class:`Batch`: the network's inputs (raw numerics as float32 with NaN for a missing value,
categorical codes with 0 = unknown, exactly as ``Preprocessor.transform`` makes them), each
row's id, and the feature values as served (for the prediction log). A missing feature, a
value of the wrong type or a non-finite number raises :class:`RequestError` naming the row
and the column; nothing is encoded for a refused request.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.data import MISSING_LEVEL, FeatureSpec
from model.errors import DataValidationError

FLOAT32_MAX = float(np.finfo(np.float32).max)
DEFAULT_ID_COLUMN = "id"
"""The id column of the log and the responses when the model's spec names none."""


class RequestError(DataValidationError):
    """A request the service refuses; ``status`` is the HTTP status (422 or 413)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def id_text(value: Any) -> str:
    """An id's canonical text (an integral float is the integer): the join key of labels."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Batch:
    """Encoded rows: network inputs, ids (text) and the served feature values (columns)."""

    x_num: np.ndarray
    x_cat: np.ndarray
    ids: list[str]
    features: dict[str, pa.Array | list[Any]]

    def __len__(self) -> int:
        return len(self.ids)


class FeatureEncoder:
    """Validation and encoding for one feature layout (numeric/categorical lists, levels).

    Models with the same layout (the usual case across versions) share one encoding of a
    request; :meth:`key` says which layout an encoder stands for.
    """

    def __init__(
        self, spec: FeatureSpec, levels: dict[str, list[str]], numeric: Sequence[str]
    ) -> None:
        self.spec = spec
        self.numeric = list(numeric)
        self.categorical = list(spec.categorical)
        self.id_column = spec.id_column or DEFAULT_ID_COLUMN
        self.levels = {c: list(levels.get(c, [])) for c in self.categorical}
        self._codes = {c: {v: i + 1 for i, v in enumerate(lv)} for c, lv in self.levels.items()}
        self._missing_code = {c: (self._codes[c].get(MISSING_LEVEL, 0)) for c in self.categorical}
        self._value_sets = {c: pa.array(lv, pa.string()) for c, lv in self.levels.items()}

    def key(self) -> tuple[Any, ...]:
        return (
            tuple(self.numeric),
            tuple(self.categorical),
            tuple(tuple(self.levels[c]) for c in self.categorical),
        )

    # ------------------------------------------------------------------ JSON rows

    def from_rows(self, rows: Any) -> Batch:
        """Encode ``rows`` (a list of JSON objects); RequestError names the first bad value."""
        if not isinstance(rows, list):
            raise RequestError(f"'rows' must be a list of objects, got {type(rows).__name__}")
        n = len(rows)
        x_num = np.empty((n, len(self.numeric)), dtype=np.float32)
        x_cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        num_cols: list[list[float | None]] = [[None] * n for _ in self.numeric]
        cat_cols: list[list[str | None]] = [[None] * n for _ in self.categorical]
        ids: list[str] = [""] * n
        id_col = self.id_column
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise RequestError(f"row {i}: expected an object, got {type(row).__name__}")
            for j, name in enumerate(self.numeric):
                try:
                    value = row[name]
                except KeyError:
                    raise RequestError(f"row {i}: missing feature {name!r}") from None
                if value is None:
                    x_num[i, j] = np.nan
                    continue
                if type(value) is bool or not isinstance(value, int | float):
                    raise RequestError(
                        f"row {i}, column {name!r}: expected a number, got {_shown(value)}"
                    )
                number = float(value)
                if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
                    raise RequestError(
                        f"row {i}, column {name!r}: non-finite number {_shown(value)}"
                    )
                x_num[i, j] = number
                num_cols[j][i] = number
            for j, name in enumerate(self.categorical):
                try:
                    value = row[name]
                except KeyError:
                    raise RequestError(f"row {i}: missing feature {name!r}") from None
                if value is None or value == "":
                    x_cat[i, j] = self._missing_code[name]
                    continue
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise RequestError(
                        f"row {i}, column {name!r}: expected a string, got {_shown(value)}"
                    )
                text = str(value)
                x_cat[i, j] = self._codes[name].get(text, 0)
                cat_cols[j][i] = text
            ident = row.get(id_col)
            if ident is None:
                ids[i] = uuid.uuid4().hex
            elif isinstance(ident, bool) or not isinstance(ident, str | int | float):
                raise RequestError(
                    f"row {i}, column {id_col!r}: an id must be a string or an integer, got "
                    f"{_shown(ident)}"
                )
            else:
                ids[i] = id_text(ident)
        features: dict[str, pa.Array | list[Any]] = {}
        for j, name in enumerate(self.numeric):
            features[name] = num_cols[j]
        for j, name in enumerate(self.categorical):
            features[name] = cat_cols[j]
        return Batch(x_num, x_cat, ids, features)

    # ------------------------------------------------------------------ Arrow tables

    def from_table(self, table: pa.Table) -> Batch:
        """Encode an Arrow table (from an IPC or Parquet body)."""
        names = table.column_names
        n = table.num_rows
        x_num = np.empty((n, len(self.numeric)), dtype=np.float32)
        x_cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        features: dict[str, pa.Array | list[Any]] = {}
        for j, name in enumerate(self.numeric):
            if name not in names:
                raise RequestError(f"column {name!r}: missing feature")
            col = table.column(name).combine_chunks()
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                raise RequestError(f"column {name!r}: expected numbers, got Arrow type {col.type}")
            as_float = pc.cast(col, pa.float64())
            if pa.types.is_floating(col.type):
                bad = pc.fill_null(
                    pc.or_(
                        pc.invert(pc.is_finite(as_float)), pc.greater(pc.abs(as_float), FLOAT32_MAX)
                    ),
                    False,
                )
                if pc.any(bad).as_py():
                    row = int(pc.index(bad, True).as_py())
                    raise RequestError(
                        f"row {row}, column {name!r}: non-finite number {as_float[row].as_py()!r}"
                    )
            x_num[:, j] = as_float.to_numpy(zero_copy_only=False)
            features[name] = as_float
        for j, name in enumerate(self.categorical):
            if name not in names:
                raise RequestError(f"column {name!r}: missing feature")
            col = table.column(name).combine_chunks()
            if pa.types.is_dictionary(col.type):
                col = col.dictionary_decode()
            if pa.types.is_floating(col.type) or not (
                pa.types.is_integer(col.type)
                or pa.types.is_string(col.type)
                or pa.types.is_large_string(col.type)
            ):
                raise RequestError(f"column {name!r}: expected strings, got Arrow type {col.type}")
            text = pc.cast(col, pa.string())
            text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
            index = pc.index_in(text, value_set=self._value_sets[name])
            codes = pc.add(pc.cast(index, pa.int64()), 1)
            missing = pa.scalar(self._missing_code[name], pa.int64())
            codes = pc.if_else(pc.is_null(text), missing, pc.fill_null(codes, 0))
            x_cat[:, j] = codes.to_numpy(zero_copy_only=False)
            features[name] = text
        ids = self._table_ids(table, n)
        return Batch(x_num, x_cat, ids, features)

    def _table_ids(self, table: pa.Table, n: int) -> list[str]:
        if self.id_column not in table.column_names:
            return [uuid.uuid4().hex for _ in range(n)]
        col = table.column(self.id_column).combine_chunks()
        if not (
            pa.types.is_integer(col.type)
            or pa.types.is_string(col.type)
            or pa.types.is_large_string(col.type)
        ):
            raise RequestError(
                f"column {self.id_column!r}: an id must be a string or an integer, got Arrow "
                f"type {col.type}"
            )
        values = pc.cast(col, pa.string()).to_pylist()
        return [uuid.uuid4().hex if v is None else v for v in values]


def check_limits(rows: int, max_rows: int) -> None:
    """413 when a request carries more rows than the service accepts."""
    if rows > max_rows:
        raise RequestError(
            f"request has {rows:,} rows; the limit is {max_rows:,} (--max-rows)", status=413
        )
    if rows == 0:
        raise RequestError("request has no rows")
