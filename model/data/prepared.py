"""``prepare``: read sources, validate them against a feature spec, impute missing values,
split rows stably and write ``train/val/test.parquet`` plus ``manifest.json`` into
``<out_root>/<content hash>/`` (a temporary folder renamed when complete; an existing folder with
the same content hash is reused). The work is done in Arrow and NumPy, column by column, so ten
million rows fit in a few times their own size in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model import clock
from model.data.batches import batch_sort_key, is_partition_name
from model.data.manifest import (
    ALL_SOURCES,
    MANIFEST_NAME,
    Manifest,
    SplitInfo,
    content_hash,
    file_sha256,
    load_manifest,
)
from model.data.messages import brief, quote
from model.data.read import WRITE_OPTIONS, Sources, SourceTable, read_sources
from model.data.schema import DEFAULT_MAX_IMPUTED_ROW_SHARE, apply_schema_policy, drop_extra_columns
from model.data.spec import FeatureSpec, _resolve_spec
from model.data.split import (
    DEFAULT_SPLIT,
    SPLITS,
    _check_fractions,
    _check_splits_not_empty,
    _split_codes,
)
from model.data.validate import (
    _check_level_lengths,
    _check_not_all_null,
    _check_spec_types,
    _encode_target_arrow,
    _output_table,
    number_range_problem,
)
from model.errors import DataValidationError

_CHUNK_ROWS = 1_000_000


def _write_splits(out: pa.Table, codes: np.ndarray, folder: Path) -> dict[str, Path]:
    """Write the three split files chunk by chunk (bounded extra memory)."""
    paths = {name: folder / f"{name}.parquet" for name in SPLITS}
    writers = {name: pq.ParquetWriter(paths[name], out.schema, **WRITE_OPTIONS) for name in SPLITS}
    try:
        for start in range(0, out.num_rows, _CHUNK_ROWS):
            piece = out.slice(start, _CHUNK_ROWS)
            piece_codes = codes[start : start + _CHUNK_ROWS]
            for k, name in enumerate(SPLITS):
                mask = piece_codes == k
                if mask.any():
                    writers[name].write_table(piece.filter(pa.array(mask)))
    finally:
        for writer in writers.values():
            writer.close()
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _split_infos(
    codes: np.ndarray, y: np.ndarray, paths: dict[str, Path], fractions: Sequence[float]
) -> dict[str, SplitInfo]:
    rows = np.bincount(codes, minlength=3)
    positives = np.bincount(codes, weights=y, minlength=3).astype(np.int64)
    infos: dict[str, SplitInfo] = {}
    for k, name in enumerate(SPLITS):
        if rows[k] == 0 and fractions[k] > 0:
            raise DataValidationError(
                f"split {quote(name)} is empty: {len(codes)} rows are too few for fractions "
                f"{list(fractions)}"
            )
        infos[name] = SplitInfo(
            file=paths[name].name,
            rows=int(rows[k]),
            positives=int(positives[k]),
            negatives=int(rows[k] - positives[k]),
            sha256=file_sha256(paths[name]),
        )
    return infos


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


def _rows_batch(part: SourceTable, batch_root: Path | None) -> pa.ChunkedArray | None:
    """The batch id of every row of one source, or None when it is no batch."""
    label = Path(part.label)
    keys = _first_level_keys(part)
    name: str | None
    if batch_root is not None and label.absolute() != batch_root.absolute():
        try:
            name = label.absolute().relative_to(batch_root.absolute()).parts[0]
        except (ValueError, IndexError):
            name = None  # base data: outside the incoming folder
    elif keys:  # the incoming folder read whole: per row, by its first-level partitions
        found = [batch_labels(part.table.column(k), k) for k in keys]
        return found[0] if len(found) == 1 else pc.coalesce(*found)
    else:
        name = next((x for x in label.parts if is_partition_name(x)), None)
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


def prepare(
    sources: Sources,
    out_root: str | Path,
    *,
    spec: FeatureSpec | None = None,
    target: str = "target",
    id_column: str | None = None,
    timestamp_column: str | None = None,
    split: Sequence[float] = DEFAULT_SPLIT,
    time_split: bool = False,
    salt: str = "retraining",
    exclude: Sequence[str] = (),
    detect_id: bool = True,
    selection: str = ALL_SOURCES,
    categorical_columns: Sequence[str] = (),
    numeric_columns: Sequence[str] = (),
    learned_values: Mapping[str, Any] | None = None,
    max_imputed_row_share: float = DEFAULT_MAX_IMPUTED_ROW_SHARE,
    batch_root: str | Path | None = None,
) -> Manifest:
    """Validate, impute and split ``sources`` (concatenated) into ``out_root/<hash>/``.

    The split is stable: a row goes to the split given by a hash of its key (the id column,
    else its raw values), so it stays there in every later preparation. Without a declared
    ``id_column``, a column named ``id`` is used (unless ``detect_id`` is false). Writes
    ``train/val/test.parquet`` and ``manifest.json`` into a temporary folder that is renamed
    when complete; an existing folder with the same content hash is reused. ``selection``
    records which data the caller chose (part of the manifest and its hash).

    ``categorical_columns`` / ``numeric_columns`` declare roles that override the dtypes (an
    integer-coded category declared categorical). A feature a batch lacks or has all-missing is
    a schema change, decided by :mod:`model.data.schema` (``learned_values``: production's
    medians to impute with; ``max_imputed_row_share``: the limit); the later sources' extra
    columns are ignored with a warning.

    ``batch_root`` (the incoming folder): the sources under it are batches, each named by its
    name there (:mod:`model.data.batches`); the manifest lists them (``batches``) and the
    splits' ``__batch__`` column says which row came from which.
    """
    fractions = _check_fractions(split)
    table, parts = read_sources(sources)
    table = drop_extra_columns(table, parts)
    label = ", ".join(p.label for p in parts)
    partition_columns = sorted({c for p in parts for c in p.partition_columns})
    spec = _resolve_spec(
        table,
        spec,
        target=target,
        id_column=id_column,
        timestamp_column=timestamp_column,
        exclude=exclude,
        partition_columns=partition_columns,
        label=label,
        detect_id=detect_id,
        categorical_columns=categorical_columns,
        numeric_columns=numeric_columns,
    )
    spec.check(table, source=label, strict=True)
    table, schema_changes = apply_schema_policy(
        table, parts, spec, learned=learned_values, max_imputed_row_share=max_imputed_row_share
    )
    for role, col in (("id", spec.id_column), ("timestamp", spec.timestamp_column)):
        if col is not None and col not in table.column_names:
            raise DataValidationError(f"{label}: the spec's {role} column {quote(col)} is missing")
    _check_spec_types(spec, table, label)
    for part in parts:  # numbers a model cannot read, named by file
        problem = number_range_problem(part.table, spec.numeric, part.label)
        if problem is not None:
            raise DataValidationError(problem)
    key_and_features = [c for c in (*spec.features, spec.id_column) if c is not None]
    _check_not_all_null(table, key_and_features, label)
    _check_level_lengths(table, [*spec.categorical, spec.target], label)
    y, positive = _encode_target_arrow(table.column(spec.target), spec.target, label)
    labels = pc.unique(table.column(spec.target)).to_pylist()
    negative = next(v for v in labels if v != positive)
    codes, split_desc = _split_codes(
        table,
        spec,
        fractions,
        time_split=time_split,
        salt=salt,
        partition_columns=partition_columns,
        label=label,
    )
    _check_splits_not_empty(codes, fractions, split_desc, label)
    out, missing, imputation = _output_table(table, spec, y, codes == 0)
    for change in schema_changes:
        if change["value"] is None:
            change["value"] = imputation.get(change["column"])
    batches = _batch_provenance(parts, Path(batch_root) if batch_root is not None else None)
    if batches is not None:
        out = out.append_column(BATCH_COLUMN, batches)
    details = [
        {"path": p.label, "kind": p.kind, "files": len(p.files), "rows": p.table.num_rows}
        for p in parts
    ]
    files = [f for p in parts for f in (p.files or [p.label])]
    rows = table.num_rows
    del table, parts
    return _write_prepared(
        Path(out_root),
        out,
        codes,
        y,
        fractions,
        Manifest(
            path=Path(),
            sha256="",
            spec=spec,
            splits={},
            sources=files,
            missing=missing,
            created_at="",
            rows=rows,
            target_labels={"positive": _jsonable(positive), "negative": _jsonable(negative)},
            split=split_desc,
            imputation=imputation,
            source_details=details,
            selection=selection,
            schema_changes=schema_changes,
            batches=_batch_ids(batches),
        ),
    )


def _write_prepared(
    out_root: Path,
    out: pa.Table,
    codes: np.ndarray,
    y: np.ndarray,
    fractions: Sequence[float],
    manifest: Manifest,
) -> Manifest:
    if out_root.exists() and not out_root.is_dir():
        raise DataValidationError(f"{out_root}: the prepared-data root is not a folder")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataValidationError(
            f"{out_root}: cannot create the prepared-data root: {brief(exc)}"
        ) from exc
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-prepare-", dir=out_root))
    try:
        paths = _write_splits(out, codes, tmp)
        manifest.splits = _split_infos(codes, y, paths, fractions)
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
