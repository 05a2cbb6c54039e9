"""``prepare``: read sources, validate them against a feature spec, impute missing values,
split rows stably and write ``train/val/test.parquet`` plus ``manifest.json`` into
``<out_root>/<content hash>/`` (a temporary folder renamed when complete; an existing folder with
the same content hash is reused). The work is done in Arrow and NumPy, column by column, so ten
million rows fit in a few times their own size in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from model.data.manifest import ALL_SOURCES, Manifest, SplitInfo
from model.data.messages import quote
from model.data.output import (
    BATCH_COLUMN,
    BATCH_PARTITION,
    SplitWriter,
    _batch_ids,
    _batch_provenance,
    _jsonable,
    _split_infos,
    _write_prepared,
    _write_splits,
    split_counts,
)
from model.data.read import Sources, _as_list, read_sources
from model.data.schema import DEFAULT_MAX_IMPUTED_ROW_SHARE, apply_schema_policy, drop_extra_columns
from model.data.spec import FeatureSpec, _resolve_spec
from model.data.split import DEFAULT_SPLIT, _check_fractions, _check_splits_not_empty, _split_codes
from model.data.stream_prepare import prepare_streamed, streamed_preparation
from model.data.validate import (
    _check_level_lengths,
    _check_not_all_null,
    _check_spec_types,
    _encode_target_arrow,
    _output_table,
    number_range_problem,
)
from model.errors import DataValidationError

__all__ = ["BATCH_COLUMN", "BATCH_PARTITION", "SplitWriter", "prepare"]


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
    memory_budget: int | None = None,
    executor: Executor | None = None,
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

    ``memory_budget`` (bytes): when the sources are Parquet and reading them whole would not
    fit, they are streamed (:mod:`model.data.stream_prepare`: the same folder, byte for
    byte); the manifest's ``preparation`` says which way, and the budget. ``executor`` (a
    Dask client's, :mod:`model.cluster`): Parquet sources are streamed whatever their size,
    every pass partition-parallel on its workers (:mod:`model.data.stream_parallel`), for the
    same folder.
    """
    fractions = _check_fractions(split)
    if memory_budget is not None or executor is not None:
        budget = memory_budget if memory_budget is not None else _default_budget()
        streamed = streamed_preparation(_as_list(sources), budget, always=executor is not None)
        if streamed is not None:
            return prepare_streamed(
                streamed,
                Path(out_root),
                memory_budget=budget,
                spec=spec,
                target=target,
                id_column=id_column,
                timestamp_column=timestamp_column,
                fractions=fractions,
                time_split=time_split,
                salt=salt,
                exclude=exclude,
                detect_id=detect_id,
                selection=selection,
                categorical_columns=categorical_columns,
                numeric_columns=numeric_columns,
                learned_values=learned_values,
                max_imputed_row_share=max_imputed_row_share,
                batch_root=batch_root,
                executor=executor,
            )
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
    _check_splits_not_empty(np.bincount(codes, minlength=3), fractions, split_desc, label)
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

    def write(folder: Path) -> dict[str, SplitInfo]:
        return _split_infos(*split_counts(codes, y), _write_splits(out, codes, folder), fractions)

    return _write_prepared(
        Path(out_root),
        write,
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
            preparation=(
                {"streamed": False, "memory_budget": memory_budget} if memory_budget else {}
            ),
        ),
    )


def _default_budget() -> int:
    """The settings' default budget, imported only when needed (the settings' imports cost
    a streamed preparation about 60 MiB of its RSS)."""
    from model.settings import DEFAULT_MEMORY_BUDGET

    return DEFAULT_MEMORY_BUDGET
