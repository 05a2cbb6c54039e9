"""Streamed drift's passes run partition-parallel on a pool of workers, typically a Dask
cluster.

With an executor (a :class:`concurrent.futures.Executor`: a Dask client's
``get_executor()``, :mod:`model.cluster`), :class:`model.drift.stream.ParquetSides` hands
each pass over a column to :class:`FragmentPasses`: the column is cut into fragments (a
file's consecutive row groups, about ``memory_budget / 128`` rows each), each read by a
worker. The workers read their fragments by path, so they must see the same files (on a
cluster: a shared file system or object store mount); what comes back is merged here, in
fragment order, into what the single-machine pass makes:

- the opening pass: each fragment's checks, missing values and first value per column
  (:class:`model.drift.sources.ColumnLook`, rows counted from the fragment's first row);
- a numeric column: each fragment's values sorted into a file of the scratch folder
  (which the workers must share), the files merged into the one sorted column
  (:func:`model.external.merge_to_file`) that the statistics read;
- a categorical column and the target: each fragment's level counts
  (:class:`model.drift.categorical.LevelCounts`), merged in order (levels keep their order
  of first appearance); whether a float column is integral, each fragment's answer.

The report is the single-machine streamed report, byte for byte (a test compares them). The
model's sample is read by the caller, as on one machine. Each worker holds about
``memory_budget``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from model.data.fragments import Fragment, file_fragments
from model.drift.categorical import LevelCounts
from model.drift.detect import ColumnProfile, all_integral, category_text
from model.drift.sources import ColumnLook, ParquetSource, column_batches, series_of
from model.errors import DriftInputError, RetrainError
from model.external import SortedFile, merge_to_file, sort_to_file


@dataclass(frozen=True)
class Levels:
    """How a column's chunk is counted: the target's present values (as text when
    ``as_text``), or a categorical column's values (as data preparation writes them when
    ``as_text``; ``integral``: whether the whole float column holds integral values)."""

    target: bool
    as_text: bool
    integral: bool | None

    def of(self, series: pd.Series) -> pd.Series:
        if self.target:
            present = series.dropna()
            return present.astype(str) if self.as_text else present
        return category_text(series, self.integral) if self.as_text else series


def integral_parts(chunks: Iterable[pd.Series]) -> bool | None:
    """Whether the chunks' values are all integral (None: no chunk holds a value)."""
    seen = [all_integral(s) for s in chunks if s.notna().any()]
    return all(seen) if seen else None


def float_values(array: pa.Array, column: str) -> np.ndarray:
    """A numeric column's values as float64, missing values as NaN."""
    try:
        values = pc.cast(array, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DriftInputError(f"column {column!r} of type {array.type} is not numeric") from exc
    return values.to_numpy(zero_copy_only=False)  # nulls become NaN


def fragments(src: ParquetSource, most_rows: int) -> list[Fragment]:
    """``src``'s files cut into fragments of whole row groups, at most ``most_rows`` rows each
    (a larger row group alone)."""
    return file_fragments(src.files, most_rows)


@dataclass(frozen=True)
class Read:
    """A column of a fragment as its source's schema types it; ``empty``: the source holds
    no value of it (read as missing values, as :class:`ParquetSides` reads it)."""

    fragment: Fragment
    column: str
    kind: pa.DataType
    rows: int
    empty: bool = False

    def arrays(self, dictionary: bool = False) -> Iterator[pa.Array]:
        if self.empty:
            for start in range(0, self.fragment.rows, self.rows):
                yield pa.nulls(min(self.rows, self.fragment.rows - start))
            return
        yield from column_batches(
            self.fragment.file,
            self.column,
            self.kind,
            self.rows,
            self.fragment.row_groups,
            dictionary=dictionary,
        )


# ---------------------------------------------------------------- what a worker runs


def look_fragment(
    fragment: Fragment, schema: pa.Schema, rows: int
) -> dict[str, ColumnLook | RetrainError]:
    """Each column's :class:`ColumnLook` of one fragment, or the error reading it raised
    (raised by the caller in the single-machine pass's order: column by column)."""
    looks: dict[str, ColumnLook | RetrainError] = {}
    for field in schema:
        look = ColumnLook(field.type, fragment.start)
        try:
            for array in Read(fragment, field.name, field.type, rows).arrays(dictionary=True):
                look.add(array)
        except RetrainError as exc:
            looks[field.name] = exc
            continue
        looks[field.name] = look
    return looks


def sort_fragment(read: Read, path: Path, budget: int) -> SortedFile:
    """A fragment's numeric values, sorted into ``path``."""
    return sort_to_file((float_values(a, read.column) for a in read.arrays()), path, budget)


def count_fragment(read: Read, whole: ColumnProfile, levels: Levels) -> LevelCounts:
    counts = LevelCounts()
    for array in read.arrays():
        counts.add(levels.of(series_of(array, whole)))
    return counts


def integral_fragment(read: Read, whole: ColumnProfile) -> bool | None:
    return integral_parts(series_of(a, whole) for a in read.arrays())


# ---------------------------------------------------------------- the caller's side


class FragmentPasses:
    """The passes over Parquet sources that :class:`model.drift.stream.ParquetSides` makes,
    made by ``executor``'s workers fragment by fragment (see the module's text)."""

    def __init__(self, executor: Executor, memory_budget: int) -> None:
        self.executor = executor
        self.budget = memory_budget
        self.fragment_rows = max(1024, memory_budget // 128)
        self._fragments: dict[str, list[Fragment]] = {}  # by source: footers read once

    def open(self, source: str | os.PathLike[str], rows: int) -> ParquetSource:
        """:meth:`ParquetSource.open`: the layout here, the opening pass on the workers."""
        src = ParquetSource.layout(source)
        parts = self._fragments[src.label] = fragments(src, self.fragment_rows)
        n = len(parts)
        found = list(self.executor.map(look_fragment, parts, [src.schema] * n, [rows] * n))
        for field in src.schema:  # as the single-machine pass: a column's first error, in order
            merged = ColumnLook(field.type)
            for looks in found:
                look = looks[field.name]
                if isinstance(look, RetrainError):
                    raise look
                merged.merge(look)
            rows_all = src.profile.rows
            src.profile.columns[field.name] = merged.profile(src.label, field.name, rows_all)
        return src

    def reads(self, sources: list[ParquetSource], column: str, rows: int) -> list[Read]:
        """The fragments of a side's sources, ``column`` of each (a source holding no value
        of it: missing values)."""
        reads = []
        for src in sources:
            own = src.profile.columns.get(column)
            empty = own is None or not own.values
            kind = pa.null() if empty else src.schema.field(column).type
            if src.label not in self._fragments:
                self._fragments[src.label] = fragments(src, self.fragment_rows)
            for fragment in self._fragments[src.label]:
                reads.append(Read(fragment, column, kind, rows, empty))
        return reads

    def sorted(self, reads: list[Read], path: Path) -> SortedFile:
        """The numeric values of ``reads`` sorted into ``path`` (its folder: shared)."""
        paths = [path.with_name(f"{path.name}-{i}") for i in range(len(reads))]
        runs = self.executor.map(sort_fragment, reads, paths, [self.budget] * len(reads))
        return merge_to_file(list(runs), path, self.budget)

    def counts(self, reads: list[Read], whole: ColumnProfile, levels: Levels) -> LevelCounts:
        counts = LevelCounts()
        n = len(reads)
        for part in self.executor.map(count_fragment, reads, [whole] * n, [levels] * n):
            counts.merge(part)
        return counts

    def integral(self, reads: list[Read], whole: ColumnProfile) -> bool:
        answers = self.executor.map(integral_fragment, reads, [whole] * len(reads))
        known = [a for a in answers if a is not None]
        return bool(known) and all(known)
