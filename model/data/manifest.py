"""The prepared folder's format: ``manifest.json`` (:class:`Manifest`, one
:class:`SplitInfo` per split file) and reading it back (``load_manifest``, ``load_split``).

A prepared folder is content-addressed: its name is the first 16 hex digits of the manifest's
content hash (``content_hash``: SHA-256 of the manifest without ``sha256``, ``created_at``,
``source_details`` and ``preparation``). Reading re-hashes: ``load_manifest`` refuses a
manifest whose content no longer matches its recorded hash or whose folder is not named by it,
and ``load_split`` checks a split file's SHA-256 against the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.data.messages import brief, quote, quote_list
from model.data.read import parquet_error
from model.data.spec import FeatureSpec
from model.errors import DataValidationError
from model.files import check_regular, read_json

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_NOT_HASHED = ("sha256", "created_at", "source_details", "preparation")
"""Manifest fields outside the content hash: the same data prepared again has the same hash
(in memory or streamed, in any memory budget)."""


def content_hash(document: dict[str, Any]) -> str:
    """SHA-256 of a manifest document (as JSON) without the fields in ``_NOT_HASHED``."""
    kept = {k: v for k, v in document.items() if k not in _NOT_HASHED}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
    schema_changes: list[dict[str, Any]] = field(default_factory=list)
    """Features a source lacked or had all-missing, and how they were imputed
    (``model.data.schema``)."""
    batches: list[str] = field(default_factory=list)
    """The incoming batches read (their ids, ``model.data.batches``), oldest first."""
    preparation: dict[str, Any] = field(default_factory=dict)
    """How it was prepared: read whole or streamed, and the memory budget (not hashed)."""
    format_version: int = MANIFEST_FORMAT

    def batch_ids(self) -> list[str]:
        """The batches this data was made from: ``batches``, or for a manifest written before
        it was recorded, the ``date=…`` folders in its sources' paths."""
        if self.batches:
            return list(self.batches)
        parts = {p for s in self.sources for p in Path(s).parts if p.startswith("date=")}
        return sorted(parts)

    def split_path(self, name: str) -> Path:
        if name not in self.splits:
            raise DataValidationError(
                f"{self.path}: no split {quote(name)} (have {quote_list(sorted(self.splits))})"
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
            **({"schema_changes": list(self.schema_changes)} if self.schema_changes else {}),
            **({"batches": list(self.batches)} if self.batches else {}),
            **({"preparation": dict(self.preparation)} if self.preparation else {}),
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
                schema_changes=list(data.get("schema_changes", [])),
                batches=[str(b) for b in data.get("batches", [])],
                preparation=dict(data.get("preparation", {})),
                format_version=int(data.get("format_version", MANIFEST_FORMAT)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataValidationError(
                f"{path / MANIFEST_NAME}: invalid manifest: {brief(exc)}"
            ) from exc


def load_manifest(folder: str | Path) -> Manifest:
    """Read ``manifest.json`` from a prepared folder (or the manifest file itself)."""
    path = Path(folder)
    if path.name == MANIFEST_NAME and not path.is_dir():
        path = path.parent
    file = path / MANIFEST_NAME
    try:
        data = read_json(file, "a manifest", DataValidationError, limit=64 * 2**20)
    except FileNotFoundError as exc:
        raise DataValidationError(f"{file}: no manifest (not a prepared data folder)") from exc
    if not isinstance(data, dict):
        raise DataValidationError(f"{file}: invalid manifest: not a JSON object")
    version = data.get("format_version")
    if version != MANIFEST_FORMAT:
        raise DataValidationError(f"{file}: unsupported manifest format_version {quote(version)}")
    _verify_hash(data, path.resolve(), file)
    return Manifest.from_dict(data, path.resolve())


def _verify_hash(data: dict[str, Any], folder: Path, file: Path) -> None:
    """The manifest's content still has its recorded hash, and the folder is named by it."""
    recorded = data.get("sha256")
    actual = content_hash(data)
    if recorded != actual:
        shown = f"{recorded[:16]}…" if isinstance(recorded, str) else quote(recorded)
        raise DataValidationError(
            f"{file}: the manifest was edited after it was written (recorded content hash "
            f"{shown}, now {actual[:16]}…); prepare the data again"
        )
    if folder.name != actual[:16]:
        raise DataValidationError(
            f"{folder}: the folder's name is not its manifest's content hash ({actual[:16]}): "
            "a prepared folder is named by its hash (renamed, or the manifest edited?); "
            "prepare the data again"
        )


def file_sha256(path: Path) -> str:
    check_regular(path, "a prepared split", DataValidationError)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_split(manifest: Manifest, name: str) -> Path:
    """The path of one prepared split, after checking its SHA-256 against the manifest."""
    path = manifest.split_path(name)
    actual = file_sha256(path)
    if actual != manifest.splits[name].sha256:
        raise DataValidationError(
            f"{path}: checksum mismatch (manifest {manifest.splits[name].sha256[:12]}, "
            f"file {actual[:12]}): the prepared data changed after it was written"
        )
    return path


def load_split(
    folder_or_manifest: str | Path | Manifest, name: str, *, verify: bool = True
) -> pd.DataFrame:
    """One prepared split as a DataFrame; ``verify`` (the default) checks its SHA-256 against
    the manifest first."""
    manifest = (
        folder_or_manifest
        if isinstance(folder_or_manifest, Manifest)
        else load_manifest(folder_or_manifest)
    )
    path = verified_split(manifest, name) if verify else manifest.split_path(name)
    try:
        return pq.read_table(path, page_checksum_verification=True).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise parquet_error(path, exc) from exc
