"""Drift of one column larger than memory, read from Parquet in record batches.

A numeric column is sorted on disk (:func:`model.drift.external.sort_to_file`) and its
statistics come from passes over the two sorted files (:func:`model.drift.numeric.sorted_drift`):
the KS statistic and p-value, the PSI bins, the medians and the histogram are exactly the
in-memory path's; W1, the means and the deviations equal it up to the rounding of their sums.
A categorical column's level counts are added batch by batch
(:class:`model.drift.categorical.LevelCounts`), exactly the in-memory counts.

Memory: at most about ``memory_budget`` bytes of values at a time (the sort's runs and
merge blocks, the batches read), whatever the number of rows; a categorical column also
holds one entry per distinct level.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.drift.categorical import LevelCounts, counts_drift
from model.drift.external import MIN_BUDGET, sort_to_file
from model.drift.numeric import sorted_drift
from model.drift.results import FeatureDrift
from model.errors import DriftInputError

ParquetSources = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

_CATEGORICAL_ROW_BYTES = 128  # a generous in-memory cost of one text value in a batch
_MAX_BATCH_ROWS = 1 << 18  # larger batches only grow the reader's and allocator's buffers


def parquet_files(sources: ParquetSources) -> list[Path]:
    """The Parquet files of ``sources`` (files, and folders searched recursively, in name
    order), hidden files and folders (``.``, ``_``) left out."""
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*.parquet")
                if not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
            )
            if not found:
                raise DriftInputError(f"{path}: no Parquet files in the folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DriftInputError(f"{path}: no such file or folder")
    if not files:
        raise DriftInputError("no data sources given")
    return files


def column_batches(files: Sequence[Path], column: str, batch_rows: int) -> Iterator[pa.Array]:
    """One column of ``files``, ``batch_rows`` rows at a time (a file lacking it: an error)."""
    for f in files:
        try:
            reader = pq.ParquetFile(f, pre_buffer=False)  # pre-buffering holds whole chunks
            if column not in reader.schema_arrow.names:
                raise DriftInputError(f"{f}: column {column!r} missing")
            for batch in reader.iter_batches(batch_size=batch_rows, columns=[column]):
                yield batch.column(0)
        except (pa.ArrowException, OSError) as exc:
            raise DriftInputError(f"{f}: unreadable Parquet file: {exc}") from exc


def _floats(array: pa.Array) -> np.ndarray:
    """A numeric column's values as float64, missing values as NaN."""
    try:
        values = pc.cast(array, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DriftInputError(f"column of type {array.type} is not numeric: {exc}") from exc
    return values.to_numpy(zero_copy_only=False)  # nulls become NaN


def _level_counts(batches: Iterator[pa.Array]) -> LevelCounts:
    counts = LevelCounts()
    integer = False
    for array in batches:
        integer = pa.types.is_integer(array.type)
        counts.add(array.to_pandas())
    if integer and counts.missing:  # pandas reads integers with missing values as floats
        counts.levels = [float(level) for level in counts.levels]
    return counts


def stream_column_drift(
    name: str,
    kind: Literal["numeric", "categorical"],
    reference: ParquetSources,
    current: ParquetSources,
    *,
    n_bins: int = 10,
    memory_budget: int = 256 << 20,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> FeatureDrift:
    """Drift of column ``name`` between two sets of Parquet sources, in bounded memory.

    ``memory_budget`` (bytes) bounds the values held at a time; the sorted numeric columns
    are written under ``scratch_dir`` (default: the system's temporary folder) and removed.
    """
    if memory_budget < MIN_BUDGET:
        raise DriftInputError(f"memory_budget {memory_budget} bytes is below {MIN_BUDGET}")
    ref_files, cur_files = parquet_files(reference), parquet_files(current)
    if kind == "categorical":
        rows = min(_MAX_BATCH_ROWS, max(1024, memory_budget // _CATEGORICAL_ROW_BYTES))
        ref = _level_counts(column_batches(ref_files, name, rows))
        cur = _level_counts(column_batches(cur_files, name, rows))
        return counts_drift(name, ref, cur)
    rows = min(_MAX_BATCH_ROWS, max(1024, memory_budget // 8 // 16))  # <= 1/16 of the budget
    with tempfile.TemporaryDirectory(prefix="drift-", dir=scratch_dir) as scratch:
        folder = Path(scratch)
        sides = []
        for label, files in (("reference", ref_files), ("current", cur_files)):
            batches = (_floats(a) for a in column_batches(files, name, rows))
            side = sort_to_file(batches, folder / label, memory_budget)
            if side.size == 0:
                raise DriftInputError(f"{label}: column {name!r} has only missing values")
            sides.append(side)
        return sorted_drift(name, sides[0], sides[1], n_bins)
