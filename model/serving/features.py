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

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.data import MISSING_LEVEL, FeatureSpec
from model.errors import DataValidationError

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER_TYPES = frozenset({int, float, type(None)})
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
    features: dict[str, pa.Array | list[Any] | np.ndarray]

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
        """Encode ``rows`` (a list of JSON objects) column by column; RequestError names the
        first bad value (row, column)."""
        if not isinstance(rows, list):
            raise RequestError(f"'rows' must be a list of objects, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if type(row) is not dict:
                raise RequestError(f"row {i}: expected an object, got {type(row).__name__}")
        n = len(rows)
        x_num = np.empty((n, len(self.numeric)), dtype=np.float32)
        x_cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        features: dict[str, pa.Array | list[Any] | np.ndarray] = {}
        if self.numeric:
            numbers = self._numbers(rows)
            x_num[:] = numbers
            for j, name in enumerate(self.numeric):
                features[name] = numbers[:, j]
        for j, name in enumerate(self.categorical):
            texts, codes = self._categories(rows, name)
            x_cat[:, j] = codes
            features[name] = texts
        return Batch(x_num, x_cat, self._row_ids(rows), features)

    @staticmethod
    def _column(rows: list[dict[str, Any]], name: str) -> list[Any]:
        try:
            return [row[name] for row in rows]
        except KeyError:
            first = next(i for i, row in enumerate(rows) if name not in row)
            raise RequestError(f"row {first}: missing feature {name!r}") from None

    def _numbers(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The numeric features as a float64 matrix (NaN where null); anything but a finite
        number within float32's range is refused, naming the first such value."""
        names = self.numeric
        width = len(names)
        pick = itemgetter(*names)
        try:
            if width == 1:
                flat = [pick(row) for row in rows]
            else:
                flat = [v for values in map(pick, rows) for v in values]
        except KeyError:
            i, name = next((i, c) for i, row in enumerate(rows) for c in names if c not in row)
            raise RequestError(f"row {i}: missing feature {name!r}") from None
        kinds = set(map(type, flat))
        if not kinds <= _NUMBER_TYPES:
            k = next(k for k, v in enumerate(flat) if type(v) not in _NUMBER_TYPES)
            raise RequestError(
                f"row {k // width}, column {names[k % width]!r}: expected a number, got "
                f"{_shown(flat[k])}"
            )
        nulls = None
        if type(None) in kinds:
            nulls = np.fromiter((v is None for v in flat), dtype=bool, count=len(flat))
            nan = float("nan")
            flat = [nan if v is None else v for v in flat]
        try:
            array = np.array(flat, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            big = float("inf")
            array = np.array(
                [big if type(v) is int and abs(v) > 2**1023 else v for v in flat], np.float64
            )
        array = array.reshape(len(rows), width)
        if nulls is not None:
            nulls = nulls.reshape(len(rows), width)
        with np.errstate(invalid="ignore"):
            bad = (np.abs(array) > FLOAT32_MAX) | np.isinf(array)
        bad |= np.isnan(array) if nulls is None else np.isnan(array) & ~nulls
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            raise RequestError(
                f"row {i}, column {names[j]!r}: non-finite number {_shown(rows[i][names[j]])}"
            )
        return array

    def _categories(self, rows: list[dict[str, Any]], name: str) -> tuple[list[Any], np.ndarray]:
        values = self._column(rows, name)
        codes = self._codes[name]
        missing = self._missing_code[name]
        texts: list[str | None] = []
        out = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values):
            if value is None or value == "":
                texts.append(None)
                out[i] = missing
                continue
            if type(value) is float and value.is_integer():
                value = int(value)
            if type(value) is not str and type(value) is not int:
                raise RequestError(
                    f"row {i}, column {name!r}: expected a string, got {_shown(value)}"
                )
            text = str(value)
            texts.append(text)
            out[i] = codes.get(text, 0)
        return texts, out

    def _row_ids(self, rows: list[dict[str, Any]]) -> list[str]:
        id_col = self.id_column
        ids: list[str] = []
        for i, row in enumerate(rows):
            ident = row.get(id_col)
            if ident is None:
                ids.append(uuid.uuid4().hex)
            elif type(ident) is str:
                ids.append(ident)
            elif type(ident) is int or (type(ident) is float and ident.is_integer()):
                ids.append(id_text(ident))
            else:
                raise RequestError(
                    f"row {i}, column {id_col!r}: an id must be a string or an integer, got "
                    f"{_shown(ident)}"
                )
        return ids

    # ------------------------------------------------------------------ Arrow tables

    def from_table(self, table: pa.Table) -> Batch:
        """Encode an Arrow table (from an IPC or Parquet body)."""
        names = table.column_names
        n = table.num_rows
        x_num = np.empty((n, len(self.numeric)), dtype=np.float32)
        x_cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        features: dict[str, pa.Array | list[Any] | np.ndarray] = {}
        for j, name in enumerate(self.numeric):
            if name not in names:
                raise RequestError(f"column {name!r}: missing feature")
            col = table.column(name).combine_chunks()
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                raise RequestError(f"column {name!r}: expected numbers, got Arrow type {col.type}")
            # 2**64 - 1 is a big number, not an error (every 64-bit integer is within float32)
            as_float = pc.cast(col, pa.float64(), safe=False)
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


_INTEGER_TEXT = r"^\s*-?\d{1,18}\s*$"


def check_integer_ids_rows(rows: list[Any], id_column: str) -> None:
    """For a model trained on integer ids: every id sent is an integer (a whole number, or
    integer text); a text id like ``"abc"`` would poison the labelled batch it joins."""
    for i, row in enumerate(rows):
        ident = row.get(id_column) if type(row) is dict else None
        if type(ident) is str and not re.match(_INTEGER_TEXT, ident):
            raise RequestError(
                f"row {i}, column {id_column!r}: the model's ids are integers, got {_shown(ident)}"
            )


def check_integer_ids_table(table: pa.Table, id_column: str) -> None:
    """:func:`check_integer_ids_rows` for an Arrow table's id column (text must be integers)."""
    if id_column not in table.column_names:
        return
    col = table.column(id_column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return  # integers pass; other types are refused by the encoder
    bad = pc.fill_null(pc.invert(pc.match_substring_regex(col, _INTEGER_TEXT)), False)
    if pc.any(bad).as_py():
        row = int(pc.index(bad, True).as_py())
        raise RequestError(
            f"row {row}, column {id_column!r}: the model's ids are integers, got "
            f"{_shown(col[row].as_py())}"
        )


def check_limits(rows: int, max_rows: int) -> None:
    """413 when a request carries more rows than the service accepts."""
    if rows > max_rows:
        raise RequestError(
            f"request has {rows:,} rows; the limit is {max_rows:,} (--max-rows)", status=413
        )
    if rows == 0:
        raise RequestError("request has no rows")
