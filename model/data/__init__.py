"""Tabular data: reading, the feature spec, validation, imputation, the stable split, prepared
folders and the demo data set (no framework in here).

Owns everything between raw files and the prepared ``train/val/test.parquet`` + ``manifest.json``
that training reads. Modules, in import order (each imports only those before it):

- ``messages``: bounded quoting of values, column names and exception text in error messages
  (``quote``: at most ~80 characters of a value).
- ``spec``: :class:`FeatureSpec` (column roles), ``infer_spec``, ``MISSING_LEVEL``, the length
  limits of levels and column names (``MAX_LEVEL_CHARS``, ``MAX_NAME_CHARS``).
- ``validate``: checks of a table against its spec, target encoding (``encode_target``) and
  imputation of missing values.
- ``read``: Parquet files, folders / hive datasets and CSV into Arrow (``read_table``,
  ``read_sources``), each source checked as read; ``parquet_layout``: a Parquet source's
  files and schema, for readers that stream it.
- ``batches``: what in ``incoming/`` is a batch (``key=value`` folders and Parquet/CSV files
  directly in it), their order and ids, what is not read (``scan_incoming``,
  ``default_sources``).
- ``split``: stable row keys and train / val / test codes (hash or time split).
- ``manifest``: the prepared folder's format (:class:`Manifest`, ``load_manifest``,
  ``load_split``; both re-hash what they read).
- ``prepared``: ``prepare`` (read, validate, impute, split, write a content-addressed folder).
- ``demo``: the synthetic customer data set with drift and dated batches (``model.data.demo``,
  not re-exported here).

May import: ``model.errors`` and ``model.settings`` (and NumPy, pandas, PyArrow); nothing else
from ``model``, never torch or prefect.
"""

from __future__ import annotations

from model.data.batches import default_sources
from model.data.manifest import (
    ALL_SOURCES,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    Manifest,
    SplitInfo,
    content_hash,
    file_sha256,
    load_manifest,
    load_split,
)
from model.data.prepared import BATCH_COLUMN, prepare
from model.data.read import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    Source,
    Sources,
    SourceTable,
    parquet_layout,
    read_source,
    read_sources,
    read_table,
)
from model.data.spec import (
    AUTO_ID_COLUMNS,
    MAX_LEVEL_CHARS,
    MAX_NAME_CHARS,
    MISSING_LEVEL,
    RESERVED_LOG_COLUMNS,
    FeatureSpec,
    infer_spec,
    is_categorical_dtype,
)
from model.data.split import (
    DEFAULT_SPLIT,
    SPLITS,
    assign_hash_splits,
    assign_time_splits,
    row_keys,
)
from model.data.validate import POSITIVE_LABELS, encode_target

__all__ = [
    "ALL_SOURCES",
    "AUTO_ID_COLUMNS",
    "BATCH_COLUMN",
    "CSV_SUFFIXES",
    "DEFAULT_SPLIT",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MAX_LEVEL_CHARS",
    "MAX_NAME_CHARS",
    "MISSING_LEVEL",
    "PARQUET_SUFFIXES",
    "POSITIVE_LABELS",
    "RESERVED_LOG_COLUMNS",
    "SPLITS",
    "FeatureSpec",
    "Manifest",
    "Source",
    "SourceTable",
    "Sources",
    "SplitInfo",
    "assign_hash_splits",
    "assign_time_splits",
    "content_hash",
    "default_sources",
    "encode_target",
    "file_sha256",
    "infer_spec",
    "is_categorical_dtype",
    "load_manifest",
    "load_split",
    "parquet_layout",
    "prepare",
    "read_source",
    "read_sources",
    "read_table",
    "row_keys",
]
