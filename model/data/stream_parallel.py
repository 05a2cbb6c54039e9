"""``prepare``'s streamed passes run partition-parallel on a pool of workers, typically a
Dask cluster (:mod:`model.cluster`).

With an executor (a :class:`concurrent.futures.Executor`: a Dask client's
``get_executor()``), :func:`model.data.stream_prepare.prepare_streamed` cuts the sources
into fragments (a file's consecutive row groups, about four chunks each:
:mod:`model.data.fragments`) and hands each pass's fragments to the workers. The workers
read their fragments by path and write their scratch files next to the prepared folder, so
on a cluster both must be on storage every worker sees (``RETRAIN_HOME`` on a shared file
system). What comes back is merged here in fragment order, so the rows are numbered, the
errors raised and the folder written as on one machine:

1. **checks**: each fragment's counts per column (:class:`model.data.stream_source.
   ColumnCount`: the checks of reading whole, all-missing, the first out-of-range number,
   the first value that does not cast), merged column by column; an error reading a
   fragment is raised where the single-machine pass meets it;
2. **statistics**: each fragment's :class:`model.data.stream_stats.Statistics` (missing
   values, level lengths, labels, first missing target or id), its split codes, keys and
   timestamps in files of its own; the codes and timestamps are put together in order, the
   keys' duplicates counted over every fragment's bucket files;
3. **medians**: each radix pass (:func:`model.data.select.scan`) per fragment, the
   histograms added and the kept keys put together;
4. **writing**: each fragment imputed and encoded on a worker
   (:class:`model.data.stream_prepare.Output`) into an Arrow stream file; here, the files are
   read in order into the split writer, which alone encodes the Parquet row groups, so the
   split files are the single-machine ones byte for byte (a test compares them).
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from model.data.fragments import Part
from model.data.select import Group, Stat, _Open, scan
from model.data.stream_source import ColumnCount, FilledReader, StreamedSources
from model.data.stream_stats import ScanFiles, Statistics, median_counts, median_keys
from model.errors import DataValidationError, RetrainError

if TYPE_CHECKING:
    from model.data.stream_prepare import Output, PieceCounts

CHUNKS_PER_FRAGMENT = 4
"""A fragment holds about this many chunks (``rows`` rows each) of whole row groups."""
IN_FLIGHT = 8
"""Fragments of the writing pass transformed ahead of the writer (their files on disk)."""
_CODES = "__split_code__"


def parts_of(streamed: StreamedSources, rows: int) -> list[Part]:
    return streamed.parts_of(CHUNKS_PER_FRAGMENT * rows)


class Parallel:
    """The passes' ways on ``executor``'s workers, as the streamed preparation takes them."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def counter(
        self, streamed: StreamedSources, rows: int
    ) -> Callable[[int, str], Iterator[ColumnCount]]:
        return counted_columns(streamed, rows, self.executor)

    def statistics(
        self, stats: Statistics, reader: FilledReader, scratch: Path, buckets: int
    ) -> list[list[Path]]:
        return statistics_pass(stats, reader, scratch, buckets, self.executor)

    def medians(self, reader: FilledReader) -> MedianPasses:
        return MedianPasses(reader, self.executor)


# ---------------------------------------------------------------- 1. checks


def count_part(
    streamed: StreamedSources, part: Part, rows: int
) -> dict[str, ColumnCount | RetrainError]:
    """Each column's counts of one fragment, or the error reading it raised."""
    out: dict[str, ColumnCount | RetrainError] = {}
    for name in streamed.sources[part.source].schema.names:
        try:
            out[name] = streamed.count_column(part.source, name, rows, part.fragment).run()
        except RetrainError as exc:
            out[name] = exc
    return out


def counted_columns(
    streamed: StreamedSources, rows: int, executor: Executor
) -> Callable[[int, str], Iterator[ColumnCount]]:
    """``counted(i, name)`` gives column ``name`` of source ``i`` fragment by fragment (a
    fragment's error raised when reached), each source's fragments counted on the workers
    when first asked for (after the caller checked that source's names, as one machine
    does)."""
    parts = parts_of(streamed, rows)
    found: dict[int, list[dict[str, ColumnCount | RetrainError]]] = {}

    def counted(i: int, name: str) -> Iterator[ColumnCount]:
        if i not in found:
            mine = [p for p in parts if p.source == i]
            n = len(mine)
            with on_workers():
                found[i] = list(executor.map(count_part, [streamed] * n, mine, [rows] * n))
        for counts in found[i]:
            count = counts[name]
            if isinstance(count, RetrainError):
                raise count
            yield count

    return counted


@contextlib.contextmanager
def on_workers() -> Iterator[None]:
    """A worker's file error (the scratch files, the data) as one line: on a cluster, both
    must be on storage every worker mounts and can write."""
    try:
        yield
    except OSError as exc:
        raise DataValidationError(
            f"a Dask worker could not read or write {getattr(exc, 'filename', None) or 'a file'}"
            f" ({exc.strerror or exc}): the data and RETRAIN_HOME must be on storage every "
            "worker mounts at the same path and can write"
        ) from exc


# ---------------------------------------------------------------- 2. statistics


def scan_part(stats: Statistics, reader: FilledReader, part: Part, files: ScanFiles) -> Statistics:
    return stats.scan(reader, part, files)


def statistics_pass(
    stats: Statistics,
    reader: FilledReader,
    scratch: Path,
    buckets: int,
    executor: Executor,
) -> list[list[Path]]:
    """:meth:`Statistics.scan` of every fragment on the workers, merged into ``stats`` in
    order; the codes and timestamps put together in ``scratch`` as the single-machine pass
    writes them. Returns each key bucket's files."""
    template = copy.deepcopy(stats)
    parts = parts_of(reader.streamed, reader.rows)
    n = len(parts)
    files = [
        ScanFiles(scratch / f"codes-{k}.i8", scratch / f"time-{k}.i64", scratch / f"k{k}", buckets)
        for k in range(n)
    ]
    with on_workers():
        for partial in executor.map(scan_part, [template] * n, [reader] * n, parts, files):
            stats.merge(partial)
    _concatenate([f.codes for f in files], scratch / "codes.i8")
    _concatenate([f.times for f in files], scratch / "time.i64")
    return [[f.keys(b) for f in files] for b in range(buckets)]


def _concatenate(paths: list[Path], out: Path) -> None:
    with open(out, "wb") as dst:
        for path in paths:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
            path.unlink()


# ---------------------------------------------------------------- 3. medians


def median_counts_part(
    reader: FilledReader, columns: list[str], part: Part
) -> tuple[dict[str, int], dict[str, int]]:
    return median_counts(reader, columns, part)


def median_scan_part(
    reader: FilledReader,
    use_train: dict[str, bool],
    part: Part,
    counting: dict[Stat, _Open],
    groups: set[Group],
) -> tuple[dict[Stat, np.ndarray], dict[Group, list[np.ndarray]]]:
    return scan(median_keys(reader, use_train, part), counting, groups)


class MedianPasses:
    """The medians' passes (:func:`model.data.stream_stats.medians`) on the workers."""

    def __init__(self, reader: FilledReader, executor: Executor) -> None:
        self.reader, self.executor = reader, executor
        self.parts = parts_of(reader.streamed, reader.rows)

    def counts(self, columns: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        present, train = dict.fromkeys(columns, 0), dict.fromkeys(columns, 0)
        n = len(self.parts)
        with on_workers():
            for p, t in self.executor.map(
                median_counts_part, [self.reader] * n, [columns] * n, self.parts
            ):
                for name in columns:
                    present[name] += p[name]
                    train[name] += t[name]
        return present, train

    def scanner(
        self, use_train: dict[str, bool]
    ) -> Callable[
        [dict[Stat, _Open], set[Group]],
        tuple[dict[Stat, np.ndarray], dict[Group, list[np.ndarray]]],
    ]:
        def run(
            counting: dict[Stat, _Open], groups: set[Group]
        ) -> tuple[dict[Stat, np.ndarray], dict[Group, list[np.ndarray]]]:
            n = len(self.parts)
            hists = {s: np.zeros(1 << 16, dtype=np.int64) for s in counting}
            kept: dict[Group, list[np.ndarray]] = {g: [] for g in groups}
            found = self.executor.map(
                median_scan_part,
                [self.reader] * n,
                [use_train] * n,
                self.parts,
                [counting] * n,
                [groups] * n,
            )
            with on_workers():
                for part_hists, part_kept in found:
                    for s, hist in part_hists.items():
                        hists[s] += hist
                    for g, pieces in part_kept.items():
                        kept[g].extend(pieces)
            return hists, kept

        return run


# ---------------------------------------------------------------- 4. writing


def write_part(output: Output, reader: FilledReader, part: Part, path: Path) -> PieceCounts:
    """One fragment imputed and encoded into an Arrow stream file (its split codes as one
    more column); what it counted."""
    counts = output.counts()
    writer = None
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with open(path, "wb") as sink:
        try:
            for piece, codes in output.pieces(reader, counts, part):
                table = piece.append_column(_CODES, pa.array(codes))
                if writer is None:
                    writer = pa.ipc.new_stream(sink, table.schema, options=options)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return counts


def written_pieces(
    output: Output,
    reader: FilledReader,
    counts: PieceCounts,
    executor: Executor,
    folder: Path,
) -> Generator[tuple[pa.Table, np.ndarray]]:
    """The chunks :meth:`Output.pieces` gives, made on the workers fragment by fragment (at
    most :data:`IN_FLIGHT` ahead), read back in order; their counts added to ``counts``."""
    parts = parts_of(reader.streamed, reader.rows)
    scratch = Path(tempfile.mkdtemp(prefix=".pieces-", dir=folder.parent))
    pending: deque[tuple[Future[PieceCounts], Path]] = deque()
    try:
        for k, part in enumerate(parts):
            path = scratch / f"piece-{k}.arrows"
            pending.append((executor.submit(write_part, output, reader, part, path), path))
            if len(pending) >= IN_FLIGHT:
                yield from _read_piece(*pending.popleft(), counts)
        while pending:
            yield from _read_piece(*pending.popleft(), counts)
    finally:
        for future, _ in pending:
            future.cancel()
        shutil.rmtree(scratch, ignore_errors=True)


def _read_piece(
    future: Future[PieceCounts], path: Path, counts: PieceCounts
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    with on_workers():
        counts.merge(future.result())
    if path.stat().st_size:
        with pa.OSFile(str(path), "rb") as source, pa.ipc.open_stream(source) as stream:
            for batch in stream:
                table = pa.Table.from_batches([batch])
                last = table.num_columns - 1  # the codes: by position (a feature may share
                codes = table.column(last).to_numpy()  # their name)
                yield table.remove_column(last), codes
    path.unlink()
