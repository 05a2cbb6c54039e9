"""Schema changes between the sources of one preparation, decided by one rule.

A feature that a batch lacks, or holds only missing values for, is a **schema change** of that
batch. Its rows are imputed — with the value production learned for the feature (its training
median, handed in by the caller as ``learned``), else with the median of the training rows that
have it (the ordinary imputation) — and every change is recorded in the manifest
(``schema_changes``: column, source, kind, rows, value) and logged with its row count. Unless
the rows imputed this way exceed ``max_imputed_row_share`` of all rows for one feature: then
preparation fails naming the column and the batches, since a model trained mostly on a constant
would not learn that feature at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.data.messages import quote
from model.data.source import SourceTable
from model.data.spec import RESERVED_LOG_COLUMNS, FeatureSpec
from model.errors import DataValidationError

DEFAULT_MAX_IMPUTED_ROW_SHARE = 0.2
"""Above this share of a feature's rows imputed because of schema changes, training fails."""

log = logging.getLogger(__name__)


def _all_missing(col: pa.ChunkedArray) -> bool:
    if col.null_count == len(col):
        return True
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        empty = pc.or_(pc.is_null(col), pc.equal(pc.utf8_trim_whitespace(col), ""))
        return bool(pc.all(empty).as_py())
    if pa.types.is_floating(col.type):
        return bool(pc.all(pc.is_nan(pc.fill_null(col, float("nan")))).as_py())
    return False


AllMissing = Callable[[int, str], bool]
"""Whether source ``i`` holds only missing values of a column (streamed sources: counted as
read, :mod:`model.data.stream_prepare`)."""


def find_schema_changes(
    parts: Sequence[SourceTable], spec: FeatureSpec, all_missing: AllMissing | None = None
) -> list[dict[str, Any]]:
    """One entry per (feature, source) where the source lacks the feature or has it all-missing.

    Only meaningful for several sources: a single source lacking a feature has no feature.
    """
    if len(parts) < 2:
        return []
    if all_missing is None:

        def all_missing(i: int, name: str) -> bool:
            return _all_missing(parts[i].table.column(name))

    changes = []
    for i, part in enumerate(parts):
        rows = part.num_rows
        if rows == 0:
            continue
        names = set(part.table.column_names)
        for feature in spec.features:
            if feature not in names:
                kind = "missing"
            elif all_missing(i, feature):
                kind = "all_missing"
            else:
                continue
            changes.append({"column": feature, "source": part.label, "kind": kind, "rows": rows})
    return changes


def drop_extra_columns(table: pa.Table, parts: Sequence[SourceTable]) -> pa.Table:
    """Columns that only later sources have (not the first, the base data) are ignored, with a
    warning naming them and where they appeared (none for the prediction log's reserved
    columns, which a labelled batch from ``retrain labels add`` carries)."""
    if len(parts) < 2:
        return table
    base = set(parts[0].table.column_names)
    partitions = {c for p in parts for c in p.partition_columns}  # provenance, never features
    extra = [n for n in table.column_names if n not in base and n not in partitions]
    for name in extra:
        if name in RESERVED_LOG_COLUMNS:  # a labelled batch's served version: expected
            continue
        where = [p.label for p in parts[1:] if name in p.table.column_names]
        log.warning(
            "extra column %s in %s ignored (not in %s)",
            quote(name),
            ", ".join(where),
            parts[0].label,
        )
    return table.drop_columns(extra) if extra else table


def apply_schema_policy(
    table: pa.Table,
    parts: Sequence[SourceTable],
    spec: FeatureSpec,
    *,
    learned: Mapping[str, Any] | None = None,
    max_imputed_row_share: float = DEFAULT_MAX_IMPUTED_ROW_SHARE,
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Decide every schema change (see the module): the table with learned values filled in,
    and the changes to record. Raises when a feature's imputed share is over the limit."""
    changes = decide_schema_changes(
        parts, spec, learned=learned, max_imputed_row_share=max_imputed_row_share
    )
    if not changes:
        return table, []
    offsets = np.cumsum([0, *[p.table.num_rows for p in parts]])
    index = {p.label: i for i, p in enumerate(parts)}
    for change in changes:
        value, column = change["value"], change["column"]
        if value is not None:
            i = index[change["source"]]
            mask = np.zeros(table.num_rows, dtype=bool)
            mask[offsets[i] : offsets[i + 1]] = True
            col = pc.cast(table.column(column), pa.float64())
            filled = pc.if_else(pa.array(mask), pa.scalar(float(value)), col)
            table = table.set_column(table.schema.get_field_index(column), column, filled)
    return table, changes


def decide_schema_changes(
    parts: Sequence[SourceTable],
    spec: FeatureSpec,
    *,
    learned: Mapping[str, Any] | None = None,
    max_imputed_row_share: float = DEFAULT_MAX_IMPUTED_ROW_SHARE,
    all_missing: AllMissing | None = None,
) -> list[dict[str, Any]]:
    """The schema changes of ``parts`` (see the module), each with the value it is imputed
    with (``value``: production's, else None for the training median or the missing level)
    and where that comes from, logged. Raises when a feature's imputed share is over the
    limit. A numeric column with a ``value`` is filled with it, as float64, in the source's
    rows (:func:`apply_schema_policy`)."""
    changes = find_schema_changes(parts, spec, all_missing)
    if not changes:
        return []
    total = sum(p.num_rows for p in parts)
    by_column: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_column.setdefault(change["column"], []).append(change)
    for column, items in by_column.items():
        rows = sum(c["rows"] for c in items)
        if rows / total > max_imputed_row_share:
            where = ", ".join(
                f"{PurePath(c['source']).name} ({c['kind'].replace('_', '-')})" for c in items
            )
            raise DataValidationError(
                f"column {quote(column)} is missing or all-missing in {where}: {rows:,} of "
                f"{total:,} rows ({rows / total:.0%}) would be imputed, more than "
                f"max_imputed_row_share {max_imputed_row_share:.0%}; fix the batches or raise "
                "the limit"
            )
    learned = dict(learned or {})
    for change in changes:
        column = change["column"]
        value = learned.get(column) if column in spec.numeric else None
        change["value"] = value
        if value is not None:
            change["value_from"] = "production"
        elif column in spec.categorical:
            change["value_from"] = "the missing level"
        else:
            change["value_from"] = "training median"
        log.warning(
            "schema change: %s %s in %s (%d rows); imputed with %s",
            quote(column),
            change["kind"].replace("_", "-"),
            change["source"],
            change["rows"],
            f"production's value {value!r}" if value is not None else "the training median",
        )
    return changes
