"""Drift of data larger than memory: Parquet files read in record batches.

:class:`ParquetSides` gives :func:`model.drift.detect.drift_of` the two sides of a
comparison (the reference, the current data by part) without reading them whole, and
:func:`stream_drift` makes the report, the one :func:`~model.drift.detect.detect_drift`
makes of the same files read whole:

- the checks and the schema changes use column profiles from the Parquet footers (rows,
  null counts) and the first value of a column (for messages);
- a numeric column is sorted on disk (:func:`model.external.sort_to_file`) and its
  statistics come from passes over the two sorted files
  (:func:`model.drift.numeric.sorted_drift`): KS and its p-value, the PSI bins, the medians
  and the histogram exactly the in-memory numbers; W1, the means and the deviations up to the
  rounding of their sums;
- a categorical column's level counts (and the target's) are added batch by batch
  (:class:`model.drift.categorical.LevelCounts`), each batch read as pandas reads the whole
  column (integers with missing values as floats, booleans with missing values as objects):
  exactly the in-memory counts;
- the model scores the same sampled rows (the same seed picks the same row numbers), read
  from the files batch by batch.

Memory: at most about ``memory_budget`` bytes of values at a time (the sort's runs and merge
blocks, the batches read), whatever the number of rows; a categorical column also holds one
entry per distinct level, and the model's sample its rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from model.data.messages import brief
from model.drift.categorical import LevelCounts, counts_drift
from model.drift.detect import (
    PathArg,
    Profile,
    Scorer,
    Side,
    drift_of,
)
from model.drift.numeric import sorted_drift
from model.drift.parallel import FragmentPasses, Levels, float_values, integral_parts
from model.drift.results import DriftReport, DriftSettings, FeatureDrift
from model.drift.sources import (
    MAX_BATCH_ROWS,
    ParquetSource,
    combined_profile,
    frame_of,
    series_of,
    take_rows,
)
from model.errors import DriftInputError
from model.external import MIN_BUDGET, SortedFile, sort_to_file

if TYPE_CHECKING:
    from model.data import FeatureSpec

SIDES: tuple[Side, Side] = ("reference", "current")
_CATEGORICAL_ROW_BYTES = 128  # a generous in-memory cost of one text value in a batch


class ParquetSides:
    """The reference and the current data (by part, e.g. one per batch) as Parquet sources
    read in batches within ``memory_budget`` bytes (see the module's text)."""

    def __init__(
        self,
        reference: str | os.PathLike[str],
        current: Mapping[str, str | os.PathLike[str]],
        *,
        memory_budget: int,
        scratch_dir: str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
    ) -> None:
        if memory_budget < MIN_BUDGET:
            raise DriftInputError(f"memory_budget {memory_budget} bytes is below {MIN_BUDGET}")
        if not current:
            raise DriftInputError("no current data given")
        self.budget = memory_budget
        self.scratch_dir = scratch_dir
        self.passes = None if executor is None else FragmentPasses(executor, memory_budget)
        rows = self._rows(8 * 16)
        self.sources: dict[Side, list[ParquetSource]] = {
            "reference": [self._open(reference, rows)],
            "current": [self._open(path, rows) for path in current.values()],
        }
        self.parts: Mapping[str, Profile] = {
            label: src.profile for label, src in zip(current, self.sources["current"], strict=True)
        }
        self.reference = self.sources["reference"][0].profile
        self.current = (
            next(iter(self.parts.values()))
            if len(current) == 1
            else (combined_profile(self.sources["current"]))
        )
        self.profiles: dict[Side, Profile] = {"reference": self.reference, "current": self.current}

    def _open(self, source: str | os.PathLike[str], rows: int) -> ParquetSource:
        if self.passes is not None:
            return self.passes.open(source, rows)
        return ParquetSource.open(source, rows)

    # ------------------------------------------------------------------ columns

    def _rows(self, bytes_per_row: int) -> int:
        return min(MAX_BATCH_ROWS, max(1024, self.budget // bytes_per_row))

    def _arrays(self, side: Side, column: str, rows: int) -> Iterator[pa.Array]:
        """A side's column across its parts; a part whose column holds no values (dropped
        before the monitor's concatenation) gives missing values."""
        for src in self.sources[side]:
            own = src.profile.columns.get(column)
            if own is None or not own.values:
                for start in range(0, src.profile.rows, rows):
                    yield pa.nulls(min(rows, src.profile.rows - start))
                continue
            yield from src.batches(column, rows)

    def _series(self, side: Side, column: str) -> Iterator[pd.Series]:
        whole = self.profiles[side].columns[column]
        for array in self._arrays(side, column, self._rows(_CATEGORICAL_ROW_BYTES)):
            yield series_of(array, whole)

    def numeric(self, col: str, n_bins: int) -> FeatureDrift:
        rows = self._rows(8 * 16)  # a batch: at most a sixteenth of the budget as floats
        scratch_root = self.scratch_dir or tempfile.gettempdir()
        try:
            with tempfile.TemporaryDirectory(
                prefix="drift-", dir=scratch_root, ignore_cleanup_errors=True
            ) as scratch:
                sides = [self._sorted(side, col, rows, Path(scratch)) for side in SIDES]
                return sorted_drift(col, sides[0], sides[1], n_bins)
        except OSError as exc:  # the sorted files' folder: full, or not writable
            fix = (
                "the Dask workers must share it (RETRAIN_HOME on storage every worker mounts "
                "and can write)"
                if self.passes is not None
                else "set TMPDIR to a folder with room"
            )
            raise DriftInputError(
                f"{scratch_root}: cannot hold column {col!r} sorted on disk ({brief(exc)}); {fix}"
            ) from exc

    def _sorted(self, side: Side, col: str, rows: int, scratch: Path) -> SortedFile:
        """A side's numeric column sorted into a file of ``scratch``."""
        if self.passes is not None:
            reads = self.passes.reads(self.sources[side], col, rows)
            return self.passes.sorted(reads, scratch / side)
        floats = (float_values(a, col) for a in self._arrays(side, col, rows))
        return sort_to_file(floats, scratch / side, self.budget)

    def categorical(self, col: str, as_text: bool) -> FeatureDrift:
        counts = []
        for side in SIDES:
            integral = self._integral(side, col) if as_text else None
            counts.append(self._counts(side, col, Levels(False, as_text, integral)))
        return counts_drift(col, counts[0], counts[1])

    def target(self, col: str, as_text: bool) -> FeatureDrift:
        counts = [self._counts(side, col, Levels(True, as_text, None)) for side in SIDES]
        return counts_drift(col, counts[0], counts[1])

    def _counts(self, side: Side, col: str, levels: Levels) -> LevelCounts:
        if self.passes is not None:
            reads = self.passes.reads(self.sources[side], col, self._rows(_CATEGORICAL_ROW_BYTES))
            return self.passes.counts(reads, self.profiles[side].columns[col], levels)
        return _counts(levels.of(s) for s in self._series(side, col))

    def _integral(self, side: Side, col: str) -> bool | None:
        """Whether a float column's values are all integral, over the whole side."""
        if not self.profiles[side].columns[col].dtype.startswith("float"):
            return None
        if self.passes is not None:
            reads = self.passes.reads(self.sources[side], col, self._rows(_CATEGORICAL_ROW_BYTES))
            return self.passes.integral(reads, self.profiles[side].columns[col])
        return bool(integral_parts(self._series(side, col)))

    def each(self, fn: Callable[[str], FeatureDrift], cols: list[str]) -> list[FeatureDrift]:
        return [fn(col) for col in cols]  # one column at a time: the budget is shared

    # ------------------------------------------------------------------ the model's sample

    def sample(self, side: Side, size: int, seed: int) -> pd.DataFrame:
        """The rows :func:`model.drift.detect._sample` picks of the side read whole (the
        parts' columns that hold no values left out before they are put together, as the
        monitor does)."""
        pick = _pick(self.profiles[side].rows, size, seed)
        tables = self._tables(side, pick, drop_empty=len(self.sources[side]) > 1)
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DriftInputError(f"{side}: its parts cannot be combined: {exc}") from exc
        frame = frame_of(table, self.profiles[side])
        if pick is not None:
            frame.index = pd.Index(pick)
        return frame

    def sample_parts(self, size: int, seed: int) -> dict[str, pd.DataFrame]:
        """At most ``size`` rows of the current data drawn at random (``seed``), by part,
        each part's columns as reading that part whole gives them."""
        pick = _pick(self.current.rows, size, seed)
        tables = self._tables("current", pick, drop_empty=False)
        sources = zip(self.parts, self.sources["current"], strict=True)
        return {
            label: frame_of(table, src.profile)
            for (label, src), table in zip(sources, tables, strict=True)
        }

    def _tables(self, side: Side, pick: np.ndarray | None, *, drop_empty: bool) -> list[pa.Table]:
        """Each source's rows of ``pick`` (global row numbers; None: all)."""
        tables, start = [], 0
        for src in self.sources[side]:
            columns = src.profile.columns
            keep = [n for n in columns if not drop_empty or columns[n].values]
            tables.append(take_rows(src, keep, pick, start, self._rows(64 * max(1, len(keep)))))
            start += src.profile.rows
        return tables


def _pick(rows: int, size: int, seed: int) -> np.ndarray | None:
    """The sorted row numbers :func:`model.drift.detect._sample` draws (None: every row)."""
    if rows <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))


def _counts(chunks: Iterable[pd.Series]) -> LevelCounts:
    counts = LevelCounts()
    for chunk in chunks:
        counts.add(chunk)
    return counts


def stream_drift(
    reference: str | os.PathLike[str],
    current: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str],
    spec: FeatureSpec,
    settings: DriftSettings | None = None,
    *,
    memory_budget: int,
    model: Scorer | None = None,
    reference_path: PathArg = None,
    current_path: PathArg = None,
    model_info: dict[str, Any] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
) -> DriftReport:
    """:func:`~model.drift.detect.detect_drift` of Parquet sources read in batches, in about
    ``memory_budget`` bytes (see the module's text). ``current``: one source, or the parts
    (label -> source, e.g. one per batch) whose concatenation is the current data.
    ``reference_path`` / ``current_path`` name the sides in the report (default: the paths).
    ``executor`` (e.g. a Dask client's): the passes run on its workers, partition-parallel
    (:mod:`model.drift.parallel`), for the same report."""
    parts = current if isinstance(current, Mapping) else {os.fspath(current): current}
    sides = ParquetSides(
        reference, parts, memory_budget=memory_budget, scratch_dir=scratch_dir, executor=executor
    )
    paths = (
        _labels(reference_path) or [os.fspath(reference)],
        _labels(current_path) or [os.fspath(p) for p in parts.values()],
    )
    return drift_of(sides, spec, settings, model=model, paths=paths, model_info=model_info)


def _labels(path: PathArg) -> list[str]:
    if path is None:
        return []
    if isinstance(path, str | os.PathLike):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


def stream_column_drift(
    name: str,
    kind: Literal["numeric", "categorical"],
    reference: str | os.PathLike[str],
    current: str | os.PathLike[str],
    *,
    n_bins: int = 10,
    memory_budget: int = 256 << 20,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> FeatureDrift:
    """Drift of one column between two Parquet sources, in bounded memory (no checks beyond
    the column's own: for the whole report, :func:`stream_drift`)."""
    sides = ParquetSides(
        reference, {"current": current}, memory_budget=memory_budget, scratch_dir=scratch_dir
    )
    for side in SIDES:
        column = sides.profiles[side].columns.get(name)
        if column is None:
            raise DriftInputError(f"{side}: column {name!r} missing")
        if not column.values:
            raise DriftInputError(f"{side}: column {name!r} has only missing values")
    if kind == "numeric":
        return sides.numeric(name, n_bins)
    return sides.categorical(name, as_text=False)
