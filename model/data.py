"""Reading, validating and preparing tabular data (no framework in here).

``read_table`` reads Parquet files, folders / hive-partitioned datasets and CSV files;
``prepare`` validates them against a :class:`FeatureSpec`, imputes missing values, splits rows
into train / val / test by a stable hash of a row key and writes the splits plus
``manifest.json`` into ``<out_root>/<content hash>/``. The work is done in Arrow and NumPy,
column by column, so ten million rows fit in a few times their own size in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from model.errors import DataValidationError


@dataclass
class FeatureSpec:
    """Which columns are features (numeric / categorical), the target, and what is excluded."""

    target: str = "target"
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    id_column: str | None = None
    timestamp_column: str | None = None
    excluded: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        if not isinstance(data, dict):
            raise DataValidationError(
                f"feature spec must be a JSON object, got {type(data).__name__}"
            )
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise DataValidationError(f"feature spec has unknown keys: {sorted(unknown, key=str)}")
        for key in ("numeric", "categorical", "excluded"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise DataValidationError(
                    f"feature spec: {key!r} must be a list of column names, got {value!r}"
                )
        for key in ("target", "id_column", "timestamp_column"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise DataValidationError(
                    f"feature spec: {key!r} must be a column name, got {value!r}"
                )
        return cls(
            target=str(data.get("target", "target")),
            numeric=list(data.get("numeric", [])),
            categorical=list(data.get("categorical", [])),
            id_column=data.get("id_column"),
            timestamp_column=data.get("timestamp_column"),
            excluded=list(data.get("excluded", [])),
        )

    def check(
        self,
        df: pd.DataFrame | pa.Table,
        source: str = "data",
        *,
        require_target: bool = True,
        strict: bool = False,
    ) -> None:
        """Raise DataValidationError naming missing feature (and target) columns.

        With ``strict``, columns the spec does not mention (not a feature, the target, the id,
        the timestamp or an excluded column) are an error too.
        """
        self.check_roles(source)
        columns = [str(c) for c in _column_names(df)]
        needed = list(self.features)
        if require_target:
            needed.append(self.target)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataValidationError(
                f"{source}: columns required by the feature spec are missing: {missing}"
            )
        if strict:
            known = {*self.features, self.target, self.id_column, self.timestamp_column}
            known.update(self.excluded)
            unexpected = [c for c in columns if c not in known]
            if unexpected:
                raise DataValidationError(
                    f"{source}: columns not in the feature spec: {unexpected} "
                    "(declare them as features or excluded columns)"
                )

    def check_roles(self, source: str = "feature spec") -> None:
        """Each column has one role: a feature once, never also the target, id, timestamp or
        an excluded column (a target declared as a feature would leak the label)."""
        features = self.features
        repeated = sorted({c for c in features if features.count(c) > 1})
        if repeated:
            raise DataValidationError(f"{source}: features listed more than once: {repeated}")
        roles = {"target": self.target, "id": self.id_column, "timestamp": self.timestamp_column}
        clashes = [f"{c!r} ({role})" for role, c in roles.items() if c and c in features]
        clashes += [f"{c!r} (excluded)" for c in self.excluded if c in features]
        if self.target in (self.id_column, self.timestamp_column):
            clashes.append(f"{self.target!r} (target, also declared as id or timestamp)")
        if clashes:
            raise DataValidationError(
                f"{source}: the feature spec declares as features columns with another role: "
                + ", ".join(clashes)
            )


def _column_names(df: pd.DataFrame | pa.Table) -> list[Any]:
    return list(df.column_names) if isinstance(df, pa.Table) else list(df.columns)


def is_categorical_dtype(series: pd.Series) -> bool:
    """pandas category, string, object and bool columns are categorical."""
    dtype = series.dtype
    return bool(
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def infer_spec(
    df: pd.DataFrame,
    target: str = "target",
    id_column: str | None = None,
    timestamp_column: str | None = None,
    exclude: Iterable[str] = (),
) -> FeatureSpec:
    """Infer numeric vs categorical features from dtypes; id/timestamp/excluded are not features."""
    excluded = [c for c in exclude if c in df.columns]
    skip = {target, id_column, timestamp_column, *excluded}
    numeric: list[str] = []
    categorical: list[str] = []
    for col in df.columns:
        if col in skip:
            continue
        if is_categorical_dtype(df[col]):
            categorical.append(str(col))
        elif pd.api.types.is_numeric_dtype(df[col]):
            numeric.append(str(col))
        else:  # datetimes and other non-feature types
            excluded.append(str(col))
    return FeatureSpec(
        target=target,
        numeric=numeric,
        categorical=categorical,
        id_column=id_column,
        timestamp_column=timestamp_column,
        excluded=excluded,
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

Source = str | Path | pd.DataFrame
Sources = Source | Sequence[Source]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")


@dataclass
class SourceTable:
    """One source read into Arrow: the table, what it was, its files and partition columns."""

    table: pa.Table
    label: str
    kind: str
    files: list[str] = field(default_factory=list)
    partition_columns: list[str] = field(default_factory=list)


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def _parquet_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name.endswith(PARQUET_SUFFIXES) and not _is_hidden(p, folder)
    ]
    return sorted(files)


def _read_csv(path: Path) -> pa.Table:
    with path.open("rb") as fh:
        header = fh.readline()
    if not header.strip():
        raise DataValidationError(f"{path}: empty input (no header line)")
    delimiter = "\t" if path.name.endswith(".tsv") else ","
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
        names = table.schema.names  # decoding the header can fail here
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"{path}: the header is not UTF-8 text: {exc}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        if "invalid UTF8" in str(exc) or "Invalid UTF8" in str(exc):
            raise DataValidationError(f"{path}: not UTF-8 text: {exc}") from exc
        if "conversion error" in str(exc):  # a value beyond the type-inference block
            raise DataValidationError(f"{path}: mixed types in a column: {exc}") from exc
        raise DataValidationError(f"{path}: unreadable or corrupt CSV: {exc}") from exc
    for name, col in zip(names, table.columns, strict=True):
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            raise DataValidationError(
                f"{path}: column {name!r} is not UTF-8 text (save the file as UTF-8)"
            )
    return table


def _read_parquet_file(path: Path) -> pa.Table:
    """Read row group by row group: a lower memory peak than one ``read_table`` call."""
    try:
        with pq.ParquetFile(path) as pf:
            groups = [pf.read_row_group(i) for i in range(pf.num_row_groups)]
            return pa.concat_tables(groups) if groups else pf.schema_arrow.empty_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataValidationError(f"{path}: unreadable or corrupt Parquet file: {exc}") from exc


def _read_folder(folder: Path) -> SourceTable:
    files = _parquet_files(folder)
    if not files:
        raise DataValidationError(f"{folder}: empty input (no Parquet files in the folder)")
    try:
        dataset = ds.dataset(
            [str(f) for f in files],
            format="parquet",
            partitioning=ds.HivePartitioning.discover(infer_dictionary=False),
            partition_base_dir=str(folder),
        )
        table = dataset.to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataValidationError(
            f"{folder}: unreadable, corrupt or inconsistent Parquet dataset: {exc}"
        ) from exc
    partition_columns = sorted(
        {part.split("=", 1)[0] for f in files for part in f.relative_to(folder).parts[:-1]}
        & set(table.column_names)
    )
    return SourceTable(
        table=table,
        label=folder.as_posix(),
        kind="parquet-folder",
        files=[f.as_posix() for f in files],
        partition_columns=partition_columns,
    )


def _from_frame(df: pd.DataFrame, label: str) -> pa.Table:
    duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated:
        raise DataValidationError(f"{label}: duplicate column names: {duplicated}")
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataValidationError(f"{label}: mixed types in a column: {exc}") from exc


def read_source(source: Source) -> SourceTable:
    """Read one source (file, folder, hive dataset or DataFrame) into Arrow."""
    if isinstance(source, pd.DataFrame):
        return SourceTable(_from_frame(source, "<DataFrame>"), "<DataFrame>", "dataframe")
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise DataValidationError(f"{path}: no such file or folder")
    if path.is_dir():
        st = _read_folder(path)
    elif path.name.lower().endswith(CSV_SUFFIXES):
        st = SourceTable(_read_csv(path), path.as_posix(), "csv", [path.as_posix()])
    else:
        st = SourceTable(_read_parquet_file(path), path.as_posix(), "parquet", [path.as_posix()])
    _check_source(st)
    return st


def _as_list(sources: Sources) -> list[Source]:
    if isinstance(sources, str | Path | pd.DataFrame):
        return [sources]
    items = list(sources)
    if not items:
        raise DataValidationError("empty input: no data sources given")
    return items


def read_sources(sources: Sources) -> tuple[pa.Table, list[SourceTable]]:
    """Read and concatenate sources; column types must agree (ints and floats may mix)."""
    parts = [read_source(s) for s in _as_list(sources)]
    if len(parts) == 1:
        table = parts[0].table
    else:
        _check_schemas_agree(parts)
        try:
            table = pa.concat_tables([p.table for p in parts], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            labels = [p.label for p in parts]
            raise DataValidationError(f"{labels}: sources cannot be combined: {exc}") from exc
    if table.num_rows == 0:
        labels = [p.label for p in parts]
        raise DataValidationError(f"{', '.join(labels)}: empty input (no rows)")
    return table, parts


def default_sources(raw_data_path: Path, incoming_dir: Path) -> list[Path]:
    """The base data file plus the incoming batches folder when it holds any Parquet file."""
    if not raw_data_path.exists():
        raise DataValidationError(
            f"{raw_data_path}: no base data; run `retrain demo-data` or pass --data"
        )
    sources = [raw_data_path]
    if incoming_dir.is_dir() and _parquet_files(incoming_dir):
        sources.append(incoming_dir)
    return sources


def read_table(source: Sources) -> pd.DataFrame:
    """Read a Parquet file, a folder of Parquet files / hive dataset, a CSV, or several of them.

    Hive partition columns (``date=...`` folders) become columns; their names are listed in
    ``df.attrs["partition_columns"]``.
    """
    table, parts = read_sources(source)
    df = table.to_pandas(date_as_object=False)
    df.attrs["partition_columns"] = sorted({c for p in parts for c in p.partition_columns})
    df.attrs["sources"] = [p.label for p in parts]
    return df


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _is_numeric_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_string_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, pa.scalar(True)).as_py())


def _check_source(st: SourceTable) -> None:
    names = [str(n) for n in st.table.column_names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataValidationError(f"{st.label}: duplicate column names: {duplicated}")
    if st.table.num_columns == 0:
        raise DataValidationError(f"{st.label}: empty input (no columns)")
    for name, col in zip(names, st.table.columns, strict=True):
        if pa.types.is_floating(col.type) and col.null_count < len(col):
            inf = pc.is_inf(col)
            count = int(pc.sum(inf).as_py() or 0)
            if count:
                raise DataValidationError(
                    f"{st.label}: column {name!r} has {count} infinite value(s), "
                    f"first at row {_first_true(inf)}"
                )
        elif _is_string_type(col.type):
            _check_mixed_strings(st.label, name, col)


def _check_mixed_strings(label: str, name: str, col: pa.ChunkedArray) -> None:
    """A text column whose values are mostly numbers but not all: a mixed-type column."""
    present = pc.and_(pc.is_valid(col), pc.invert(pc.match_substring_regex(col, r"^\s*$")))
    n_present = int(pc.sum(present).as_py() or 0)
    if n_present == 0:
        return
    numeric = pc.fill_null(pc.match_substring_regex(col, _NUMBER_RE), False)
    n_numeric = int(pc.sum(numeric).as_py() or 0)
    n_text = n_present - n_numeric
    if n_numeric and n_text and n_numeric >= n_text:
        bad = pc.and_(present, pc.invert(numeric))
        row = _first_true(bad)
        value = col[row].as_py()
        raise DataValidationError(
            f"{label}: column {name!r} has mixed types: {n_numeric} numeric value(s) and "
            f"{n_text} non-numeric value(s), e.g. {value!r} at row {row}"
        )


def _check_schemas_agree(parts: list[SourceTable]) -> None:
    seen: dict[str, tuple[pa.DataType, str]] = {}
    for part in parts:
        for fld in part.table.schema:
            if fld.name not in seen or pa.types.is_null(seen[fld.name][0]):
                seen[fld.name] = (fld.type, part.label)
                continue
            first_type, first_label = seen[fld.name]
            if pa.types.is_null(fld.type) or first_type == fld.type:
                continue
            if _is_numeric_type(first_type) and _is_numeric_type(fld.type):
                continue
            if pa.types.is_dictionary(first_type) or pa.types.is_dictionary(fld.type):
                continue
            raise DataValidationError(
                f"column {fld.name!r} has type {first_type} in {first_label} "
                f"but {fld.type} in {part.label}"
            )


def _check_not_all_null(table: pa.Table, columns: Iterable[str], label: str) -> None:
    for name in columns:
        col = table.column(name)
        nulls = col.null_count
        if pa.types.is_floating(col.type) and nulls < len(col):
            nulls += int(pc.sum(pc.is_nan(col)).as_py() or 0)
        elif _is_string_type(col.type) and nulls < len(col):
            nulls += int(pc.sum(pc.equal(col, "")).as_py() or 0)
        if nulls == len(col):
            raise DataValidationError(f"{label}: column {name!r} has only missing values")


POSITIVE_LABELS = {
    frozenset({"0", "1"}): "1",
    frozenset({"no", "yes"}): "yes",
    frozenset({"n", "y"}): "y",
    frozenset({"false", "true"}): "true",
    frozenset({"f", "t"}): "t",
    frozenset({"negative", "positive"}): "positive",
    frozenset({"neg", "pos"}): "pos",
}


def _positive_label(labels: list[Any]) -> Any:
    if all(isinstance(v, bool) for v in labels):
        return True
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        return max(labels)
    lowered = {str(v).strip().lower(): v for v in labels}
    known = POSITIVE_LABELS.get(frozenset(lowered))
    if known is not None:
        return lowered[known]
    return sorted(labels, key=str)[1]


def _encode_target_arrow(col: pa.ChunkedArray, name: str, source: str) -> tuple[np.ndarray, Any]:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if col.null_count:
        row = _first_true(pc.is_null(col))
        raise DataValidationError(
            f"{source}: target column {name!r} has {col.null_count} missing value(s), "
            f"first at row {row}"
        )
    if pa.types.is_floating(col.type) and int(pc.sum(pc.is_nan(col)).as_py() or 0):
        raise DataValidationError(f"{source}: target column {name!r} has NaN values")
    labels = [v for v in pc.unique(col).to_pylist()]
    if len(labels) > 2:
        shown = sorted(labels, key=str)[:5]
        raise DataValidationError(
            f"{source}: target column {name!r} is not binary: {len(labels)} distinct values, "
            f"e.g. {shown} (expected 0/1, bool or exactly two labels)"
        )
    if len(labels) < 2:
        raise DataValidationError(
            f"{source}: target column {name!r} has a single class ({labels[0]!r}); "
            "both classes are needed"
        )
    positive = _positive_label(labels)
    codes = pc.equal(col, pa.scalar(positive, type=col.type))
    out = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int8)
    return out, positive


def encode_target(series: pd.Series, source: str = "data") -> np.ndarray:
    """The target as int8 0/1: from 0/1, bool, or exactly two labels (positive: 1, True,
    the larger number, yes/true/positive, else the label that sorts last)."""
    name = str(series.name) if series.name is not None else "target"
    try:
        arr = pa.chunked_array([pa.array(series, from_pandas=True)])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataValidationError(f"{source}: target column {name!r} has mixed types") from exc
    codes, _ = _encode_target_arrow(arr, name, source)
    return codes


def _is_unsupported_feature_type(t: pa.DataType) -> bool:
    """Nested and binary columns cannot be features (numeric or categorical)."""
    return bool(
        pa.types.is_nested(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _check_spec_types(spec: FeatureSpec, table: pa.Table, label: str) -> None:
    for name in spec.numeric:
        t = table.schema.field(name).type
        if not (_is_numeric_type(t) or pa.types.is_null(t)):
            raise DataValidationError(
                f"{label}: feature spec declares {name!r} numeric, but the data has type {t}"
            )
    for name in spec.categorical:
        t = table.schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if _is_unsupported_feature_type(t):
            raise DataValidationError(
                f"{label}: column {name!r} has type {t}, which cannot be a feature; "
                f"exclude it (--exclude {name}) or remove it from the data"
            )


# --------------------------------------------------------------------------------------------
# Stable row keys (vectorised)
# --------------------------------------------------------------------------------------------

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_INT_TAG = np.uint64(0x243F6A8885A308D3)
_FLOAT_TAG = np.uint64(0x13198A2E03707344)
_TIME_TAG = np.uint64(0xA4093822299F31D0)
_TEXT_KEY = "retraining-rowky"  # 16 characters: the SipHash key of text values


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _text_hash(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _hash_numbers(values: np.ndarray) -> np.ndarray:
    """Integral values hash as integers (so 1 == 1.0 from CSV or Parquet), others by bits."""
    if values.dtype.kind in "iub":
        out = values.astype(np.int64, copy=True).view(np.uint64)
        out ^= _INT_TAG
        return _mix(out)
    floats = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(floats) & (np.abs(floats) < 2.0**63)
        integral &= np.trunc(floats) == floats
    out = (floats + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0
    out ^= _FLOAT_TAG
    if integral.any():
        out[integral] = floats[integral].astype(np.int64).view(np.uint64) ^ _INT_TAG
    return _mix(out)


def _column_hash(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint64 hash per value of a column, and a mask of valid values (None: all valid)."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    valid = None
    if col.null_count:
        valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_boolean(t) or _is_numeric_type(t):
        if pa.types.is_decimal(t) or pa.types.is_boolean(t) or col.null_count:
            values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            values = col.to_numpy()
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if nan.any():
                valid = ~nan if valid is None else valid & ~nan
        return _hash_numbers(values), valid
    if pa.types.is_temporal(t) and not pa.types.is_time(t) and not pa.types.is_duration(t):
        ns = pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64())
        out = np.asarray(pc.fill_null(ns, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        hashed = out.view(np.uint64) ^ _TIME_TAG
        return _mix(hashed), valid
    if _is_string_type(t) and pc.any(pc.equal(col, "")).as_py():  # "" is missing, like in CSV
        col = _empty_as_null(col)
        valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    try:
        text = pc.cast(col, pa.string()) if not _is_string_type(t) else col
        objects = pc.fill_null(text, "").to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # lists, structs, binary: by value
        objects = np.array(["" if v is None else repr(v) for v in col.to_pylist()], dtype=object)
    hashed = pd.util.hash_array(objects, hash_key=_TEXT_KEY, categorize=True)
    return np.asarray(hashed, dtype=np.uint64), valid


def row_keys(table: pa.Table, columns: Sequence[str], salt: str = "retraining") -> np.ndarray:
    """A stable uint64 key per row from the canonical values of ``columns``.

    Columns are taken in sorted name order; a missing (null) value contributes nothing, so a
    column added later (null in older rows) leaves the keys of older rows unchanged.
    """
    keys = np.full(table.num_rows, _text_hash(f"salt:{salt}"), dtype=np.uint64)
    for name in sorted(columns):
        hashed, valid = _column_hash(table.column(name))
        hashed ^= _text_hash(f"column:{name}")
        combined = keys * _GOLDEN
        combined += hashed
        del hashed
        _mix(combined)
        if valid is None:
            keys = combined
        else:
            np.copyto(keys, combined, where=valid)
        del combined
    return keys


def assign_hash_splits(keys: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) from row keys: the same key, the same split."""
    unit = (keys >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)
    cuts = np.cumsum(np.asarray(fractions, dtype=np.float64))[:-1]
    return np.searchsorted(cuts, unit, side="right").astype(np.int8)


def assign_time_splits(
    table: pa.Table, column: str, fractions: Sequence[float], label: str
) -> np.ndarray:
    """Oldest rows train, newest test, by quantiles of the timestamp (ties stay together)."""
    col = table.column(column)
    if col.null_count:
        raise DataValidationError(
            f"{label}: timestamp column {column!r} has {col.null_count} missing value(s)"
        )
    try:
        ns = pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataValidationError(
            f"{label}: timestamp column {column!r} does not hold timestamps: {exc}"
        ) from exc
    values = np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)
    cum = np.cumsum(np.asarray(fractions, dtype=np.float64))[:-1]
    cuts = [np.quantile(values, q, method="higher") if q > 0 else values.min() for q in cum]
    codes = np.zeros(len(values), dtype=np.int8)
    for i, cut in enumerate(cuts, start=1):
        if cum[i - 1] >= 1.0:
            continue
        codes[values >= cut] = i
    return codes


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
MISSING_LEVEL = "missing"
AUTO_ID_COLUMNS = ("id",)
DEFAULT_SPLIT = (0.7, 0.15, 0.15)
_CHUNK_ROWS = 1_000_000


@dataclass
class SplitInfo:
    """One split file: its name in the prepared folder, size, class balance and checksum."""

    file: str
    rows: int
    positives: int
    negatives: int
    sha256: str

    @property
    def positive_rate(self) -> float:
        return self.positives / self.rows if self.rows else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["positive_rate"] = round(self.positive_rate, 6) if self.rows else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitInfo:
        return cls(
            file=str(data["file"]),
            rows=int(data["rows"]),
            positives=int(data["positives"]),
            negatives=int(data["negatives"]),
            sha256=str(data["sha256"]),
        )


ALL_SOURCES = "all given sources"


@dataclass
class Manifest:
    """What ``prepare`` wrote (``manifest.json`` in the prepared folder ``path``)."""

    path: Path
    sha256: str
    spec: FeatureSpec
    splits: dict[str, SplitInfo]
    sources: list[str]
    """Every file read (a folder source is listed file by file); given paths: source_details."""
    missing: dict[str, int]
    created_at: str
    rows: int = 0
    target_labels: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    imputation: dict[str, Any] = field(default_factory=dict)
    source_details: list[dict[str, Any]] = field(default_factory=list)
    selection: str = ALL_SOURCES
    """Which data the caller chose (e.g. "base data + newest 2 batch(es)")."""
    format_version: int = MANIFEST_FORMAT

    def split_path(self, name: str) -> Path:
        if name not in self.splits:
            raise DataValidationError(
                f"{self.path}: no split {name!r} (have {sorted(self.splits)})"
            )
        return self.path / self.splits[name].file

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``path`` is not stored: it is wherever the folder is)."""
        return {
            "format_version": self.format_version,
            "sha256": self.sha256,
            "created_at": self.created_at,
            "rows": self.rows,
            "selection": self.selection,
            "sources": list(self.sources),
            "source_details": list(self.source_details),
            "feature_spec": self.spec.to_dict(),
            "target_labels": dict(self.target_labels),
            "split": dict(self.split),
            "splits": {k: v.to_dict() for k, v in self.splits.items()},
            "missing": dict(self.missing),
            "imputation": dict(self.imputation),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> Manifest:
        try:
            return cls(
                path=path,
                sha256=str(data["sha256"]),
                spec=FeatureSpec.from_dict(data["feature_spec"]),
                splits={k: SplitInfo.from_dict(v) for k, v in data["splits"].items()},
                sources=[str(s) for s in data["sources"]],
                missing={str(k): int(v) for k, v in data.get("missing", {}).items()},
                created_at=str(data["created_at"]),
                rows=int(data.get("rows", 0)),
                target_labels=dict(data.get("target_labels", {})),
                split=dict(data.get("split", {})),
                imputation=dict(data.get("imputation", {})),
                source_details=list(data.get("source_details", [])),
                selection=str(data.get("selection", ALL_SOURCES)),
                format_version=int(data.get("format_version", MANIFEST_FORMAT)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataValidationError(f"{path / MANIFEST_NAME}: invalid manifest: {exc}") from exc


def load_manifest(folder: str | Path) -> Manifest:
    """Read ``manifest.json`` from a prepared folder (or the manifest file itself)."""
    path = Path(folder)
    if path.name == MANIFEST_NAME and path.is_file():
        path = path.parent
    file = path / MANIFEST_NAME
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataValidationError(f"{file}: no manifest (not a prepared data folder)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise DataValidationError(f"{file}: unreadable manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise DataValidationError(f"{file}: invalid manifest: not a JSON object")
    version = data.get("format_version")
    if version != MANIFEST_FORMAT:
        raise DataValidationError(f"{file}: unsupported manifest format_version {version!r}")
    return Manifest.from_dict(data, path.resolve())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_split(
    folder_or_manifest: str | Path | Manifest, name: str, *, verify: bool = False
) -> pd.DataFrame:
    """One prepared split as a DataFrame; ``verify`` checks its SHA-256 against the manifest."""
    manifest = (
        folder_or_manifest
        if isinstance(folder_or_manifest, Manifest)
        else load_manifest(folder_or_manifest)
    )
    path = manifest.split_path(name)
    if verify:
        actual = file_sha256(path)
        if actual != manifest.splits[name].sha256:
            raise DataValidationError(
                f"{path}: checksum mismatch (manifest {manifest.splits[name].sha256[:12]}, "
                f"file {actual[:12]}): the prepared data changed after it was written"
            )
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(f"{path}: unreadable split file: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------


def _check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(x) for x in split)
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 for v in values):
        raise DataValidationError(f"split must be three non-negative fractions, got {split!r}")
    if abs(sum(values) - 1.0) > 1e-9 or values[0] <= 0 or values[2] <= 0:
        raise DataValidationError(
            f"split fractions must sum to 1 with train > 0 and test > 0, got {split!r}"
        )
    return values[0], values[1], values[2]


def _resolve_spec(
    table: pa.Table,
    spec: FeatureSpec | None,
    *,
    target: str,
    id_column: str | None,
    timestamp_column: str | None,
    exclude: Sequence[str],
    partition_columns: Sequence[str],
    label: str,
    detect_id: bool = True,
) -> FeatureSpec:
    names = [str(n) for n in table.column_names]
    if spec is not None:
        spec = FeatureSpec.from_dict(spec.to_dict())
        extra = [c for c in partition_columns if c not in spec.excluded and c not in spec.features]
        spec.excluded.extend(extra)
        return spec
    if target not in names:
        raise DataValidationError(f"{label}: missing target column {target!r} (columns: {names})")
    if id_column is None and detect_id:
        id_column = next((c for c in AUTO_ID_COLUMNS if c in names and c != target), None)
    for role, col in (("id", id_column), ("timestamp", timestamp_column)):
        if col is not None and col not in names:
            raise DataValidationError(f"{label}: declared {role} column {col!r} is not in the data")
    unknown = [c for c in exclude if c not in names]
    if unknown:
        raise DataValidationError(
            f"{label}: excluded column(s) {unknown} are not in the data (columns: {names})"
        )
    empty = table.schema.empty_table().to_pandas(date_as_object=False)
    return infer_spec(
        empty,
        target=target,
        id_column=id_column,
        timestamp_column=timestamp_column,
        exclude=[*partition_columns, *exclude],
    )


def _impute_numeric(
    col: pa.ChunkedArray, train: np.ndarray
) -> tuple[pa.Array | pa.ChunkedArray, int, float | None]:
    """Median of the training rows for missing (null or NaN) values: column, count, median."""
    if col.null_count == 0 and not pa.types.is_floating(col.type):
        return col, 0, None
    values = np.array(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    missing = np.isnan(values)
    count = int(missing.sum())
    if count == 0:
        return col, 0, None
    pool = values[train & ~missing]
    if pool.size == 0:
        pool = values[~missing]
    median = float(np.median(pool))
    values[missing] = median
    return pa.array(values), count, median


def _empty_as_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty strings are missing values: a CSV cannot tell them apart from nulls, so the
    Parquet and CSV copies of the same rows must treat them alike."""
    if not pc.any(pc.equal(col, "")).as_py():
        return col
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)


def _impute_categorical(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    """Categorical values as text; missing (null or empty) values become ``"missing"``."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_boolean(t):
        text = pc.if_else(col, pa.scalar("True"), pa.scalar("False"))
    elif _is_string_type(t):
        text = _empty_as_null(col)
    else:
        text = pc.cast(col, pa.string())
    count = int(text.null_count)
    return pc.fill_null(text, MISSING_LEVEL), count


def _output_table(
    table: pa.Table, spec: FeatureSpec, y: np.ndarray, train: np.ndarray
) -> tuple[pa.Table, dict[str, int], dict[str, Any]]:
    columns: dict[str, Any] = {}
    for col_name in (spec.id_column, spec.timestamp_column):
        if col_name:
            columns[col_name] = table.column(col_name)
    missing: dict[str, int] = {}
    imputation: dict[str, Any] = {}
    for name in spec.numeric:
        col, count, median = _impute_numeric(table.column(name), train)
        columns[name], missing[name] = col, count
        if median is not None:
            imputation[name] = median
    for name in spec.categorical:
        columns[name], missing[name] = _impute_categorical(table.column(name))
        if missing[name]:
            imputation[name] = MISSING_LEVEL
    columns[spec.target] = pa.array(y.astype(np.int64))
    return pa.table(columns), missing, imputation


def _write_splits(out: pa.Table, codes: np.ndarray, folder: Path) -> dict[str, Path]:
    """Write the three split files chunk by chunk (bounded extra memory)."""
    paths = {name: folder / f"{name}.parquet" for name in SPLITS}
    writers = {name: pq.ParquetWriter(paths[name], out.schema) for name in SPLITS}
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


def _content_hash(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _split_codes(
    table: pa.Table,
    spec: FeatureSpec,
    fractions: tuple[float, float, float],
    *,
    time_split: bool,
    salt: str,
    partition_columns: Sequence[str],
    label: str,
) -> tuple[np.ndarray, dict[str, Any]]:
    desc: dict[str, Any] = {"fractions": list(fractions)}
    if time_split:
        if not spec.timestamp_column:
            raise DataValidationError(f"{label}: a time split needs a declared timestamp column")
        desc.update(method="time", key=[spec.timestamp_column])
        return assign_time_splits(table, spec.timestamp_column, fractions, label), desc
    if spec.id_column:
        ids = table.column(spec.id_column)
        if ids.null_count:
            row = _first_true(pc.is_null(ids))
            raise DataValidationError(
                f"{label}: id column {spec.id_column!r} has {ids.null_count} missing value(s), "
                f"first at row {row}"
            )
        key_columns = [spec.id_column]
    else:
        key_columns = sorted(str(c) for c in table.column_names if c not in partition_columns)
    desc.update(method="hash", key=key_columns, salt=salt)
    keys = row_keys(table, key_columns, salt)
    codes = assign_hash_splits(keys, fractions)
    # equal keys = equal ids (integer ids map one-to-one to keys; text ids by a 64-bit hash)
    keys.sort()
    desc["duplicate_keys"] = (
        int(len(keys) - 1 - np.count_nonzero(np.diff(keys))) if len(keys) else 0
    )
    return codes, desc


def _check_splits_not_empty(
    codes: np.ndarray, fractions: Sequence[float], split_desc: dict[str, Any], label: str
) -> None:
    """Every split with a positive fraction must get rows (checked before anything is written)."""
    rows = np.bincount(codes, minlength=3)
    for k, name in enumerate(SPLITS):
        if rows[k] == 0 and fractions[k] > 0:
            dup = int(split_desc.get("duplicate_keys", 0))
            if split_desc.get("method") == "time":
                cause = (
                    f"the timestamps {split_desc.get('key')} of {len(codes)} rows have too few "
                    "distinct values (rows with one timestamp stay together)"
                )
            elif dup:
                cause = (
                    f"{dup} of {len(codes)} rows share a split key with another row "
                    f"(key {split_desc.get('key')}); rows with one key stay together"
                )
            else:
                cause = f"{len(codes)} rows are too few"
            raise DataValidationError(
                f"{label}: split {name!r} is empty: {cause} (fractions {list(fractions)})"
            )


def _split_infos(
    codes: np.ndarray, y: np.ndarray, paths: dict[str, Path], fractions: Sequence[float]
) -> dict[str, SplitInfo]:
    rows = np.bincount(codes, minlength=3)
    positives = np.bincount(codes, weights=y, minlength=3).astype(np.int64)
    infos: dict[str, SplitInfo] = {}
    for k, name in enumerate(SPLITS):
        if rows[k] == 0 and fractions[k] > 0:
            raise DataValidationError(
                f"split {name!r} is empty: {len(codes)} rows are too few for fractions "
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
) -> Manifest:
    """Validate, impute and split ``sources`` (concatenated) into ``out_root/<hash>/``.

    The split is stable: a row goes to the split given by a hash of its key (the id column,
    else its raw values), so it stays there in every later preparation. Without a declared
    ``id_column``, a column named ``id`` is used (unless ``detect_id`` is false). Writes
    ``train/val/test.parquet`` and ``manifest.json`` into a temporary folder that is renamed
    when complete; an existing folder with the same content hash is reused. ``selection``
    records which data the caller chose (part of the manifest and its hash).
    """
    fractions = _check_fractions(split)
    table, parts = read_sources(sources)
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
    )
    spec.check(table, source=label, strict=True)
    for role, col in (("id", spec.id_column), ("timestamp", spec.timestamp_column)):
        if col and col not in table.column_names:
            raise DataValidationError(f"{label}: the spec's {role} column {col!r} is missing")
    _check_spec_types(spec, table, label)
    _check_not_all_null(table, [c for c in (*spec.features, spec.id_column) if c], label)
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
            f"{out_root}: cannot create the prepared-data root: {exc}"
        ) from exc
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-prepare-", dir=out_root))
    try:
        paths = _write_splits(out, codes, tmp)
        manifest.splits = _split_infos(codes, y, paths, fractions)
        document = manifest.to_dict()
        for volatile in ("sha256", "created_at", "source_details"):
            document.pop(volatile)
        manifest.sha256 = _content_hash(document)
        final = out_root / manifest.sha256[:16]
        manifest.path = final.resolve()
        manifest.created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _reuse(folder: Path, sha256: str) -> Manifest:
    existing = load_manifest(folder)
    if existing.sha256 != sha256:
        raise DataValidationError(
            f"{folder}: holds different prepared data (hash {existing.sha256[:16]}...)"
        )
    return existing
