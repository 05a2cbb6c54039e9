"""Parquet sources read in batches, as :func:`model.data.read_table` would read them whole.

:class:`ParquetSource` lays a source out from its footers, checks it as ``read_table``
checks it (one column at a time), and profiles its columns as pandas types the whole column
(integers with missing values are floats, booleans with missing values objects); the helpers
read a column's batches, pick rows, and estimate what a source takes read whole
(:func:`in_memory_size`). Used by :mod:`model.drift.stream`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.data.messages import brief
from model.data.stream_source import parquet_batches
from model.data.validate import _is_string_type
from model.drift.detect import ColumnProfile, Profile
from model.errors import DriftInputError, RetrainError

MAX_BATCH_ROWS = 1 << 18  # larger batches only grow the reader's and allocator's buffers


@dataclass
class ParquetSource:
    """One source (a Parquet file or folder): its files, the schema it is read with, the
    rows of each file, and its column profiles."""

    label: str
    files: list[Path]
    schema: pa.Schema
    file_rows: list[int]
    profile: Profile

    @classmethod
    def open(cls, source: str | os.PathLike[str], rows: int = MAX_BATCH_ROWS) -> ParquetSource:
        """The source's layout from its footers, then one pass over each column (``rows``
        rows at a time): the checks :func:`model.data.read_table` makes of the whole source
        (names, infinite numbers, mixed types, page checksums), its missing values and its
        first value."""
        src = cls.layout(source)
        for field in src.schema:
            look = ColumnLook(field.type)
            for array in src.batches(field.name, rows, dictionary=True):
                look.add(array)
            src.profile.columns[field.name] = look.profile(src.label, field.name, src.profile.rows)
        return src

    @classmethod
    def layout(cls, source: str | os.PathLike[str]) -> ParquetSource:
        """The source from its footers (files, schema, rows), its names checked; no column
        profiles yet."""
        from model.data import parquet_layout
        from model.data.checks import _check_source
        from model.data.read import INDEX_COLUMN
        from model.data.source import SourceTable

        layout = parquet_layout(source)
        if layout is None:
            raise DriftInputError(f"{source}: CSV or partitioned data is read whole, not streamed")
        files, schema = layout
        label = Path(source).expanduser().absolute().resolve().as_posix()
        schema = pa.schema([f for f in schema if not INDEX_COLUMN.match(f.name)])
        _check_source(SourceTable(schema.empty_table(), label, "parquet"))  # names only
        try:
            file_rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(files[0] if len(files) == 1 else Path(label), exc) from exc
        return cls(label, files, schema, file_rows, Profile(sum(file_rows), {}))

    def batches(self, column: str, rows: int, dictionary: bool = False) -> Iterator[pa.Array]:
        """One column, ``rows`` rows at a time, as the source's schema types it (a file
        without it: missing values; ``dictionary``: text as dictionaries of that type)."""
        kind = self.schema.field(column).type
        for f in self.files:
            yield from column_batches(f, column, kind, rows, dictionary=dictionary)


def column_batches(
    f: Path,
    column: str,
    kind: pa.DataType,
    rows: int,
    row_groups: Sequence[int] | None = None,
    dictionary: bool = False,
) -> Iterator[pa.Array]:
    """One column of file ``f`` (of its ``row_groups``; None: all), ``rows`` rows at a time,
    as ``kind`` (a file without the column: missing values). ``dictionary``: a text column
    comes as a dictionary array whose values are of ``kind`` (what the opening checks read:
    each distinct value once)."""
    text = dictionary and _is_string_type(kind)
    for batch in parquet_batches(f, [column], rows, row_groups, [column] if text else ()):
        if not batch.num_columns:
            yield pa.nulls(batch.num_rows, kind)
            continue
        array = batch.column(0)
        if pa.types.is_dictionary(array.type):
            if array.type.value_type == kind:
                yield array
                continue
            array = array.dictionary_decode()
        try:
            yield array if array.type == kind else array.cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DriftInputError(
                f"{f}: column {column!r} cannot be read as {kind}: {brief(exc)}"
            ) from exc


class ColumnLook:
    """What the opening pass learns of a column, piece by piece (a part of it, say one
    file's row groups on a Dask worker, starts at row ``offset``; parts merge in order):
    its checks (:class:`model.data.checks.ColumnCheck`), missing values and first value."""

    def __init__(self, kind: pa.DataType, offset: int = 0) -> None:
        from model.data.checks import ColumnCheck

        self.kind = kind
        self.check = ColumnCheck(offset)
        self.nulls = 0
        self.example: Any = None

    def add(self, array: pa.Array) -> None:
        self.check.add(array)
        self.nulls += array.null_count
        if self.example is None and array.null_count < len(array):
            self.example = array.drop_null()[0].as_py()

    def merge(self, later: ColumnLook) -> None:
        self.check.merge(later.check)
        self.nulls += later.nulls
        self.example = later.example if self.example is None else self.example

    def profile(self, label: str, name: str, rows: int) -> ColumnProfile:
        """The column's profile, once its checks pass."""
        self.check.verify(label, name)
        values = rows - self.nulls
        return _profile(self.kind, values, rows, self.example if values else None)


def _unreadable(f: Path, exc: Exception) -> RetrainError:
    from model.data.read import parquet_error

    return parquet_error(f, exc)


def _profile(kind: pa.DataType, values: int, rows: int, example: Any) -> ColumnProfile:
    """A column's profile as pandas reads the whole column (``read_table``): its kind and
    dtype (integers with missing values are floats, booleans with them objects)."""
    has_nulls = values < rows
    plain = kind.value_type if pa.types.is_dictionary(kind) else kind
    try:
        dtype = np.dtype(plain.to_pandas_dtype()).name
    except (NotImplementedError, TypeError):
        dtype = "object"
    if pa.types.is_boolean(plain):
        kind_name = "text" if has_nulls else "bool"  # pandas: objects, True/False/None
        dtype = "object" if has_nulls else "bool"
    elif pa.types.is_integer(plain) or pa.types.is_floating(plain):
        kind_name = "numeric"
        if has_nulls and pa.types.is_integer(plain):
            dtype = "float64"
    elif pa.types.is_timestamp(plain) or pa.types.is_date(plain):
        kind_name = "datetime"
    else:
        kind_name = "text"
    if pa.types.is_dictionary(kind):
        dtype = "category"
    return ColumnProfile(kind_name, values, dtype, example)


def combined_profile(parts: Sequence[ParquetSource]) -> Profile:
    """The profile of the parts concatenated as the monitor concatenates frames (a part's
    column with no values dropped first: missing there; integers and floats make floats)."""
    rows = sum(p.profile.rows for p in parts)
    names: dict[str, None] = {}
    for p in parts:
        names.update(dict.fromkeys(p.profile.columns))
    columns = {}
    for name in names:
        holding = [p for p in parts if name in p.profile.columns and p.profile.columns[name].values]
        values = sum(p.profile.columns[name].values for p in holding)
        kind = _unified([p.schema.field(name).type for p in holding]) if holding else pa.null()
        example = holding[0].profile.columns[name].example if holding else None
        columns[name] = _profile(kind, values, rows, example)
    return Profile(rows, columns)


def _unified(kinds: list[pa.DataType]) -> pa.DataType:
    if len(set(kinds)) == 1:
        return kinds[0]
    try:
        schemas = [pa.schema([("c", k)]) for k in kinds]
        return pa.unify_schemas(schemas, promote_options="permissive").field("c").type
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.string()  # pandas would hold objects of several types: text


def frame_of(table: pa.Table, profile: Profile) -> pd.DataFrame:
    frame = table.to_pandas(date_as_object=False)
    for name, column in profile.columns.items():
        if name in frame.columns:
            frame[name] = whole_dtype(frame[name], column)
    return frame


WIDE_VALUE_BYTES = 64
"""What one text (or other non-numeric) value costs in memory, read into pandas."""


def in_memory_size(sources: Sequence[str | os.PathLike[str]]) -> int | None:
    """What the sources take read whole into pandas, estimated from their footers (rows
    times 8 bytes a numeric, boolean or time value, :data:`WIDE_VALUE_BYTES` any other);
    None when a source holds CSV files or partition folders (read whole)."""
    from model.data import parquet_layout

    total = 0
    for source in sources:
        layout = parquet_layout(source)
        if layout is None:
            return None
        files, schema = layout
        width = sum(_value_bytes(field.type) for field in schema)
        for f in files:
            try:
                total += pq.ParquetFile(f).metadata.num_rows * width
            except (pa.ArrowException, OSError) as exc:
                raise _unreadable(f, exc) from exc
    return total


def _value_bytes(kind: pa.DataType) -> int:
    plain = kind.value_type if pa.types.is_dictionary(kind) else kind
    if (
        pa.types.is_integer(plain)
        or pa.types.is_floating(plain)
        or pa.types.is_boolean(plain)
        or pa.types.is_temporal(plain)
    ):
        return 8
    return WIDE_VALUE_BYTES


def take_rows(
    src: ParquetSource, columns: list[str], pick: np.ndarray | None, start: int, rows: int
) -> pa.Table:
    """Rows ``pick`` (global numbers; None: all) of ``src``, whose first row is ``start``."""
    schema = pa.schema([src.schema.field(c) for c in columns])
    pieces = []
    offset = start
    for f, n in zip(src.files, src.file_rows, strict=True):
        if pick is not None:
            lo, hi = np.searchsorted(pick, [offset, offset + n])
            if lo == hi:
                offset += n
                continue
        for batch in parquet_batches(f, columns, rows):
            table = pa.Table.from_batches([batch])
            for c in columns:  # a column the file lacks (the log's reserved ones): null
                if c not in table.column_names:
                    table = table.append_column(c, pa.nulls(table.num_rows))
            try:
                table = table.select(columns).cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DriftInputError(f"{f}: cannot be read as {schema}: {brief(exc)}") from exc
            if pick is not None:
                lo, hi = np.searchsorted(pick, [offset, offset + table.num_rows])
                table = table.take(pa.array(pick[lo:hi] - offset))
            pieces.append(table)
            offset += batch.num_rows
    return pa.concat_tables(pieces) if pieces else schema.empty_table()


def series_of(array: pa.Array, whole: ColumnProfile) -> pd.Series:
    return whole_dtype(array.to_pandas(), whole)


def whole_dtype(series: pd.Series, whole: ColumnProfile) -> pd.Series:
    """``series`` (a part of a column) with the dtype of the whole column read by pandas."""
    if whole.dtype == "object" and pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(object)
    if whole.dtype.startswith("float") and pd.api.types.is_integer_dtype(series.dtype):
        return series.astype("float64")
    return series
