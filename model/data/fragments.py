"""Fragments of Parquet sources: a file's consecutive row groups, the unit a Dask worker
reads when a pass over the data runs partition-parallel (:mod:`model.data.stream_parallel`,
:mod:`model.drift.parallel`). Results come back per fragment and are merged in order, so
rows are numbered as the single-machine pass numbers them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Fragment:
    """Consecutive row groups of one file, whose first row is row ``start`` of its source."""

    file: Path
    row_groups: tuple[int, ...]
    start: int
    rows: int


@dataclass(frozen=True)
class Part:
    """A fragment of source ``source`` of several, whose first row is row ``offset`` of
    their concatenation."""

    source: int
    fragment: Fragment
    offset: int


def file_fragments(files: Sequence[Path], most_rows: int) -> list[Fragment]:
    """The files cut into fragments of whole row groups, at most ``most_rows`` rows each (a
    larger row group alone), in order."""
    from model.data.read import parquet_error

    out: list[Fragment] = []
    start = 0
    for f in files:
        try:
            meta = pq.ParquetFile(f).metadata
        except (pa.ArrowException, OSError) as exc:
            raise parquet_error(f, exc) from exc
        groups: list[int] = []
        held = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if groups and held + n > most_rows:
                out.append(Fragment(f, tuple(groups), start, held))
                start, groups, held = start + held, [], 0
            groups.append(g)
            held += n
        if groups:
            out.append(Fragment(f, tuple(groups), start, held))
            start += held
    return out
