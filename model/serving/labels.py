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

import contextlib
import datetime as dt
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.data import RESERVED_LOG_COLUMNS, load_manifest, read_source
from model.data.contract import BatchContract
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


def production_contract(models_dir: Path, home: Path) -> BatchContract | None:
    """The production model's :class:`BatchContract` (from the manifest of the data it was
    trained on; a relative manifest path is read from the working root ``home``), or None
    when there is no production model. An unreadable manifest is an error naming it."""
    from model.registry import ModelRegistry

    registry = ModelRegistry(models_dir)
    prod = registry.production()
    if prod is None:
        return None
    ref = (registry.metadata(prod.version).get("data_manifest") or {}).get("path")
    if not ref:
        raise DataValidationError(
            f"production {prod.version}: model.json names no training data manifest, so labels "
            "cannot be checked against its classes and types"
        )
    folder = Path(ref) if Path(ref).is_absolute() else Path(home) / ref
    manifest = load_manifest(folder)
    return BatchContract.from_manifest(manifest, f"production {prod.version}'s training data")


def labels_files(incoming_dir: Path) -> list[Path]:
    """The labelled batches written by earlier calls (``<batch>/labels-*.parquet``; the
    quarantine and other hidden folders left out)."""
    if not incoming_dir.is_dir():
        return []
    return sorted(
        p
        for p in incoming_dir.glob(f"*/{LABELS_PREFIX}*.parquet")
        if not p.parent.name.startswith((".", "_"))
    )


def _labelled_ids(incoming_dir: Path, id_column: str) -> set[str]:
    """Ids already in a labelled batch written by an earlier call."""
    done: set[str] = set()
    for path in labels_files(incoming_dir):
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
    target: str | None = None,
    day: dt.date | None = None,
    contract: BatchContract | None = None,
    batch_id_column: str | None = None,
) -> LabelsResult:
    """Join the labels in ``labels_path`` to the prediction log in ``log_folder`` and write
    the labelled batch into ``incoming_dir/date=<day>/`` (today, UTC, by default).

    With ``contract`` (the model's, :class:`~model.data.contract.BatchContract`), the batch is
    one a later cycle can use, or nothing is written: every label must be one of the model's
    two classes (written in its training encoding), every id of its id column's type, and the
    features go back to their training types; otherwise a ``DataValidationError`` names the
    file, the column and the first bad value. ``target`` (default: the contract's target, else
    ``target``) and ``batch_id_column`` (default: the contract's id column, else
    ``id_column``) name the batch's columns.
    """
    source = read_source(Path(labels_path))
    table, label = source.table, source.label
    for role, name in (("id", id_column), ("label", label_column)):
        if name not in table.column_names:
            raise DataValidationError(
                f"{label}: no {role} column {name!r} (columns: {table.column_names[:20]})"
            )
    target = target or (contract.target if contract else "target")
    out_id = batch_id_column or (contract.id_column if contract else None) or id_column
    raw_ids = table.column(id_column).to_pylist()
    raw_labels = table.column(label_column).to_pylist()
    present = [(i, v) for i, v in enumerate(raw_labels) if not _blank(v)]
    if contract is not None:  # at the door: nothing a later cycle cannot use
        _check_values(contract, raw_ids, raw_labels, label, id_column, label_column)
    else:
        _check_binary([v for _, v in present], label, label_column)
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
    done = _labelled_ids(incoming_dir, out_id)
    by_id: dict[str, list[int]] = {}
    for i, (ident, value) in enumerate(zip(raw_ids, raw_labels, strict=True)):
        if _blank(ident):
            result.no_id += 1
        elif _blank(value):
            result.no_label += 1
        else:
            by_id.setdefault(id_text(ident), []).append(i)
    picked: list[int] = []
    log_rows: list[int] = []
    for key, rows in by_id.items():
        values = {_class_key(contract, raw_labels[i]) for i in rows}
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
        columns = _Columns(label, id_column, label_column, out_id, target, log_id)
        batch = _batch_table(table, log, picked, log_rows, columns, contract)
        digest = hashlib.sha256(
            "\n".join(f"{id_text(raw_ids[i])}\t{raw_labels[i]!r}" for i in sorted(picked)).encode()
        ).hexdigest()[:16]
        day = day or dt.datetime.now(dt.UTC).date()
        chosen = [raw_labels[i] for i in picked]
        joined_labels = (
            pa.array([contract.label_class(v) for v in chosen], pa.int8())
            if contract is not None
            else table.column(label_column).take(pa.array(picked, pa.int64()))
        )
        joined = pa.table(
            {
                "id": pa.array([id_text(raw_ids[i]) for i in picked], pa.string()),
                LABEL: joined_labels,
            }
        )
        _write_atomic(joined, log_folder / LABELS_FOLDER / f"{LABELS_PREFIX}{digest}.parquet")
        path = incoming_dir / f"date={day.isoformat()}" / f"{LABELS_PREFIX}{digest}.parquet"
        _write_atomic(batch, path)
        result.batch = path.as_posix()
    return result


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _class_key(contract: BatchContract | None, value: Any) -> str:
    """What makes two labels of one id the same (1 and True are one class of a 0/1 model)."""
    if contract is not None:
        return str(contract.label_class(value))
    return repr(value)


def _check_values(
    contract: BatchContract,
    ids: list[Any],
    labels: list[Any],
    where: str,
    id_column: str,
    label_column: str,
) -> None:
    """Every present label is a class of the model and every present id has its type."""
    contract.target_array([v for v in labels if not _blank(v)], where, label_column)
    contract.id_array([v for v in ids if not _blank(v)], where, id_column)


def _check_binary(values: list[Any], where: str, column: str) -> None:
    """Without the model's classes: at most two distinct labels, of one type."""
    distinct = {repr(v) for v in values}
    if len(distinct) > 2 or len({type(v) for v in values}) > 1:
        shown = sorted(distinct)[:5]
        raise DataValidationError(
            f"{where}: column {column!r} holds {len(distinct)} distinct labels {shown}; a "
            "binary model has exactly two classes"
        )


def _newest_row_per_id(log: pa.Table, log_id: str) -> dict[str, int]:
    """Each id's newest logged row (by request time)."""
    order = pc.sort_indices(log, sort_keys=[(REQUEST_TIME, "ascending")]).to_pylist()
    ids = log.column(log_id).to_pylist()
    newest: dict[str, int] = {}
    for i in order:
        if ids[i] is not None:
            newest[id_text(ids[i])] = i
    return newest


@dataclass(frozen=True)
class _Columns:
    """The names one ``add_labels`` call works with."""

    where: str
    id_column: str
    label_column: str
    out_id: str
    target: str
    log_id: str


def _batch_table(
    labels: pa.Table,
    log: pa.Table,
    picked: list[int],
    log_rows: list[int],
    names: _Columns,
    contract: BatchContract | None,
) -> pa.Table:
    served = log.take(pa.array(log_rows, pa.int64()))
    features = [c for c in log.column_names if c not in RESERVED_LOG_COLUMNS and c != names.log_id]
    if names.target in features:
        raise DataValidationError(
            f"the prediction log has a feature named like the target column {names.target!r}"
        )
    take = pa.array(picked, pa.int64())
    ids = labels.column(names.id_column).take(take)
    values = labels.column(names.label_column).take(take)
    columns: dict[str, Any] = {}
    if contract is not None:
        columns[names.out_id] = contract.id_array(ids.to_pylist(), names.where, names.id_column)
        for name in features:
            where = f"{names.where} (the prediction log)"
            column = served.column(name)
            known = name in contract.features
            columns[name] = (
                contract.feature_array(name, column, where) if known else _as_logged(column)
            )
        columns[names.target] = contract.target_array(
            values.to_pylist(), names.where, names.label_column
        )
    else:
        columns[names.out_id] = ids
        for name in features:
            columns[name] = _as_logged(served.column(name))
        columns[names.target] = values
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


def _find_labels_file(name: str, incoming_dir: Path, home: Path) -> Path:
    """The labelled batch file ``name`` names: its file name (``labels-<hash>.parquet``, or
    the hash) or its path (absolute, or relative to the current folder, the incoming folder or
    the working root)."""
    given = Path(name)
    if len(given.parts) > 1:
        tries = [given, incoming_dir / given, home / given]
        found = [p for p in tries if p.is_file()][:1]
    else:
        names = {name, f"{name}.parquet", f"{LABELS_PREFIX}{name}.parquet"}
        found = [p for p in labels_files(incoming_dir) if p.name in names]
    if not found:
        raise DataValidationError(
            f"{name}: no labelled batch of that name in {incoming_dir} "
            "(give the labels-<hash>.parquet that `retrain labels add` printed)"
        )
    if len(found) > 1:
        shown = ", ".join(str(p.relative_to(incoming_dir)) for p in found)
        raise DataValidationError(f"{name}: names several labelled batches ({shown}); give a path")
    path = found[0].absolute()
    inside = path.parent.parent.resolve() == incoming_dir.resolve()
    if not inside or not path.name.startswith(LABELS_PREFIX):
        raise DataValidationError(
            f"{path}: not a labelled batch of {incoming_dir} (only files `retrain labels add` "
            "wrote, <batch>/labels-<hash>.parquet, are undone)"
        )
    return path


def _trained_on(path: Path, models_dir: Path, home: Path) -> list[str]:
    """The registered versions whose training data included the file ``path``."""
    from model.registry import ModelRegistry

    registry = ModelRegistry(models_dir)
    target = path.resolve()
    versions: list[str] = []
    for info in registry.versions():
        try:
            ref = (registry.metadata(info.version).get("data_manifest") or {}).get("path")
            if not ref:
                continue
            folder = Path(ref) if Path(ref).is_absolute() else home / ref
            sources = load_manifest(folder).sources
        except (DataValidationError, OSError):  # its data is gone: it cannot be undone either
            continue
        if any(Path(s).resolve() == target for s in sources):
            versions.append(info.version)
    return versions


def undo_labels(
    name: str, *, incoming_dir: Path, log_folder: Path, models_dir: Path, home: Path
) -> list[Path]:
    """Remove a labelled batch file that no registered version was trained on, and its joined
    labels (``<log>/labels/``), so that its labels can be added again; returns what was
    removed. Refused, naming the versions, once a version was trained on it."""
    path = _find_labels_file(name, Path(incoming_dir), Path(home))
    trained = _trained_on(path, Path(models_dir), Path(home))
    if trained:
        raise DataValidationError(
            f"{path}: version(s) {', '.join(trained)} were trained on it; a batch a model was "
            "trained on stays (add corrected labels as a new batch instead)"
        )
    removed = [path]
    path.unlink()
    joined = log_folder / LABELS_FOLDER / path.name
    if joined.is_file():
        joined.unlink()
        removed.append(joined)
    folder = path.parent
    with contextlib.suppress(OSError):  # the batch folder, when nothing else is in it
        folder.rmdir()
    return removed
