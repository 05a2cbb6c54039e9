"""Reading sources into Arrow: Parquet files, folders / hive-partitioned datasets, CSV files
and DataFrames, each checked as read (duplicate or no columns, infinite values, mixed types) and,
when several are combined, checked for agreeing column types. ``read_table`` returns a DataFrame;
``model.data.batches.default_sources`` lists the base data file and the incoming batches.

Only regular files (and folders of them) are read: a path, or a Parquet file in a folder, that is
a FIFO, a device, a socket, a broken symlink or a symlink loop is an error naming it, found with
``stat`` before anything opens it (opening a FIFO blocks until a writer comes; a device never
ends).

Parquet page checksums (CRC-32) are verified where the writer stored them, so bytes that changed
after writing are an error naming the file rather than wrong numbers; a file written without
checksums (the pandas and pyarrow default) cannot be checked this way. The project's own
Parquet files are written with them (``WRITE_OPTIONS``).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from model.data.checks import _check_schemas_agree, _check_source
from model.data.messages import brief, quote, quote_list
from model.data.source import SourceTable
from model.data.spec import RESERVED_LOG_COLUMNS
from model.data.validate import _is_numeric_type, _is_string_type
from model.errors import DataValidationError

Source = str | Path | pd.DataFrame
Sources = Source | Sequence[Source]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")
WRITE_OPTIONS = {"write_page_checksum": True}
INDEX_COLUMN = re.compile(r"^(|__index_level_\d+__|Unnamed: \d+)$")
"""Names of a saved DataFrame index (pandas' unnamed CSV index, pyarrow's index column): never
features; dropped with a warning when read."""

log = logging.getLogger(__name__)
_WARNED_INDEX: set[tuple[str, tuple[str, ...]]] = set()
"""Files whose index columns were already reported by this process: said once, not at each
of a cycle's reads."""
"""Options for every Parquet file this project writes (``pq.write_table``, ``ParquetWriter``)."""


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _shown(path: Path) -> str:
    """``path``, and where it leads when it is a symlink."""
    if not path.is_symlink():
        return str(path)
    try:
        return f"{path} (-> {os.readlink(path)})"
    except OSError:
        return str(path)


def _stat_regular(path: Path, shown: str | None = None) -> bool:
    """Whether ``path`` (symlinks followed) is a folder (True) or a regular file (False);
    anything else is an error naming it (as ``shown``). Only ``stat`` is called: nothing is
    opened."""
    shown = shown or _shown(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        broken = " (a broken symlink)" if path.is_symlink() else ""
        raise DataValidationError(f"{shown}: no such file or folder{broken}") from None
    except OSError as exc:
        raise DataValidationError(f"{shown}: cannot be read: {brief(exc)}") from None
    if stat.S_ISDIR(mode):
        return True
    if stat.S_ISREG(mode):
        return False
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "not a file")
    raise DataValidationError(
        f"{shown}: not a regular file or folder ({kind}); only regular files and "
        "folders of them are read"
    )


def _parquet_files(folder: Path) -> list[Path]:
    """The Parquet files under ``folder`` (hidden ones, ``.x`` or ``_x``, left out); an entry
    with a Parquet name that is not a regular file or folder is an error naming it."""
    files = []
    for p in folder.rglob("*"):
        if not p.name.endswith(PARQUET_SUFFIXES) or _is_hidden(p, folder):
            continue
        if not _stat_regular(p):  # a folder named x.parquet: rglob lists its files
            files.append(p)
    return sorted(files)


def _csv_files(folder: Path) -> list[Path]:
    """The CSV files under ``folder`` (hidden ones left out), like :func:`_parquet_files`."""
    files = []
    for p in folder.rglob("*"):
        if not p.name.lower().endswith(CSV_SUFFIXES) or _is_hidden(p, folder):
            continue
        if not _stat_regular(p):
            files.append(p)
    return sorted(files)


def _partition_values(path: Path, folder: Path) -> dict[str, str]:
    """``{key: value}`` of the ``key=value`` folders between ``folder`` and ``path``."""
    out = {}
    for part in path.relative_to(folder).parts[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = value
    return out


def _read_csv_folder(folder: Path, files: list[Path]) -> list[SourceTable]:
    """Each CSV file of a folder, with its ``key=value`` folders as text columns."""
    parts = []
    for f in files:
        table = _drop_index_columns(_read_csv(f), f.as_posix())
        keys = _partition_values(f, folder)
        for key, value in keys.items():
            if key not in table.column_names:
                table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
        parts.append(SourceTable(table, f.as_posix(), "csv", [f.as_posix()], sorted(keys)))
    return parts


def _drop_index_columns(table: pa.Table, label: str) -> pa.Table:
    """The table without columns that are a saved DataFrame index (:data:`INDEX_COLUMN`)."""
    index = [n for n in table.column_names if INDEX_COLUMN.match(str(n))]
    if index and (label, tuple(index)) not in _WARNED_INDEX:
        _WARNED_INDEX.add((label, tuple(index)))  # a cycle reads a file several times
        log.warning(
            "%s: dropped index column(s) %s (a saved DataFrame index is never a feature)",
            label,
            quote_list(index),
        )
    if index:
        table = table.drop_columns(index)
    return table


def source_rows(path: Path) -> int:
    """Rows of a batch (file or folder): Parquet from the footers, CSV by reading it."""
    files = [path] if path.is_file() else [*_parquet_files(path), *_csv_files(path)]
    total = 0
    for f in files:
        if f.name.lower().endswith(CSV_SUFFIXES):
            total += _read_csv(f).num_rows
        else:
            total += pq.read_metadata(f).num_rows
    return total


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
        raise DataValidationError(f"{path}: the header is not UTF-8 text: {brief(exc)}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        if "invalid UTF8" in str(exc) or "Invalid UTF8" in str(exc):
            raise DataValidationError(f"{path}: not UTF-8 text: {brief(exc)}") from exc
        if "conversion error" in str(exc):  # a value beyond the type-inference block
            raise DataValidationError(f"{path}: mixed types in a column: {brief(exc)}") from exc
        raise DataValidationError(f"{path}: unreadable or corrupt CSV: {brief(exc)}") from exc
    for name, col in zip(names, table.columns, strict=True):
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            raise DataValidationError(
                f"{path}: column {quote(name)} is not UTF-8 text (save the file as UTF-8)"
            )
    return table


def parquet_error(path: Path, exc: Exception) -> DataValidationError:
    """The error for a Parquet file that failed to read (a checksum mismatch said plainly)."""
    if "checksum" in str(exc).lower():
        return DataValidationError(
            f"{path}: corrupt Parquet file: a page checksum does not match "
            "(the bytes changed after the file was written)"
        )
    return DataValidationError(f"{path}: unreadable or corrupt Parquet file: {brief(exc)}")


def _read_parquet_file(path: Path) -> pa.Table:
    """Read row group by row group (a lower memory peak than one ``read_table`` call),
    verifying page checksums where the file has them."""
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as pf:
            groups = [pf.read_row_group(i) for i in range(pf.num_row_groups)]
            return pa.concat_tables(groups) if groups else pf.schema_arrow.empty_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise parquet_error(path, exc) from exc


def _folder_schemas(folder: Path, files: list[Path]) -> dict[Path, pa.Schema]:
    """Each file's schema, from its footer (nothing else is read)."""
    schemas = {}
    for f in files:
        try:
            schemas[f] = pq.read_schema(f)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise DataValidationError(
                f"{folder}: unreadable, corrupt or inconsistent Parquet dataset: "
                f"{f.relative_to(folder).as_posix()}: {brief(exc)}"
            ) from exc
        names = schemas[f].names
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise DataValidationError(f"{f}: duplicate column names: {quote_list(duplicated)}")
    return schemas


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more file(s)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _common_type(folder: Path, name: str, types: dict[str, pa.DataType]) -> pa.DataType:
    """The one type of a column across the files of a folder (``types``: file -> type),
    whatever the order of the files: null-typed (all-missing) files take the others' type,
    integers and floats make float64, dictionaries their values; anything else is an error."""
    present = {f: t for f, t in types.items() if not pa.types.is_null(t)}
    if len(set(present.values())) <= 1:
        return next(iter(present.values()), pa.null())
    plain = {f: t.value_type if pa.types.is_dictionary(t) else t for f, t in present.items()}
    kinds = set(plain.values())
    if len(kinds) == 1:
        return kinds.pop()
    if all(_is_string_type(t) for t in kinds):
        return pa.large_string()
    if all(_is_numeric_type(t) for t in kinds):
        return pa.int64() if all(pa.types.is_integer(t) for t in kinds) else pa.float64()
    first = next(iter(plain))
    other = next(f for f, t in plain.items() if t != plain[first])
    raise DataValidationError(
        f"{folder}: column {quote(name)} has type {brief(plain[first], 60)} in {first} but "
        f"{brief(plain[other], 60)} in {other} "
        "(every file of one source must have the same column types)"
    )


def _folder_schema(folder: Path, schemas: dict[Path, pa.Schema]) -> pa.Schema:
    """The schema every file of a folder is read with. The files must have the same columns:
    without this check the dataset takes the first file's schema, so a column only some files
    have is imputed or dropped depending on which file sorts first. The prediction log's
    reserved columns (a labelled batch's ``__served_version__``) are the exception: null where
    a file lacks them, and never features."""
    files = [f.relative_to(folder).as_posix() for f in schemas]
    columns: dict[str, dict[str, pa.DataType]] = {}
    for f, schema in zip(files, schemas.values(), strict=True):
        for fld in schema:
            columns.setdefault(fld.name, {})[f] = fld.type
    missing = {
        name: [f for f in files if f not in types]
        for name, types in sorted(columns.items())
        if len(types) < len(files) and name not in RESERVED_LOG_COLUMNS
    }
    if missing:
        parts = [f"{quote(n)} is missing from {_some(absent)}" for n, absent in missing.items()]
        more = f"; … {len(parts) - 3} more column(s)" if len(parts) > 3 else ""
        raise DataValidationError(
            f"{folder}: its files have different columns: {'; '.join(parts[:3])}{more} "
            "(every file of one source must have the same columns)"
        )
    return pa.schema([pa.field(n, _common_type(folder, n, t)) for n, t in columns.items()])


def _read_folder(folder: Path) -> SourceTable:
    """A folder of Parquet files (a hive dataset), of CSV files, or of both: every file is
    read (none silently dropped); the files' columns must agree as for several sources."""
    csvs = _csv_files(folder)
    if not csvs:
        return _read_parquet_folder(folder)
    parts = _read_csv_folder(folder, csvs)
    if _parquet_files(folder):
        parts.append(_read_parquet_folder(folder))
    _check_schemas_agree(parts)
    try:
        table = pa.concat_tables([p.table for p in parts], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataValidationError(f"{folder}: its files cannot be combined: {brief(exc)}") from exc
    return SourceTable(
        table=table,
        label=folder.as_posix(),
        kind="folder",
        files=[f for p in parts for f in p.files],
        partition_columns=sorted({c for p in parts for c in p.partition_columns}),
    )


def _read_parquet_folder(folder: Path) -> SourceTable:
    files = _parquet_files(folder)
    if not files:
        raise DataValidationError(f"{folder}: empty input (no Parquet or CSV files in the folder)")
    schema = _folder_schema(folder, _folder_schemas(folder, files))
    paths = [str(f) for f in files]
    try:
        partitioning = ds.dataset(
            paths,
            format="parquet",
            partitioning=ds.HivePartitioning.discover(infer_dictionary=False),
            partition_base_dir=str(folder),
        ).partitioning
        keys = [f for f in partitioning.schema if f.name not in schema.names]
        verified = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
        dataset = ds.dataset(
            paths,
            schema=pa.schema([*schema, *keys]),
            format=ds.ParquetFileFormat(default_fragment_scan_options=verified),
            partitioning=partitioning,
            partition_base_dir=str(folder),
        )
        table = dataset.to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        _name_unreadable_file(files)
        raise DataValidationError(
            f"{folder}: unreadable, corrupt or inconsistent Parquet dataset: {brief(exc)}"
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


def _name_unreadable_file(files: list[Path]) -> None:
    """After a folder failed to read (the dataset's error names no file): read the files one
    by one and raise the error of the first that fails on its own."""
    for f in files:
        _read_parquet_file(f)


def _from_frame(df: pd.DataFrame, label: str) -> pa.Table:
    duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated:
        raise DataValidationError(f"{label}: duplicate column names: {quote_list(duplicated)}")
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except _CONVERSION_ERRORS as exc:
        raise _conversion_error(df, label, exc) from exc


_CONVERSION_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)
"""What converting pandas objects to Arrow raises for values it cannot store."""


def _conversion_error(df: pd.DataFrame, label: str, exc: Exception) -> DataValidationError:
    """The error naming the first column that does not convert (the whole frame's error may
    not say which)."""
    for name, col in df.items():
        try:
            pa.array(col, from_pandas=True)
        except _CONVERSION_ERRORS as col_exc:
            if isinstance(col_exc, OverflowError):
                return DataValidationError(
                    f"{label}: column {quote(str(name))} has an integer outside the 64-bit range"
                )
            if isinstance(col_exc, pa.ArrowInvalid | pa.ArrowTypeError):
                return DataValidationError(
                    f"{label}: mixed types in column {quote(str(name))}: {brief(col_exc)}"
                )
            return DataValidationError(
                f"{label}: column {quote(str(name))} has a value that cannot be stored in a "
                f"table column ({brief(col_exc)})"
            )
    return DataValidationError(f"{label}: mixed types in a column: {brief(exc)}")


def read_source(source: Source) -> SourceTable:
    """Read one source (file, folder, hive dataset or DataFrame) into Arrow."""
    if isinstance(source, pd.DataFrame):
        st = SourceTable(_from_frame(source, "<DataFrame>"), "<DataFrame>", "dataframe")
        _check_source(st)
        return st
    given = Path(source).expanduser().absolute()
    try:
        path = given.resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13)
        raise DataValidationError(
            f"{given}: cannot be read: too many levels of symbolic links (a symlink loop)"
        ) from None
    if _stat_regular(path, f"{given} (-> {path})" if given.is_symlink() else str(path)):
        st = _read_folder(path)
    elif path.name.lower().endswith(CSV_SUFFIXES):
        st = SourceTable(_read_csv(path), path.as_posix(), "csv", [path.as_posix()])
    else:
        st = SourceTable(_read_parquet_file(path), path.as_posix(), "parquet", [path.as_posix()])
    st.table = _drop_index_columns(st.table, st.label)
    _check_source(st)
    return st


def parquet_layout(source: str | os.PathLike[str]) -> tuple[list[Path], pa.Schema] | None:
    """A Parquet file's or folder's files and the schema :func:`read_table` reads them with
    (footers only; nothing else is read), or None when the source holds CSV files or
    ``key=value`` partition folders (read those whole). Bad input raises
    :class:`DataValidationError` as reading it would."""
    path = Path(source).expanduser().absolute()
    if not _stat_regular(path):
        if path.name.lower().endswith(CSV_SUFFIXES):
            return None
        try:
            return [path], pq.read_schema(path)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise parquet_error(path, exc) from exc
    if _csv_files(path):
        return None
    files = _parquet_files(path)
    if not files:
        raise DataValidationError(f"{path}: empty input (no Parquet or CSV files in the folder)")
    if any(_partition_values(f, path) for f in files):
        return None  # key=value folders become columns: read_table reads those
    return files, _folder_schema(path, _folder_schemas(path, files))


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
            raise DataValidationError(
                f"{labels}: sources cannot be combined: {brief(exc)}"
            ) from exc
    if table.num_rows == 0:
        labels = [p.label for p in parts]
        raise DataValidationError(f"{', '.join(labels)}: empty input (no rows)")
    return table, parts


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
