"""The statistics pass of a streamed preparation (:mod:`model.data.stream_prepare`, pass 2)
and its medians (pass 3).

:class:`Statistics` reads every row once: missing values, level lengths, the target's
labels, the split keys (their codes to a scratch file, one byte a row; their duplicates
counted bucket by bucket, each bucket's keys in memory) or a time split's timestamps (to a
scratch file, then its cuts as exact order statistics); then it raises the in-memory path's
errors in its order. :func:`medians` gives the numeric columns' training medians, exact, by
radix selection (:mod:`model.data.select`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.data.fragments import Part
from model.data.messages import brief, quote
from model.data.select import (
    Scan,
    float_keys,
    int_keys,
    key_floats,
    key_ints,
    order_statistics,
)
from model.data.spec import FeatureSpec
from model.data.split import _check_splits_not_empty, assign_hash_splits, row_keys
from model.data.stream_source import FilledReader
from model.data.validate import (
    _first_true,
    float_values,
    level_length_problem,
    missing_count,
    target_missing,
    target_positive,
)
from model.errors import DataValidationError

MAX_LABELS = 1000
"""Distinct target labels kept to report a target that is not binary."""
MAX_BUCKETS = 256
"""Files the split keys are spread over to count their duplicates (each read in blocks)."""


class Statistics:
    """The statistics pass (see the module, pass 2) and the checks that follow it, in the
    in-memory path's order; leaves the split codes in a scratch file."""

    def __init__(
        self,
        spec: FeatureSpec,
        columns: list[str],
        fractions: tuple[float, float, float],
        time_split: bool,
        salt: str,
        label: str,
    ) -> None:
        self.spec, self.fractions, self.time_split = spec, fractions, time_split
        self.salt, self.label = salt, label
        self.checked = [c for c in (*spec.features, spec.id_column) if c is not None]
        self.levels = [*spec.categorical, spec.target]
        self.key_columns: list[str] = []
        if not time_split:
            ids = spec.id_column
            self.key_columns = [ids] if ids is not None else sorted(str(c) for c in columns)
        extra = [spec.timestamp_column] if time_split and spec.timestamp_column else []
        wanted = [*self.checked, spec.target, *self.key_columns, *extra]
        self.columns = list(dict.fromkeys(wanted))
        self.missing = dict.fromkeys(self.checked, 0)
        self.level_problems: dict[str, str] = {}
        self.target_nulls, self.target_first_null, self.target_nan = 0, -1, False
        self.labels: list[Any] = []
        self._seen: set[Any] = set()
        self.more_labels = False
        self.id_nulls, self.id_first_null = 0, -1
        self.time_problem: str | None = None
        self.positive: Any = None
        self.split_desc: dict[str, Any] = {"fractions": list(fractions)}
        self.split_rows = np.zeros(3, dtype=np.int64)
        self.rows = 0
        self.time_nulls = 0

    def run(
        self,
        reader: FilledReader,
        scratch: Path,
        memory_budget: int,
        parallel: ParallelScan | None = None,
    ) -> None:
        """The pass (by ``parallel`` when given, say
        :func:`model.data.stream_parallel.statistics_pass` on a Dask cluster's workers), then
        the checks, the split's codes and counts."""
        rows = self.rows = reader.streamed.rows
        # a bucket's distinct keys take at most a sixteenth of the budget (the union that
        # counts them: a few times that)
        buckets = min(MAX_BUCKETS, max(1, -(-rows * 8 * 16 // memory_budget)))
        codes_path = scratch / "codes.i8"
        ns_path = scratch / "time.i64"
        if parallel is None:
            self.scan(reader, None, ScanFiles(codes_path, ns_path, scratch / "keys", buckets))
            key_files = [[scratch / f"keys-{b}.u64"] for b in range(buckets)]
        else:
            key_files = parallel(self, reader, scratch, buckets)
        self._raise_problems()
        if self.time_split:
            self._time_codes(ns_path, codes_path, rows, memory_budget)
        else:
            self.split_desc.update(method="hash", key=self.key_columns, salt=self.salt)
            block = max(1 << 16, memory_budget // 8 // 16)
            distinct = sum(_distinct(paths, block) for paths in key_files)
            self.split_desc["duplicate_keys"] = int(rows - distinct) if rows else 0
            with open(codes_path, "rb") as f:
                while (codes := np.fromfile(f, np.int8, count=1 << 22)).size:
                    self.split_rows += np.bincount(codes, minlength=3)
        reader.codes_path = codes_path
        _check_splits_not_empty(self.split_rows, self.fractions, self.split_desc, self.label)

    def scan(self, reader: FilledReader, part: Part | None, files: ScanFiles) -> Statistics:
        """Count the rows (of ``part`` only, when given) and write their split codes and keys
        (or timestamps) to ``files``."""
        with contextlib.ExitStack() as stack:
            key_files = [
                stack.enter_context(open(files.keys(b), "wb")) for b in range(files.buckets)
            ]
            codes_file = stack.enter_context(open(files.codes, "wb"))
            ns_file = stack.enter_context(open(files.times, "wb"))
            for _, offset, table in reader.tables(self.columns, part):
                self._count(table, offset)
                if self.time_split:
                    if self.spec.timestamp_column is not None:
                        self._timestamps(table, ns_file)
                elif self.id_nulls == 0:
                    keys = row_keys(table, self.key_columns, self.salt)
                    assign_hash_splits(keys, self.fractions).tofile(codes_file)
                    _to_buckets(keys, key_files)
        return self

    def merge(self, later: Statistics) -> None:
        """Add the counts of the rows that follow (a later fragment's, in order)."""
        for name, count in later.missing.items():
            self.missing[name] += count
        for name, problem in later.level_problems.items():
            self.level_problems.setdefault(name, problem)
        if not self.target_nulls:
            self.target_first_null = later.target_first_null
        self.target_nulls += later.target_nulls
        self.target_nan = self.target_nan or later.target_nan
        if not self.more_labels:
            self._add_labels(later.labels)
        self.more_labels = self.more_labels or later.more_labels
        if not self.id_nulls:
            self.id_first_null = later.id_first_null
        self.id_nulls += later.id_nulls
        self.time_problem = self.time_problem or later.time_problem
        self.time_nulls += later.time_nulls

    def _count(self, table: pa.Table, offset: int) -> None:
        for name in self.checked:
            self.missing[name] += missing_count(table.column(name))
        for name in self.levels:
            if name not in self.level_problems:
                problem = level_length_problem(table.column(name), name, self.label, offset)
                if problem is not None:
                    self.level_problems[name] = problem
        col = table.column(self.spec.target)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.null_count:
            if not self.target_nulls:
                self.target_first_null = offset + _first_true(pc.is_null(col))
            self.target_nulls += col.null_count
        if pa.types.is_floating(col.type) and int(pc.sum(pc.is_nan(col)).as_py() or 0):
            self.target_nan = True
        if not self.more_labels:
            self._add_labels(pc.unique(col.drop_null()).to_pylist())
        if self.spec.id_column is not None and not self.time_split:
            ids = table.column(self.spec.id_column)
            if ids.null_count:
                if not self.id_nulls:
                    self.id_first_null = offset + _first_true(pc.is_null(ids))
                self.id_nulls += ids.null_count

    def _add_labels(self, values: list[Any]) -> None:
        """Keep the unseen ``values``, at most ``MAX_LABELS + 1`` labels in all; one left over
        means there are more (told as "more than ...")."""
        for value in values:
            if value in self._seen:
                continue
            if len(self.labels) > MAX_LABELS:
                self.more_labels = True
                return
            self._seen.add(value)
            self.labels.append(value)

    def _timestamps(self, table: pa.Table, ns_file: BinaryIO) -> None:
        column = str(self.spec.timestamp_column)
        col = table.column(column)
        if col.null_count or self.time_problem:
            self.time_nulls += col.null_count  # counted; named after the pass
            return
        try:
            ns = pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            self.time_problem = self.time_problem or (
                f"{self.label}: timestamp column {quote(column)} does not hold timestamps: "
                f"{brief(exc)}"
            )
            return
        np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64).tofile(ns_file)

    def _raise_problems(self) -> None:
        """The errors of the in-memory path after reading, in its order."""
        for name in self.checked:
            if self.missing[name] == self.rows:
                raise DataValidationError(
                    f"{self.label}: column {quote(name)} has only missing values"
                )
        for name in self.levels:
            if name in self.level_problems:
                raise DataValidationError(self.level_problems[name])
        target = self.spec.target
        if self.target_nulls:
            raise DataValidationError(
                target_missing(target, self.label, self.target_nulls, self.target_first_null)
            )
        if self.target_nan:
            raise DataValidationError(f"{self.label}: target column {quote(target)} has NaN values")
        self.positive = target_positive(self.labels, target, self.label, self.more_labels)
        if self.time_split:
            column = self.spec.timestamp_column
            if column is None:
                raise DataValidationError(
                    f"{self.label}: a time split needs a declared timestamp column"
                )
            if self.time_nulls:
                raise DataValidationError(
                    f"{self.label}: timestamp column {quote(column)} has {self.time_nulls} "
                    "missing value(s)"
                )
            if self.time_problem:
                raise DataValidationError(self.time_problem)
        elif self.id_nulls:
            raise DataValidationError(
                f"{self.label}: id column {quote(self.spec.id_column)} has {self.id_nulls} "
                f"missing value(s), first at row {self.id_first_null}"
            )

    def _time_codes(self, ns_path: Path, codes_path: Path, n: int, memory_budget: int) -> None:
        """A time split's codes (as :func:`model.data.split.assign_time_splits`): the cuts
        are exact order statistics of the timestamps."""
        self.split_desc.update(method="time", key=[self.spec.timestamp_column])
        cum = np.cumsum(np.asarray(self.fractions, dtype=np.float64))[:-1]
        ranks = [int(min(n - 1, max(0, np.ceil((n - 1) * q)))) if q > 0 else 0 for q in cum]
        block = max(1024, memory_budget // 64)

        def passes() -> Iterator[dict[str, np.ndarray]]:
            with open(ns_path, "rb") as f:
                while (values := np.fromfile(f, np.int64, count=block)).size:
                    yield {"t": int_keys(values)}

        found = order_statistics(passes, {"t": set(ranks)}, cap=block)["t"]
        cuts = [int(key_ints(np.array([found[r]], np.uint64))[0]) for r in ranks]
        with open(ns_path, "rb") as f, open(codes_path, "wb") as out:
            while (values := np.fromfile(f, np.int64, count=block)).size:
                codes = np.zeros(values.size, dtype=np.int8)
                for i, cut in enumerate(cuts, start=1):
                    if cum[i - 1] < 1.0:
                        codes[values >= cut] = i
                codes.tofile(out)
                self.split_rows += np.bincount(codes, minlength=3)


def _distinct(paths: Sequence[Path], block: int) -> int:
    """Distinct keys in a bucket's files, read ``block`` keys at a time: memory grows with
    the distinct keys only (a bucket of many copies of a few keys stays small)."""
    seen = np.empty(0, dtype=np.uint64)
    held: list[np.ndarray] = []  # the files' keys read since the last union: below a block
    count = 0
    for path in paths:
        with open(path, "rb") as f:
            while (keys := np.fromfile(f, np.uint64, count=block)).size:
                held.append(keys)
                count += keys.size
                if count >= block:
                    seen = np.union1d(seen, np.concatenate(held))
                    held, count = [], 0
    if held:
        seen = np.union1d(seen, np.concatenate(held))
    return int(seen.size)


ParallelScan = Callable[["Statistics", FilledReader, Path, int], list[list[Path]]]
"""``(stats, reader, scratch, buckets) -> each key bucket's files``: the statistics pass made
another way (its codes and timestamps in ``scratch/codes.i8``, ``scratch/time.i64``)."""


class MedianScans(Protocol):
    """The medians' passes made another way: the counts, then each radix pass."""

    def counts(self, columns: list[str]) -> tuple[dict[str, int], dict[str, int]]: ...

    def scanner(self, use_train: dict[str, bool]) -> Scan: ...


@dataclass(frozen=True)
class ScanFiles:
    """Where a statistics pass writes: the split codes (one byte a row), the timestamps of a
    time split, and the split keys in ``buckets`` files named from ``keys_stem``."""

    codes: Path
    times: Path
    keys_stem: Path
    buckets: int

    def keys(self, bucket: int) -> Path:
        return self.keys_stem.with_name(f"{self.keys_stem.name}-{bucket}.u64")


def _to_buckets(keys: np.ndarray, files: Sequence[BinaryIO]) -> None:
    """Keys into bucket files by their leading bits (equal keys: one bucket)."""
    if len(files) == 1:
        keys.tofile(files[0])
        return
    which = ((keys >> np.uint64(32)) * np.uint64(len(files))) >> np.uint64(32)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(files) + 1))
    for b, f in enumerate(files):
        keys[order[bounds[b] : bounds[b + 1]]].tofile(f)


def median_counts(
    reader: FilledReader, columns: list[str], part: Part | None = None
) -> tuple[dict[str, int], dict[str, int]]:
    """Each column's values present, and present in training rows (of ``part`` only, when
    given)."""
    train = dict.fromkeys(columns, 0)
    present = dict.fromkeys(columns, 0)
    for _, table, codes in reader.with_codes(columns, part):
        for name in columns:
            ok = ~np.isnan(float_values(table.column(name)))
            present[name] += int(ok.sum())
            train[name] += int((ok & (codes == 0)).sum())
    return present, train


def median_keys(
    reader: FilledReader, use_train: dict[str, bool], part: Part | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """The keys (:func:`float_keys`) the medians are taken of, chunk by chunk (of ``part``
    only, when given): each column's present values, of the training rows when
    ``use_train``."""
    for _, table, codes in reader.with_codes(list(use_train), part):
        chunk = {}
        for name, train_only in use_train.items():
            values = float_values(table.column(name))
            keep = ~np.isnan(values)
            if train_only:
                keep &= codes == 0
            chunk[name] = float_keys(values[keep])
        yield chunk


def medians(
    reader: FilledReader,
    spec: FeatureSpec,
    stats: Statistics,
    memory_budget: int,
    parallel: MedianScans | None = None,
) -> dict[str, float]:
    """The median of each numeric column with missing values, over its training rows (all
    its rows when no training row has it), exact (:mod:`model.data.select`); each pass by
    ``parallel`` when given (say :class:`model.data.stream_parallel.MedianPasses`)."""
    columns = [c for c in spec.numeric if stats.missing.get(c, 0)]
    if not columns:
        return {}
    if parallel is None:
        present, train = median_counts(reader, columns)
    else:
        present, train = parallel.counts(columns)
    use_train = {c: train[c] > 0 for c in columns}
    sizes = {c: train[c] if use_train[c] else present[c] for c in columns}
    wanted = {c: {(sizes[c] - 1) // 2, sizes[c] // 2} for c in columns}
    scanner = parallel.scanner(use_train) if parallel is not None else None

    # the keys kept for all the columns at once, and their concatenation: a quarter of the budget
    cap = max(1 << 16, memory_budget // 8 // (8 * len(columns)))
    found = order_statistics(lambda: median_keys(reader, use_train), wanted, cap, scanner)
    medians = {}
    for name in columns:
        lo_key, hi_key = found[name][(sizes[name] - 1) // 2], found[name][sizes[name] // 2]
        lo, hi = key_floats(np.array([lo_key, hi_key], dtype=np.uint64))
        medians[name] = float(lo if lo == hi else lo / 2 + hi / 2) + 0.0  # as _median
    return medians
