"""Parquet sources read in record batches, as :func:`model.data.read_sources` reads them whole.

A :class:`StreamedSource` is one Parquet file or folder laid out from its footers (files,
the schema it is read with, rows). :func:`open_streamed` lays out all the sources of one
preparation, or returns None when one of them is read whole anyway (a DataFrame, CSV files,
``key=value`` partition folders). :meth:`StreamedSources.check` makes the checks reading
them whole makes (column names, infinite numbers, mixed types, page checksums, agreeing
types) one column at a time, and counts what the schema policy needs (all-missing columns)
and the numbers a model cannot read, per source. :meth:`StreamedSources.tables` then reads
every row in order, ``rows`` at a time, typed as the concatenated table would be, and a
:class:`FilledReader` with the schema policy's values filled in and the split codes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.data.checks import _check_schemas_agree, _check_source, check_column
from model.data.messages import brief, quote
from model.data.read import (
    _drop_index_columns,
    parquet_error,
    parquet_layout,
)
from model.data.schema import _all_missing
from model.data.source import SourceTable
from model.data.validate import _is_numeric_type, column_range_problem
from model.errors import DataValidationError

WIDE_VALUE_BYTES = 32
"""What a text (or other variable-width) value is taken to cost in memory, per row."""


def parquet_batches(
    path: Path, columns: list[str] | None, rows: int, row_groups: Sequence[int] | None = None
) -> Iterator[pa.RecordBatch]:
    """``path``'s record batches of ``rows`` rows (of its ``row_groups``; None: all),
    ``columns`` only (those it has; None: all), pages checked against their checksums as
    :func:`model.data.read_table` checks them."""
    try:
        # pre-buffering would hold whole column chunks
        reader = pq.ParquetFile(path, pre_buffer=False, page_checksum_verification=True)
        present = [c for c in columns if c in reader.schema_arrow.names] if columns else None
        yield from reader.iter_batches(batch_size=rows, row_groups=row_groups, columns=present)
    except (pa.ArrowException, OSError) as exc:
        raise parquet_error(path, exc) from exc


@dataclass
class StreamedSource:
    """One Parquet file or folder: where it is, its files, the schema it is read with
    (index columns left out), and its rows."""

    label: str
    kind: str
    files: list[Path]
    schema: pa.Schema
    rows: int

    def part(self) -> SourceTable:
        """The source as the reading code sees it: its schema, files and rows, no values."""
        return SourceTable(
            self.schema.empty_table(),
            self.label,
            self.kind,
            [f.as_posix() for f in self.files],
            [],
            rows=self.rows,
        )

    def tables(self, columns: Sequence[str], rows: int) -> Iterator[pa.Table]:
        """``columns`` of every row in order, at most ``rows`` at a time, typed by the
        source's schema (a file without a column: missing values, as the dataset reads it)."""
        for f in self.files:
            for batch in parquet_batches(f, list(columns), rows):
                yield _typed(batch, columns, self.schema, f"{f}: column")


@dataclass
class StreamedSources:
    """The sources of one preparation, streamed: each source, the schema of their
    concatenation, and what :meth:`check` counted."""

    sources: list[StreamedSource]
    schema: pa.Schema = field(default_factory=lambda: pa.schema([]))
    all_missing: dict[tuple[int, str], bool] = field(default_factory=dict)
    range_problems: dict[tuple[int, str], str] = field(default_factory=dict)
    combine_problem: str | None = None

    @property
    def parts(self) -> list[SourceTable]:
        return [s.part() for s in self.sources]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sources)

    def row_bytes(self) -> int:
        """What one row takes in memory, estimated from the types."""
        return sum(_value_bytes(f.type) for f in self.schema) or 8

    def check(self, rows: int) -> None:
        """The checks of reading the sources whole, ``rows`` rows at a time (each source's
        columns in turn: names, infinite numbers, mixed types, checksums; then that their
        types agree), and, per source and column, whether it holds only missing values and
        the first number beyond float32's range."""
        parts = self.parts
        self.schema = parts[0].table.schema
        if len(parts) > 1:
            tables = [p.table for p in parts]
            # the types of the concatenation, from the footers; a clash is told below, after
            # the sources' own checks, as reading whole tells it
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                self.schema = pa.concat_tables(tables, promote_options="permissive").schema
        for i, source in enumerate(self.sources):
            _check_source(SourceTable(source.schema.empty_table(), source.label, source.kind))
            for name in source.schema.names:
                check_column(source.label, name, self._counted(i, name, rows))
        if len(parts) > 1:
            _check_schemas_agree(parts)
            labels = [p.label for p in parts]
            try:
                pa.concat_tables([p.table for p in parts], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                self.combine_problem = self.combine_problem or brief(exc)
            if self.combine_problem:
                raise DataValidationError(
                    f"{labels}: sources cannot be combined: {self.combine_problem}"
                )
        if self.rows == 0:
            labels = [p.label for p in parts]
            raise DataValidationError(f"{', '.join(labels)}: empty input (no rows)")

    def _counted(self, i: int, name: str, rows: int) -> Iterator[pa.Array]:
        source = self.sources[i]
        offset = 0
        self.all_missing[(i, name)] = True
        for table in source.tables([name], rows):
            array = table.column(0).combine_chunks()
            if self.all_missing[(i, name)] and not _all_missing(table.column(0)):
                self.all_missing[(i, name)] = False
            if (i, name) not in self.range_problems:
                problem = column_range_problem(array, name, source.label, offset)
                if problem is not None:
                    self.range_problems[(i, name)] = problem
            offset += len(array)
            kind = self.schema.field(name).type if name in self.schema.names else array.type
            if array.type != kind and self.combine_problem is None:
                try:  # as concatenating the sources whole casts them
                    array.cast(kind)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    self.combine_problem = brief(exc)
            yield array

    def tables(self, columns: Sequence[str], rows: int) -> Iterator[tuple[int, pa.Table]]:
        """Every row of ``columns`` in order, at most ``rows`` at a time, with the source it
        came from (its index), typed as the sources' concatenation types it (a column a
        source lacks: missing values)."""
        for i, source in enumerate(self.sources):
            own = [c for c in columns if c in source.schema.names]
            # none of them: one column read all the same, for the rows (the rest: missing)
            for table in source.tables(own or source.schema.names[:1], rows):
                labels = [s.label for s in self.sources]
                yield (
                    i,
                    _typed(
                        table, columns, self.schema, f"{labels}: sources cannot be combined: column"
                    ),
                )


class FilledReader:
    """The rows of the sources, pass after pass, with the schema policy's values filled in
    (a column with one: float64 in every source), and the split codes once known."""

    def __init__(
        self, streamed: StreamedSources, rows: int, fills: Mapping[tuple[int, str], float]
    ) -> None:
        self.streamed = streamed
        self.rows = rows
        self.fills = dict(fills)
        self.floats = {c for _, c in fills}
        self.codes_path: Path | None = None

    def tables(self, columns: Sequence[str]) -> Iterator[tuple[int, int, pa.Table]]:
        """(source index, first row, table) for every ``rows`` rows, in order."""
        offset = 0
        for i, table in self.streamed.tables(columns, self.rows):
            for name in self.floats.intersection(columns):
                col = pc.cast(table.column(name), pa.float64())
                if (i, name) in self.fills:
                    col = pa.chunked_array([pa.repeat(pa.scalar(self.fills[(i, name)]), len(col))])
                table = table.set_column(table.schema.get_field_index(name), name, col)
            yield i, offset, table
            offset += table.num_rows

    def with_codes(self, columns: Sequence[str]) -> Iterator[tuple[int, pa.Table, np.ndarray]]:
        """As :meth:`tables`, with each row's split code (from the scratch file)."""
        assert self.codes_path is not None
        with open(self.codes_path, "rb") as f:
            for i, _, table in self.tables(columns):
                yield i, table, np.fromfile(f, dtype=np.int8, count=table.num_rows)


def open_streamed(
    sources: Sequence[str | os.PathLike[str] | pd.DataFrame],
) -> StreamedSources | None:
    """The sources laid out for streaming (footers only), or None when one of them is read
    whole anyway: a DataFrame, CSV files, ``key=value`` partition folders."""
    try:
        return _laid_out(sources)
    except DataValidationError:
        return None  # reading whole says what is wrong, in its words


def _laid_out(
    sources: Sequence[str | os.PathLike[str] | pd.DataFrame],
) -> StreamedSources | None:
    out = []
    for source in sources:
        if isinstance(source, pd.DataFrame):
            return None
        given = Path(source).expanduser().absolute()
        try:
            path = given.resolve()
        except (RuntimeError, OSError):
            return None  # reading it whole says what is wrong
        layout = parquet_layout(path)
        if layout is None:
            return None
        files, schema = layout
        label = path.as_posix()
        schema = _drop_index_columns(schema.empty_table(), label).schema
        try:
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        except (pa.ArrowException, OSError) as exc:
            raise parquet_error(files[0], exc) from exc
        kind = "parquet-folder" if path.is_dir() else "parquet"
        out.append(StreamedSource(label, kind, files, schema, rows))
    return StreamedSources(out)


def _typed(
    data: pa.Table | pa.RecordBatch, columns: Sequence[str], schema: pa.Schema, where: str
) -> pa.Table:
    """``columns`` of ``data`` typed by ``schema`` (a column ``data`` lacks: missing values);
    a value that does not convert is an error saying ``where``, the column and why."""
    arrays = []
    for name in columns:
        kind = schema.field(name).type
        if name not in data.schema.names:
            arrays.append(pa.nulls(data.num_rows, kind))
            continue
        array = data.column(name)
        try:
            arrays.append(array if array.type == kind else array.cast(kind))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataValidationError(
                f"{where} {quote(name)} cannot be read as {kind}: {brief(exc)}"
            ) from exc
    return pa.table(arrays, names=list(columns))


def _value_bytes(kind: pa.DataType) -> int:
    plain = kind.value_type if pa.types.is_dictionary(kind) else kind
    if _is_numeric_type(plain) or pa.types.is_boolean(plain) or pa.types.is_temporal(plain):
        return 8
    return WIDE_VALUE_BYTES
