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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.data.checks import ColumnCheck, _check_schemas_agree, _check_source, check_column
from model.data.fragments import Fragment, Part, file_fragments
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
    path: Path,
    columns: list[str] | None,
    rows: int,
    row_groups: Sequence[int] | None = None,
    dictionary: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """``path``'s record batches of ``rows`` rows (of its ``row_groups``; None: all),
    ``columns`` only (those it has; None: all), pages checked against their checksums as
    :func:`model.data.read_table` checks them; the text columns named in ``dictionary`` read
    as dictionaries (each distinct value once, and a code per row)."""
    try:
        # pre-buffering would hold whole column chunks
        reader = pq.ParquetFile(
            path,
            pre_buffer=False,
            page_checksum_verification=True,
            read_dictionary=list(dictionary) or None,
        )
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

    def tables(
        self, columns: Sequence[str], rows: int, fragment: Fragment | None = None
    ) -> Iterator[pa.Table]:
        """``columns`` of every row in order (of ``fragment`` only, when given), at most
        ``rows`` at a time, typed by the source's schema (a file without a column: missing
        values, as the dataset reads it)."""
        if fragment is not None:
            for batch in parquet_batches(fragment.file, list(columns), rows, fragment.row_groups):
                yield _typed(batch, columns, self.schema, f"{fragment.file}: column")
            return
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

    def check(self, rows: int, counter: Counter | None = None) -> None:
        """The checks of reading the sources whole, ``rows`` rows at a time (each source's
        columns in turn: names, infinite numbers, mixed types, checksums; then that their
        types agree), and, per source and column, whether it holds only missing values and
        the first number beyond float32's range. ``counter`` (say
        :func:`model.data.stream_parallel.counted_columns` on a Dask cluster's workers) counts
        the columns its own way."""
        parts = self.parts
        self.schema = parts[0].table.schema
        if len(parts) > 1:
            tables = [p.table for p in parts]
            # the types of the concatenation, from the footers; a clash is told below, after
            # the sources' own checks, as reading whole tells it
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                self.schema = pa.concat_tables(tables, promote_options="permissive").schema
        counted = counter(self, rows) if counter is not None else None
        for i, source in enumerate(self.sources):
            _check_source(SourceTable(source.schema.empty_table(), source.label, source.kind))
            for name in source.schema.names:
                if counted is None:
                    check_column(source.label, name, self._counted(i, name, rows))
                    continue
                check = ColumnCheck()
                for count in counted(i, name):
                    check.merge(count.check)
                    self.merge_count(i, name, count)
                check.verify(source.label, name)
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
        count = self.count_column(i, name, rows)
        yield from count.arrays
        self.merge_count(i, name, count)

    def count_column(
        self, i: int, name: str, rows: int, fragment: Fragment | None = None
    ) -> ColumnCount:
        """What the checking pass counts of column ``name`` of source ``i`` (of ``fragment``
        only, when given); its ``arrays`` are the column's pieces, counted as read."""
        start = fragment.start if fragment is not None else 0
        kind = self.schema.field(name).type if name in self.schema.names else None
        return ColumnCount(
            self.sources[i].label, name, kind, start, self.sources[i].tables([name], rows, fragment)
        )

    def merge_count(self, i: int, name: str, count: ColumnCount) -> None:
        """Record a column's counts (the next fragment's, in order)."""
        key = (i, name)
        self.all_missing[key] = self.all_missing.get(key, True) and count.all_missing
        if key not in self.range_problems and count.range_problem is not None:
            self.range_problems[key] = count.range_problem
        self.combine_problem = self.combine_problem or count.combine_problem

    def parts_of(self, most_rows: int) -> list[Part]:
        """Every source cut into fragments of at most ``most_rows`` rows, in order."""
        out, offset = [], 0
        for i, source in enumerate(self.sources):
            for fragment in file_fragments(source.files, most_rows):
                out.append(Part(i, fragment, offset + fragment.start))
            offset += source.rows
        return out

    def tables(
        self, columns: Sequence[str], rows: int, part: Part | None = None
    ) -> Iterator[tuple[int, pa.Table]]:
        """Every row of ``columns`` in order (of ``part`` only, when given), at most ``rows``
        at a time, with the source it came from (its index), typed as the sources'
        concatenation types it (a column a source lacks: missing values)."""
        labels = [s.label for s in self.sources]
        where = f"{labels}: sources cannot be combined: column"
        for i, source in enumerate(self.sources):
            if part is not None and part.source != i:
                continue
            own = [c for c in columns if c in source.schema.names]
            fragment = part.fragment if part is not None else None
            # none of them: one column read all the same, for the rows (the rest: missing)
            for table in source.tables(own or source.schema.names[:1], rows, fragment):
                yield i, _typed(table, columns, self.schema, where)


Counter = Callable[["StreamedSources", int], Callable[[int, str], Iterator["ColumnCount"]]]
"""Counts every column of the sources (``rows`` at a time); then ``counted(i, name)`` gives
column ``name`` of source ``i`` part by part, in order."""


class ColumnCount:
    """What the checking pass counts of one column of one source, piece by piece as
    ``tables`` gives them (its ``arrays``): the checks of reading whole
    (:class:`model.data.checks.ColumnCheck`), whether it holds only missing values, the
    first number beyond float32's range and the first value the sources' concatenation
    cannot cast. ``start``: the row of the source the pieces start at."""

    def __init__(
        self,
        label: str,
        name: str,
        kind: pa.DataType | None,
        start: int,
        tables: Iterator[pa.Table],
    ) -> None:
        self.label, self.name, self.kind = label, name, kind
        self.check = ColumnCheck(start)
        self.offset = start
        self.all_missing = True
        self.range_problem: str | None = None
        self.combine_problem: str | None = None
        self._tables = tables

    @property
    def arrays(self) -> Iterator[pa.Array]:
        for table in self._tables:
            array = table.column(0).combine_chunks()
            if self.all_missing and not _all_missing(table.column(0)):
                self.all_missing = False
            if self.range_problem is None:
                self.range_problem = column_range_problem(array, self.name, self.label, self.offset)
            self.offset += len(array)
            kind = self.kind or array.type
            if array.type != kind and self.combine_problem is None:
                try:  # as concatenating the sources whole casts them
                    array.cast(kind)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    self.combine_problem = brief(exc)
            yield array

    def run(self) -> ColumnCount:
        """Count every piece (on a worker: the checks travel back, the pieces do not)."""
        for array in self.arrays:
            self.check.add(array)
        self._tables = iter(())
        return self


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

    def tables(
        self, columns: Sequence[str], part: Part | None = None
    ) -> Iterator[tuple[int, int, pa.Table]]:
        """(source index, first row, table) for every ``rows`` rows (of ``part`` only, when
        given), in order."""
        offset = part.offset if part is not None else 0
        for i, table in self.streamed.tables(columns, self.rows, part):
            for name in self.floats.intersection(columns):
                col = pc.cast(table.column(name), pa.float64())
                if (i, name) in self.fills:
                    col = pa.chunked_array([pa.repeat(pa.scalar(self.fills[(i, name)]), len(col))])
                table = table.set_column(table.schema.get_field_index(name), name, col)
            yield i, offset, table
            offset += table.num_rows

    def with_codes(
        self, columns: Sequence[str], part: Part | None = None
    ) -> Iterator[tuple[int, pa.Table, np.ndarray]]:
        """As :meth:`tables`, with each row's split code (from the scratch file)."""
        assert self.codes_path is not None
        with open(self.codes_path, "rb") as f:
            f.seek(part.offset if part is not None else 0)  # one byte a row
            for i, _, table in self.tables(columns, part):
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
