"""Writing a prepared folder, whichever way its rows were read (:mod:`model.data.prepared`
whole, :mod:`model.data.stream_prepare` streamed): the split files in fixed row groups
(:class:`SplitWriter`), their manifest entries, the folder renamed to its content hash; and
each row's batch (the ``__batch__`` column, the manifest's ``batches``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model import clock
from model.data.batches import batch_sort_key, is_partition_name
from model.data.manifest import (
    MANIFEST_NAME,
    Manifest,
    SplitInfo,
    content_hash,
    file_sha256,
    load_manifest,
)
from model.data.messages import brief, quote
from model.data.read import WRITE_OPTIONS
from model.data.source import SourceTable
from model.data.split import SPLITS
from model.errors import DataValidationError

_CHUNK_ROWS = 1_000_000
ROW_GROUP_ROWS = 1 << 16
"""Rows of every row group of a split file (the last one: what is left). Fixed, so the files
are byte for byte the same whether the rows came from one table or from a stream of batches
(:mod:`model.data.stream_prepare`), and small enough for a streaming reader to hold one."""


class SplitWriter:
    """Writes the three split files from rows given in order, piece by piece with their split
    codes, as row groups of exactly :data:`ROW_GROUP_ROWS` rows (the last one shorter), each
    written from one contiguous chunk, so the bytes do not depend on how the rows came."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.paths = {name: folder / f"{name}.parquet" for name in SPLITS}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, list[pa.Table]] = {name: [] for name in SPLITS}
        self._rows = dict.fromkeys(SPLITS, 0)
        try:
            for name in SPLITS:
                self._writers[name] = pq.ParquetWriter(self.paths[name], schema, **WRITE_OPTIONS)
        except BaseException:
            self.close()
            raise

    def write(self, piece: pa.Table, codes: np.ndarray) -> None:
        for k, name in enumerate(SPLITS):
            mask = codes == k
            if not mask.any():
                continue
            self._pending[name].append(piece.filter(pa.array(mask)))
            self._rows[name] += int(mask.sum())
            while self._rows[name] >= ROW_GROUP_ROWS:
                self._flush(name, ROW_GROUP_ROWS)

    def _flush(self, name: str, rows: int) -> None:
        table = pa.concat_tables(self._pending[name])
        group = table.slice(0, rows).combine_chunks()
        self._writers[name].write_table(group, row_group_size=rows)
        rest = table.slice(rows)
        self._pending[name] = [rest] if rest.num_rows else []
        self._rows[name] -= rows

    def finish(self) -> dict[str, Path]:
        for name in SPLITS:
            if self._rows[name]:
                self._flush(name, self._rows[name])
        self.close()
        return self.paths

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _write_splits(out: pa.Table, codes: np.ndarray, folder: Path) -> dict[str, Path]:
    """Write the three split files chunk by chunk (bounded extra memory)."""
    writer = SplitWriter(folder, out.schema)
    try:
        for start in range(0, out.num_rows, _CHUNK_ROWS):
            writer.write(out.slice(start, _CHUNK_ROWS), codes[start : start + _CHUNK_ROWS])
        return writer.finish()
    finally:
        writer.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _split_infos(
    rows: np.ndarray, positives: np.ndarray, paths: dict[str, Path], fractions: Sequence[float]
) -> dict[str, SplitInfo]:
    """Each split file's entry: ``rows`` and ``positives`` per split code, its checksum."""
    infos: dict[str, SplitInfo] = {}
    for k, name in enumerate(SPLITS):
        if rows[k] == 0 and fractions[k] > 0:
            raise DataValidationError(
                f"split {quote(name)} is empty: {int(rows.sum())} rows are too few for "
                f"fractions {list(fractions)}"
            )
        infos[name] = SplitInfo(
            file=paths[name].name,
            rows=int(rows[k]),
            positives=int(positives[k]),
            negatives=int(rows[k] - positives[k]),
            sha256=file_sha256(paths[name]),
        )
    return infos


def split_counts(codes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and positives per split code."""
    rows = np.bincount(codes, minlength=3).astype(np.int64)
    positives = np.bincount(codes, weights=y, minlength=3).astype(np.int64)
    return rows, positives


BATCH_PARTITION = "date"
"""The partition key of the demo's batches (``incoming/date=YYYY-MM-DD/``); any ``key=value``
folder or plain file directly in ``incoming/`` is a batch (:mod:`model.data.batches`)."""
BATCH_COLUMN = "__batch__"
"""Provenance column of the prepared splits: the id of the batch a row came from (its name in
``incoming/``, e.g. ``date=2026-01-31`` or ``2016.parquet``), null for base-data rows. Never a
feature; lets a comparison find the rows production has not seen."""


def batch_labels(values: pa.ChunkedArray, key: str = BATCH_PARTITION) -> pa.ChunkedArray:
    """``<key>=<value>`` per row (null where the row came from no batch)."""
    return pc.binary_join_element_wise(f"{key}=", pc.cast(values, pa.string()), "")


def _first_level_keys(part: SourceTable) -> list[str]:
    """The ``key`` of the ``key=value`` folders directly in a folder source, in file order."""
    keys: list[str] = []
    for f in part.files:
        try:
            first = Path(f).relative_to(part.label).parts[0]
        except (ValueError, IndexError):
            continue
        key = first.partition("=")[0]
        if is_partition_name(first) and key in part.partition_columns and key not in keys:
            keys.append(key)
    return keys


def batch_name(part: SourceTable, batch_root: Path | None) -> str | None:
    """The batch all rows of a source come from, or None when it is no batch (a folder
    source that is the incoming folder itself, with first-level partitions: see
    :func:`_rows_batch`)."""
    label = Path(part.label)
    if batch_root is not None and label.absolute() != batch_root.absolute():
        try:
            return label.absolute().relative_to(batch_root.absolute()).parts[0]
        except (ValueError, IndexError):
            return None  # base data: outside the incoming folder
    return next((x for x in label.parts if is_partition_name(x)), None)


def _rows_batch(part: SourceTable, batch_root: Path | None) -> pa.ChunkedArray | None:
    """The batch id of every row of one source, or None when it is no batch."""
    keys = _first_level_keys(part)
    outside = batch_root is not None and Path(part.label).absolute() != batch_root.absolute()
    if keys and not outside:  # the incoming folder read whole: per row, by its partitions
        found = [batch_labels(part.table.column(k), k) for k in keys]
        return found[0] if len(found) == 1 else pc.coalesce(*found)
    name = batch_name(part, batch_root)
    if name is None:
        return None
    return pa.chunked_array([pa.repeat(pa.scalar(name, pa.string()), part.table.num_rows)])


def _batch_provenance(
    parts: Sequence[SourceTable], batch_root: Path | None = None
) -> pa.ChunkedArray | None:
    """The batch of every row, source by source (the order ``read_sources`` concatenates in):
    with ``batch_root`` (the incoming folder), a source under it is the batch named by its
    first component there (a folder source that is the incoming folder itself: per row, from
    its first-level ``key=value`` partition columns); without it, a ``key=value`` folder in the
    source's path names the batch. None when no row has a batch."""
    chunks: list[pa.Array] = []
    found = False
    for part in parts:
        labels = _rows_batch(part, batch_root)
        if labels is None:
            chunks.append(pa.nulls(part.table.num_rows, pa.string()))
        else:
            chunks.extend(labels.cast(pa.string()).chunks)
            found = True
    return pa.chunked_array(chunks, pa.string()) if found else None


def _batch_ids(batches: pa.ChunkedArray | None) -> list[str]:
    if batches is None:
        return []
    ids = [v for v in pc.unique(batches).to_pylist() if v is not None]
    return sorted(ids, key=batch_sort_key)


def prepared_root(out_root: Path) -> Path:
    """The prepared-data root, created if missing (one line when it cannot be)."""
    if out_root.exists() and not out_root.is_dir():
        raise DataValidationError(f"{out_root}: the prepared-data root is not a folder")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataValidationError(
            f"{out_root}: cannot create the prepared-data root: {brief(exc)}"
        ) from exc
    return out_root


def _write_prepared(
    out_root: Path, write: Callable[[Path], dict[str, SplitInfo]], manifest: Manifest
) -> Manifest:
    """Write the split files into a temporary folder in ``out_root`` (``write``: their
    entries), then the manifest, and rename the folder to its content hash (an existing
    folder of that hash is reused)."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-prepare-", dir=prepared_root(out_root)))
    try:
        manifest.splits = write(tmp)
        # hashed as it is stored (JSON), so that load_manifest can hash it again
        document = json.loads(json.dumps(manifest.to_dict(), default=_jsonable))
        manifest.sha256 = content_hash(document)
        final = out_root / manifest.sha256[:16]
        manifest.path = final.resolve()
        manifest.created_at = clock.now().isoformat(timespec="seconds")
        text = json.dumps(manifest.to_dict(), indent=2, default=_jsonable)
        (tmp / MANIFEST_NAME).write_text(text + "\n", encoding="utf-8")
        if final.exists():
            return _reuse(final, manifest.sha256)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # prepared concurrently by someone else
                return _reuse(final, manifest.sha256)
            raise
        return manifest
    except OSError as exc:  # disk full, quota, read-only: one line naming where
        reason = exc.strerror or type(exc).__name__
        raise DataValidationError(
            f"{out_root}: cannot write the prepared data: {reason}; nothing was kept"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _reuse(folder: Path, sha256: str) -> Manifest:
    existing = load_manifest(folder)
    if existing.sha256 != sha256:
        raise DataValidationError(
            f"{folder}: holds different prepared data (hash {existing.sha256[:16]}...)"
        )
    return existing
