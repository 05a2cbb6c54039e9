"""``prepare`` for data larger than memory: Parquet sources read in record batches, never
whole, in a few passes with bounded memory, giving the same prepared folder (the same
split files, byte for byte, the same manifest and content hash) as reading them whole.

:func:`streamed_preparation` decides: every source is a Parquet file or folder (no
DataFrame, CSV or ``key=value`` partition folder) and the in-memory preparation's estimated
peak (:data:`IN_MEMORY_FACTOR` times the data's size from the footers) is over the memory
budget. :func:`prepare_streamed` then reads the rows, at most ``rows`` at a time (from the
budget), in these passes:

1. **checks**, column by column (:meth:`StreamedSources.check`): the checks of reading
   whole, which sources hold a column only missing (schema changes) and numbers a model
   cannot read;
2. **statistics**: missing values, level lengths, the target's labels, the split keys (their
   codes go to a scratch file, one byte a row; their duplicates are counted bucket by
   bucket) or a time split's timestamps (to a scratch file, then its cuts as exact order
   statistics);
3. **medians** of the numeric columns with missing values, over the training rows, exact:
   a radix selection (:mod:`model.data.select`), usually two passes over those columns;
4. **writing**: imputed, encoded and written by :class:`model.data.output.SplitWriter` in
   the same row groups as the in-memory path.

The errors are those of the in-memory path, in its order; a row is numbered in the
concatenation of the sources.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from model.data.fragments import Part
from model.data.manifest import Manifest, SplitInfo
from model.data.messages import quote
from model.data.output import (
    BATCH_COLUMN,
    SplitWriter,
    _jsonable,
    _split_infos,
    _write_prepared,
    batch_name,
    prepared_root,
)
from model.data.schema import decide_schema_changes, drop_extra_columns
from model.data.spec import MISSING_LEVEL, FeatureSpec, _resolve_spec
from model.data.stream_parallel import Parallel, written_pieces
from model.data.stream_source import FilledReader, StreamedSources
from model.data.stream_stats import Statistics
from model.data.stream_stats import medians as stream_medians
from model.data.validate import (
    _check_spec_types,
    _impute_categorical,
    float_values,
    target_codes,
)
from model.errors import DataValidationError

log = logging.getLogger(__name__)

IN_MEMORY_FACTOR = 4
"""The in-memory preparation's peak memory over its data's size estimated from the footers
(rows times the types' widths): it streams when the product passes the budget."""


def streamed_preparation(
    sources: Sequence[Any], memory_budget: int, *, always: bool = False
) -> StreamedSources | None:
    """The sources to stream, or None when they are read whole: one is no Parquet file or
    folder, or (unless ``always``) the in-memory preparation is estimated to fit in
    ``memory_budget``."""
    from model.data.stream_source import open_streamed

    streamed = open_streamed(sources)
    if streamed is None:
        return None
    size = sum(s.rows * _width(s.schema) for s in streamed.sources)
    return streamed if always or size * IN_MEMORY_FACTOR > memory_budget else None


def _width(schema: pa.Schema) -> int:
    return StreamedSources([], schema).row_bytes()


def chunk_rows(streamed: StreamedSources, memory_budget: int) -> int:
    """Rows read at a time: a sixteenth of the budget's worth (the passes hold a few copies
    of a chunk and the split writer's row groups), within [1,024, 262,144]."""
    width = max(_width(s.schema) for s in streamed.sources)
    return int(min(1 << 18, max(1024, memory_budget // (width * 16))))


def prepare_streamed(
    streamed: StreamedSources,
    out_root: Path,
    *,
    memory_budget: int,
    spec: FeatureSpec | None,
    target: str,
    id_column: str | None,
    timestamp_column: str | None,
    fractions: tuple[float, float, float],
    time_split: bool,
    salt: str,
    exclude: Sequence[str],
    detect_id: bool,
    selection: str,
    categorical_columns: Sequence[str],
    numeric_columns: Sequence[str],
    learned_values: Mapping[str, Any] | None,
    max_imputed_row_share: float,
    batch_root: str | Path | None,
    executor: Executor | None = None,
) -> Manifest:
    """:func:`model.data.prepare` of ``streamed`` in about ``memory_budget`` bytes (see the
    module); with ``executor``, every pass runs on its workers, fragment by fragment
    (:mod:`model.data.stream_parallel`), for the same folder."""
    rows = chunk_rows(streamed, memory_budget)
    log.info(
        "prepare: %d source(s), %d rows, streamed %d rows at a time within the memory budget "
        "of %d MiB",
        len(streamed.sources),
        streamed.rows,
        rows,
        memory_budget >> 20,
    )
    parallel = Parallel(executor) if executor is not None else None
    streamed.check(rows, parallel.counter if parallel is not None else None)
    parts = streamed.parts
    label = ", ".join(p.label for p in parts)
    table = drop_extra_columns(streamed.schema.empty_table(), parts)
    spec = _resolve_spec(
        table,
        spec,
        target=target,
        id_column=id_column,
        timestamp_column=timestamp_column,
        exclude=exclude,
        partition_columns=[],
        label=label,
        detect_id=detect_id,
        categorical_columns=categorical_columns,
        numeric_columns=numeric_columns,
    )
    spec.check(table, source=label, strict=True)
    changes = decide_schema_changes(
        parts,
        spec,
        learned=learned_values,
        max_imputed_row_share=max_imputed_row_share,
        all_missing=lambda i, name: streamed.all_missing.get((i, name), True),
    )
    index = {p.label: i for i, p in enumerate(parts)}
    fills = {
        (index[c["source"]], c["column"]): float(c["value"])
        for c in changes
        if c["value"] is not None
    }
    for role, col in (("id", spec.id_column), ("timestamp", spec.timestamp_column)):
        if col is not None and col not in table.column_names:
            raise DataValidationError(f"{label}: the spec's {role} column {quote(col)} is missing")
    _check_spec_types(spec, table, label)
    for i in range(len(parts)):
        for name in spec.numeric:
            if (i, name) in streamed.range_problems:
                raise DataValidationError(streamed.range_problems[(i, name)])
    created, writing = not Path(out_root).exists(), False
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-stream-", dir=prepared_root(Path(out_root))))
    try:
        reader = FilledReader(streamed, rows, fills)
        stats = Statistics(spec, table.column_names, fractions, time_split, salt, label)
        stats.run(reader, scratch, memory_budget, parallel.statistics if parallel else None)
        median_passes = parallel.medians(reader) if parallel is not None else None
        medians = stream_medians(reader, spec, stats, memory_budget, median_passes)
        batch_root_path = Path(batch_root) if batch_root is not None else None
        names = [batch_name(p, batch_root_path) for p in parts]
        manifest = Manifest(
            path=Path(),
            sha256="",
            spec=spec,
            splits={},
            sources=[f for p in parts for f in (p.files or [p.label])],
            missing={},
            created_at="",
            rows=streamed.rows,
            target_labels={
                "positive": _jsonable(stats.positive),
                "negative": _jsonable(next(v for v in stats.labels if v != stats.positive)),
            },
            split=stats.split_desc,
            imputation={},
            source_details=[
                {"path": p.label, "kind": p.kind, "files": len(p.files), "rows": p.num_rows}
                for p in parts
            ],
            selection=selection,
            schema_changes=changes,
            batches=sorted(
                {n for n, p in zip(names, parts, strict=True) if n is not None and p.num_rows},
                key=_batch_key,
            ),
            preparation={
                "streamed": True,
                "memory_budget": memory_budget,
                "chunk_rows": rows,
                **({"engine": "dask"} if executor is not None else {}),
            },
        )

        def write(folder: Path) -> dict[str, SplitInfo]:
            output = Output(spec, medians, stats.positive, names)
            return _write(reader, output, manifest, fractions, folder, executor)

        writing = True
        return _write_prepared(Path(out_root), write, manifest)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        # a failure before writing leaves no root behind, as reading whole never made one
        if created and not writing and not any(Path(out_root).iterdir()):
            Path(out_root).rmdir()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _batch_key(name: str) -> Any:
    from model.data.batches import batch_sort_key

    return batch_sort_key(name)


@dataclass
class PieceCounts:
    """What the writing pass counts: each feature's missing values, and each split's rows
    and positive rows."""

    missing: dict[str, int]
    rows: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    positives: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))

    def merge(self, later: PieceCounts) -> None:
        for name, count in later.missing.items():
            self.missing[name] += count
        self.rows += later.rows
        self.positives += later.positives


@dataclass(frozen=True)
class Output:
    """How the writing pass makes the prepared columns of a chunk: the spec, the medians and
    the positive label learned, and each source's batch name (or None)."""

    spec: FeatureSpec
    medians: Mapping[str, float]
    positive: Any
    names: list[str | None]

    @property
    def columns(self) -> list[str]:
        spec = self.spec
        roles = [c for c in (spec.id_column, spec.timestamp_column) if c is not None]
        return list(dict.fromkeys([*roles, *spec.numeric, *spec.categorical, spec.target]))

    def counts(self) -> PieceCounts:
        return PieceCounts(dict.fromkeys([*self.spec.numeric, *self.spec.categorical], 0))

    def pieces(
        self, reader: FilledReader, counts: PieceCounts, part: Part | None = None
    ) -> Generator[tuple[pa.Table, np.ndarray]]:
        """Each chunk (of ``part`` only, when given) imputed and encoded as
        ``_output_table`` does the whole table, with its split codes; counted in
        ``counts``."""
        spec, medians = self.spec, self.medians
        roles = [c for c in (spec.id_column, spec.timestamp_column) if c is not None]
        with_batch = any(n is not None for n in self.names)
        for i, table, codes in reader.with_codes(self.columns, part):
            out: dict[str, Any] = {c: table.column(c) for c in roles}
            for name in spec.numeric:
                col = table.column(name)
                if name in medians:
                    values = float_values(col)
                    gaps = np.isnan(values)
                    counts.missing[name] += int(gaps.sum())
                    values[gaps] = medians[name]
                    col = pa.array(values)
                out[name] = col
            for name in spec.categorical:
                out[name], count = _impute_categorical(table.column(name))
                counts.missing[name] += count
            y = target_codes(table.column(spec.target), self.positive)
            out[spec.target] = pa.array(y.astype(np.int64))
            if with_batch:
                batch = self.names[i]
                out[BATCH_COLUMN] = (
                    pa.nulls(table.num_rows, pa.string())
                    if batch is None
                    else pa.repeat(pa.scalar(batch, pa.string()), table.num_rows)
                )
            counts.rows += np.bincount(codes, minlength=3)
            counts.positives += np.bincount(codes, weights=y, minlength=3).astype(np.int64)
            yield pa.table(out), codes


def _write(
    reader: FilledReader,
    output: Output,
    manifest: Manifest,
    fractions: Sequence[float],
    folder: Path,
    executor: Executor | None = None,
) -> dict[str, SplitInfo]:
    """The writing pass: each chunk made by ``output`` (on ``executor``'s workers, when
    given), written by the split writer; the manifest's missing counts and imputation."""
    counts = output.counts()
    if executor is None:
        pieces = output.pieces(reader, counts)
    else:
        pieces = written_pieces(output, reader, counts, executor, folder)
    writer: SplitWriter | None = None
    try:
        for piece, codes in pieces:
            if writer is None:
                writer = SplitWriter(folder, piece.schema)
            writer.write(piece, codes)
        assert writer is not None
        paths = writer.finish()
    finally:
        pieces.close()  # a failure here ends the workers' pieces (their files) too
        if writer is not None:
            writer.close()
    medians = output.medians
    manifest.missing = counts.missing
    manifest.imputation = {
        **{c: medians[c] for c in output.spec.numeric if c in medians},
        **{c: MISSING_LEVEL for c in output.spec.categorical if counts.missing[c]},
    }
    for change in manifest.schema_changes:
        if change["value"] is None:
            change["value"] = manifest.imputation.get(change["column"])
    return _split_infos(counts.rows, counts.positives, paths, fractions)
