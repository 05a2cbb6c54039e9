"""Late labels joined to the prediction log: the labelled batch the next cycle trains on.

:func:`add_labels` reads a labels file (CSV or Parquet: an id column and a label column),
joins each label to the newest logged prediction of its id, and writes
``incoming/date=YYYY-MM-DD/labels-<hash>.parquet`` with the id, the features as they were
served, the label (as the cycle's target column) and the served version. Every label row is
accounted for: added, no id, no label, a duplicate of another row (same id, same label), a
conflict (same id, different labels: none of its rows is used), never served (the id is not
in the log) or already added by an earlier call (so re-adding a file adds nothing twice).
The joined labels (id, label) also go to ``<log>/labels/``, where the live gate's adapter
(:mod:`model.live.labelled_log`) reads them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.data import RESERVED_LOG_COLUMNS, read_source
from model.errors import DataValidationError
from model.serving.features import id_text
from model.serving.log import LABEL, LABELS_FOLDER, REQUEST_TIME, SERVED_VERSION, read_log

LABELS_PREFIX = "labels-"


@dataclass
class LabelsResult:
    """What became of each row of a labels file."""

    labels_file: str
    rows: int
    added: int = 0
    no_id: int = 0
    no_label: int = 0
    duplicates: int = 0
    conflicting: int = 0
    never_served: int = 0
    already_added: int = 0
    batch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def accounted(self) -> int:
        return (
            self.added
            + self.no_id
            + self.no_label
            + self.duplicates
            + self.conflicting
            + self.never_served
            + self.already_added
        )


def _labelled_ids(incoming_dir: Path, id_column: str) -> set[str]:
    """Ids already in a labelled batch written by an earlier call."""
    done: set[str] = set()
    if not incoming_dir.is_dir():
        return done
    for path in sorted(incoming_dir.glob(f"date=*/{LABELS_PREFIX}*.parquet")):
        try:
            column = pq.read_table(path, columns=[id_column]).column(id_column)
        except (pa.ArrowInvalid, KeyError, OSError) as exc:
            raise DataValidationError(
                f"{path}: an earlier labelled batch is unreadable: {exc}"
            ) from exc
        done.update(id_text(v) for v in column.to_pylist() if v is not None)
    return done


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def add_labels(
    labels_path: str | Path,
    *,
    log_folder: Path,
    incoming_dir: Path,
    id_column: str,
    label_column: str,
    target: str = "target",
    day: dt.date | None = None,
) -> LabelsResult:
    """Join the labels in ``labels_path`` to the prediction log in ``log_folder`` and write
    the labelled batch into ``incoming_dir/date=<day>/`` (today, UTC, by default)."""
    source = read_source(Path(labels_path))
    table, label = source.table, source.label
    for role, name in (("id", id_column), ("label", label_column)):
        if name not in table.column_names:
            raise DataValidationError(
                f"{label}: no {role} column {name!r} (columns: {table.column_names[:20]})"
            )
    result = LabelsResult(labels_file=label, rows=table.num_rows)
    log = read_log(log_folder)
    if log is None:
        raise DataValidationError(
            f"{log_folder}: no prediction log (nothing was served for this model)"
        )
    log_id = id_column if id_column in log.column_names else "id"
    if log_id not in log.column_names:
        raise DataValidationError(f"{log_folder}: the prediction log has no id column {log_id!r}")
    newest = _newest_row_per_id(log, log_id)
    done = _labelled_ids(incoming_dir, id_column)
    raw_ids = table.column(id_column).to_pylist()
    raw_labels = table.column(label_column).to_pylist()
    by_id: dict[str, list[int]] = {}
    for i, (ident, value) in enumerate(zip(raw_ids, raw_labels, strict=True)):
        if ident is None or (isinstance(ident, str) and not ident.strip()):
            result.no_id += 1
        elif value is None or (isinstance(value, str) and not value.strip()):
            result.no_label += 1
        else:
            by_id.setdefault(id_text(ident), []).append(i)
    picked: list[int] = []
    log_rows: list[int] = []
    for key, rows in by_id.items():
        values = {repr(raw_labels[i]) for i in rows}
        if len(values) > 1:
            result.conflicting += len(rows)
            continue
        result.duplicates += len(rows) - 1
        if key not in newest:
            result.never_served += 1
        elif key in done:
            result.already_added += 1
        else:
            picked.append(rows[0])
            log_rows.append(newest[key])
    result.added = len(picked)
    if picked:
        batch = _batch_table(table, log, picked, log_rows, id_column, label_column, log_id, target)
        digest = hashlib.sha256(
            "\n".join(f"{id_text(raw_ids[i])}\t{raw_labels[i]!r}" for i in sorted(picked)).encode()
        ).hexdigest()[:16]
        day = day or dt.datetime.now(dt.UTC).date()
        joined = pa.table(
            {
                "id": pa.array([id_text(raw_ids[i]) for i in picked], pa.string()),
                LABEL: table.column(label_column).take(pa.array(picked, pa.int64())),
            }
        )
        _write_atomic(joined, log_folder / LABELS_FOLDER / f"{LABELS_PREFIX}{digest}.parquet")
        path = incoming_dir / f"date={day.isoformat()}" / f"{LABELS_PREFIX}{digest}.parquet"
        _write_atomic(batch, path)
        result.batch = path.as_posix()
    return result


def _newest_row_per_id(log: pa.Table, log_id: str) -> dict[str, int]:
    """Each id's newest logged row (by request time)."""
    order = pc.sort_indices(log, sort_keys=[(REQUEST_TIME, "ascending")]).to_pylist()
    ids = log.column(log_id).to_pylist()
    newest: dict[str, int] = {}
    for i in order:
        if ids[i] is not None:
            newest[id_text(ids[i])] = i
    return newest


def _batch_table(
    labels: pa.Table,
    log: pa.Table,
    picked: list[int],
    log_rows: list[int],
    id_column: str,
    label_column: str,
    log_id: str,
    target: str,
) -> pa.Table:
    served = log.take(pa.array(log_rows, pa.int64()))
    features = [c for c in log.column_names if c not in RESERVED_LOG_COLUMNS and c != log_id]
    if target in features:
        raise DataValidationError(
            f"the prediction log has a feature named like the target column {target!r}"
        )
    take = pa.array(picked, pa.int64())
    columns: dict[str, Any] = {id_column: labels.column(id_column).take(take)}
    for name in features:
        columns[name] = _as_logged(served.column(name))
    columns[target] = labels.column(label_column).take(take)
    columns[SERVED_VERSION] = served.column(SERVED_VERSION)
    return pa.table(columns)


def _as_logged(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A categorical feature is logged as text; integer codes (the JSON sent 1, logged "1")
    go back to integers, the type the training data has them in."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    present = pc.drop_null(column)
    if len(present) == 0 or not pc.all(pc.match_substring_regex(present, r"^-?\d{1,18}$")).as_py():
        return column
    return pc.cast(column, pa.int64())
