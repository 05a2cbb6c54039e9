"""A numeric column larger than memory, sorted on disk, read back in blocks.

:func:`sort_to_file` is an external merge sort: the column arrives in chunks (any size),
missing values are dropped, runs of at most half the memory budget are sorted in memory
and written to a scratch file, and the runs are merged block by block into one sorted file
of float64 values. The merge keeps one block per run and emits, at each step, every
buffered value not above the smallest last value of the runs that still have more on
disk (a run whose block set that bound is used up, so each step makes progress); the
emitted values are sorted together and appended. Memory stays within the budget whatever
the column's length: runs are read and written with plain file IO, never memory-mapped,
so the pages are the kernel's cache, not the process's.

:class:`SortedFile` gives what the drift statistics need from a sorted column
(:class:`model.drift.numeric.SortedValues` is the in-memory twin): its size, values at
given positions, and its blocks in order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import numpy as np

MIN_BUDGET = 1 << 16
"""Smallest memory budget accepted (64 KiB): below it the merge's blocks become too small
to be worth a step."""


class SortedFile:
    """A sorted float64 column on disk (``n`` values), read in blocks of ``block`` values
    (or records of a structured ``dtype``, sorted by their first field)."""

    def __init__(
        self, path: Path, n: int, total: int, block: int, dtype: np.dtype | None = None
    ) -> None:
        self.path = path
        self.size = n
        self.total = total  # rows read, missing values included
        self.block = max(1, block)
        self.dtype = np.dtype(np.float64) if dtype is None else np.dtype(dtype)

    def blocks(self) -> Iterator[np.ndarray]:
        with open(self.path, "rb") as f:
            while True:
                values = np.fromfile(f, dtype=self.dtype, count=self.block)
                if values.size == 0:
                    return
                yield values

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The values at ``positions`` (0-based, each in ``[0, size)``)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty(positions.shape, dtype=self.dtype)
        with open(self.path, "rb") as f:
            for i, p in enumerate(positions.ravel()):
                f.seek(int(p) * self.dtype.itemsize)
                out.flat[i] = np.fromfile(f, dtype=self.dtype, count=1)[0]
        return out

    def values(self) -> np.ndarray:
        """The whole column in memory (for small columns only)."""
        return np.fromfile(self.path, dtype=self.dtype)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def sort_to_file(
    chunks: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    budget_bytes: int,
    dtype: np.dtype | None = None,
) -> SortedFile:
    """Sort the non-missing values of ``chunks`` (float64 arrays, NaN = missing) into
    ``path``, holding at most about ``budget_bytes`` of values in memory at a time.

    With a structured ``dtype``, the chunks are records of it, sorted by their first field
    (none is dropped; the order among equal keys is not kept)."""
    dtype = np.dtype(np.float64) if dtype is None else np.dtype(dtype)
    item = dtype.itemsize
    if budget_bytes < MIN_BUDGET:
        raise ValueError(f"memory budget {budget_bytes} bytes is below {MIN_BUDGET} bytes")
    out_path = Path(path)
    runs_path = out_path.with_name(out_path.name + ".runs")
    try:
        with open(runs_path, "wb") as runs_file:
            runs, total = _write_runs(chunks, runs_file, budget_bytes // item // 2, dtype)
    except BaseException:  # a chunk that failed to read: no scratch file left behind
        runs_path.unlink(missing_ok=True)
        raise
    n = sum(length for _, length in runs)
    if len(runs) <= 1:
        os.replace(runs_path, out_path)
        return SortedFile(out_path, n, total, _block(budget_bytes, dtype), dtype)
    try:
        _merge_runs([(runs_path, *run) for run in runs], out_path, budget_bytes, dtype)
    finally:
        runs_path.unlink(missing_ok=True)
    return SortedFile(out_path, n, total, _block(budget_bytes, dtype), dtype)


def merge_to_file(
    runs: Sequence[SortedFile], path: str | os.PathLike[str], budget_bytes: int
) -> SortedFile:
    """The sorted files ``runs`` (each a part of one column, e.g. sorted by a Dask worker)
    merged into one at ``path``, as :func:`sort_to_file` of the whole column makes it: the
    same values in the same order (equal keys aside), read back in the same blocks."""
    if budget_bytes < MIN_BUDGET:
        raise ValueError(f"memory budget {budget_bytes} bytes is below {MIN_BUDGET} bytes")
    dtype = runs[0].dtype if runs else np.dtype(np.float64)
    n, total = sum(r.size for r in runs), sum(r.total for r in runs)
    holding = [(r.path, 0, r.size) for r in runs if r.size]
    if len(holding) == 1:
        os.replace(holding[0][0], path)
    elif holding:
        _merge_runs(holding, Path(path), budget_bytes, dtype)
    else:
        Path(path).write_bytes(b"")
    return SortedFile(Path(path), n, total, _block(budget_bytes, dtype), dtype)


def _block(budget_bytes: int, dtype: np.dtype) -> int:
    """Values read back at a time: 1/64 of the budget (the statistics' merge holds two per
    column read ahead, and its temporaries, the merged values, their order, counts and
    gaps, about 15 per block)."""
    return max(1, budget_bytes // dtype.itemsize // 64)


def _write_runs(
    chunks: Iterable[np.ndarray], runs_file: BinaryIO, run_len: int, dtype: np.dtype
) -> tuple[list[tuple[int, int]], int]:
    """Sorted runs of at most ``run_len`` values: their (offset, length) and the rows read."""
    buffer = np.empty(max(1, run_len), dtype=dtype)
    runs: list[tuple[int, int]] = []
    filled = total = 0
    for chunk in chunks:
        values = np.asarray(chunk, dtype=dtype).ravel()
        total += values.size
        if dtype.names is None:  # -0.0 as 0.0: equal values, one order whatever the runs
            values = values[~np.isnan(values)] + 0.0
        while values.size:
            take = min(values.size, run_len - filled)
            buffer[filled : filled + take] = values[:take]
            filled += take
            values = values[take:]
            if filled == run_len:
                runs.append(_write_run(buffer, runs_file))
                filled = 0
    if filled:
        runs.append(_write_run(buffer[:filled], runs_file))
    return runs, total


def _write_run(values: np.ndarray, runs_file: BinaryIO) -> tuple[int, int]:
    values = _sorted(values)
    offset = runs_file.tell() // values.dtype.itemsize
    values.tofile(runs_file)
    return offset, values.size


def _key(values: np.ndarray) -> np.ndarray:
    """What the values are sorted by: themselves, or a record's first field."""
    return values if values.dtype.names is None else values[values.dtype.names[0]]


def _sorted(values: np.ndarray) -> np.ndarray:
    """``values`` in order of :func:`_key` (float64 values: sorted in place)."""
    if values.dtype.names is None:
        values.sort()
        return values
    return values[np.argsort(_key(values))]


def _merge_runs(
    runs: list[tuple[Path, int, int]],
    out_path: Path,
    budget_bytes: int,
    dtype: np.dtype,
) -> None:
    """Merge the sorted runs (file, offset, length) into ``out_path`` (see the module's
    text)."""
    item = dtype.itemsize
    block = max(1, budget_bytes // item // (3 * (len(runs) + 1)))
    with ExitStack() as stack:
        files = {p: stack.enter_context(open(p, "rb")) for p in dict.fromkeys(p for p, *_ in runs)}
        dst = stack.enter_context(open(out_path, "wb"))
        left = [length for *_, length in runs]  # values of each run not yet read
        position = [offset for _, offset, _ in runs]

        def read(r: int) -> np.ndarray:
            count = min(block, left[r])
            src = files[runs[r][0]]
            src.seek(position[r] * item)
            values = np.fromfile(src, dtype=dtype, count=count)
            position[r] += count
            left[r] -= count
            return values

        buffers = {r: read(r) for r in range(len(runs))}
        while buffers:
            more = [_key(buffers[r])[-1] for r in buffers if left[r]]
            bound = min(more) if more else np.inf
            pieces = []
            for r, buf in buffers.items():
                cut = buf.size if not more else int(np.searchsorted(_key(buf), bound, "right"))
                pieces.append(buf[:cut])
                buffers[r] = buf[cut:]
            _sorted(np.concatenate(pieces)).tofile(dst)
            for r in list(buffers):
                if buffers[r].size == 0:
                    if left[r]:
                        buffers[r] = read(r)
                    else:
                        del buffers[r]
