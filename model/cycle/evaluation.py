"""What a cycle's comparison needs from the registry and the data, and what it records.

:func:`comparison_inputs` gives the comparator the rows production has never been trained on
(``recent``), the batch of every test row and the batch sets of the model's earlier decisions:
from these the comparator sets the decision's level (:mod:`model.gate.evidence`: evidence is
accounted by rows). :func:`record_comparison` writes the ``compared`` history event with the
evidence the next decision reads back. The retraining flow's ``compare_models`` task and the
gate's simulation tests both go through these two functions.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.data import BATCH_COLUMN, Manifest, load_manifest
from model.data.manifest import verified_split
from model.data.read import parquet_error
from model.drift.sources import in_memory_size
from model.errors import DataValidationError
from model.gate.comparator import ModelComparator, target_of
from model.gate.evidence import BASE, batch_ids, earlier_decisions
from model.gate.result import ComparisonResult, ModelInfo
from model.gate.spilled_compare import SpilledHoldout, compare_spilled, spill_holdout
from model.registry import ModelRegistry
from model.settings import Settings


def trained_batches(settings: Settings, meta: dict[str, Any]) -> set[str] | None:
    """Ids of the incoming batches a model was trained on (from its data manifest), or None."""
    ref = (meta.get("data_manifest") or {}).get("path")
    if not ref:
        return None
    try:
        return set(manifest_batches(settings.resolve(ref)))
    except (OSError, DataValidationError):
        return None


def manifest_batches(folder: str | Path) -> list[str]:
    """Ids of the incoming batches a prepared folder was made from (``Manifest.batch_ids``)."""
    return load_manifest(folder).batch_ids()


def recent_rows(test: pd.DataFrame, seen: set[str] | None) -> np.ndarray | None:
    """Rows of the prepared test split that came from batches not in ``seen`` (None when the
    split records no batches, or production's training batches are unknown)."""
    if seen is None or BATCH_COLUMN not in test.columns:
        return None
    batch = test[BATCH_COLUMN]
    mask = batch.notna().to_numpy() & ~batch.isin(sorted(seen)).to_numpy()
    return mask if mask.any() else None


def raw_batches(rows: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Each row's ``__batch__`` id (``base`` for the base data) and the mask of base rows."""
    if BATCH_COLUMN in rows.columns:
        ids = batch_ids(rows[BATCH_COLUMN].astype(object).tolist())
    else:
        ids = [BASE] * len(rows)
    return ids, np.array([b == BASE for b in ids], dtype=bool)


def row_batches(test: pd.DataFrame, manifest: Manifest | None = None) -> list[str]:
    """The batch of every test row: its ``__batch__`` id, and for rows of the base data
    ``base:<fingerprint>`` (:func:`base_fingerprint`), so that base data replaced by new rows
    counts as new rows, and the same base data as the same rows."""
    ids, base = raw_batches(test)
    if base.any():
        name = f"{BASE}:{base_fingerprint(test.loc[base], manifest)}"
        ids = [name if b == BASE else b for b in ids]
    return ids


def base_fingerprint(rows: pd.DataFrame, manifest: Manifest | None = None) -> str:
    """Which rows these are, independent of their order: a hash of their id column when the
    spec has one, else of the target and every column the data had no missing value in
    (imputed values move when the training data does; the rows themselves do not)."""
    return _fingerprint(row_hashes(rows, manifest))


def row_hashes(rows: pd.DataFrame, manifest: Manifest | None = None) -> np.ndarray:
    """Each row's hash over the columns :func:`base_fingerprint` reads (uint64)."""
    columns: list[str] = [c for c in rows.columns if c != BATCH_COLUMN]
    if manifest is not None:
        spec = manifest.spec
        if spec.id_column and spec.id_column in rows.columns:
            columns = [spec.id_column]
        else:
            kept = [c for c in spec.features if not manifest.missing.get(c) and c in rows.columns]
            columns = [c for c in (spec.target, *kept) if c in rows.columns]
    return pd.util.hash_pandas_object(rows[columns], index=False).to_numpy()


def _fingerprint(hashes: np.ndarray) -> str:
    return hashlib.sha256(np.sort(hashes).tobytes()).hexdigest()[:12]


@dataclass(frozen=True)
class ComparisonInputs:
    """What the comparator needs besides the scores: which rows are recent, the batch of every
    row, and the batch sets of the earlier decisions that spent α."""

    recent: np.ndarray | None
    batches: list[str]
    earlier: list[frozenset[str]]

    def kwargs(self) -> dict[str, Any]:
        return {"recent": self.recent, "batches": self.batches, "earlier": self.earlier}


def inputs_from_history(
    events: Sequence[Mapping[str, Any]], batches: Sequence[str], recent: np.ndarray | None
) -> ComparisonInputs:
    """:class:`ComparisonInputs` from the history's events and the rows' batches."""
    return ComparisonInputs(recent, list(batches), earlier_decisions(events))


def comparison_inputs(
    settings: Settings,
    registry: ModelRegistry,
    test: pd.DataFrame,
    manifest: Manifest | None = None,
) -> ComparisonInputs:
    """The inputs for comparing a candidate with the current production on ``test`` (the test
    split of the prepared folder ``manifest`` describes)."""
    production = registry.production()
    recent = None
    if production is not None:
        seen = trained_batches(settings, registry.metadata(production.version))
        recent = recent_rows(test, seen)
    return inputs_from_history(registry.history(), row_batches(test, manifest), recent)


def spilled_holdout(
    settings: Settings,
    registry: ModelRegistry,
    manifest: Manifest,
    models: tuple[Any | None, Any],
    target: str,
    scratch: Path,
) -> tuple[SpilledHoldout, list[frozenset[str]]]:
    """The test split of the prepared folder ``manifest`` describes, read in batches, scored
    by both models (baseline, candidate) and spilled to ``scratch`` in about
    ``settings.memory_budget`` (:mod:`model.gate.spill`), with what
    :func:`comparison_inputs` gives: the recent rows and each batch's class counts (base
    rows named by the same fingerprint), and the earlier decisions' batch sets. The base
    rows' hashes (8 bytes a row) are held to fingerprint them."""
    path = verified_split(manifest, "test")
    production = registry.production()
    seen = None
    if production is not None:
        seen = trained_batches(settings, registry.metadata(production.version))
    budget = settings.memory_budget
    base_hashes: list[np.ndarray] = []

    def chunks() -> Iterator[tuple[pd.DataFrame, np.ndarray | None, list[str]]]:
        try:
            reader = pq.ParquetFile(path, page_checksum_verification=True)
            # a frame's text value takes ~64 bytes in pandas; both models copy what they score
            rows_per_chunk = max(1024, budget // 8 // max(1, 64 * len(reader.schema_arrow)))
            for batch in reader.iter_batches(batch_size=rows_per_chunk):
                frame = batch.to_pandas()
                ids, base = raw_batches(frame)
                if base.any():
                    base_hashes.append(row_hashes(frame.loc[base], manifest))
                yield frame, recent_rows(frame, seen), ids
        except (pa.ArrowInvalid, OSError) as exc:
            raise parquet_error(path, exc) from exc

    holdout = spill_holdout(chunks(), *models, target, scratch, budget)
    if base_hashes:
        name = f"{BASE}:{_fingerprint(np.concatenate(base_hashes))}"
        for counts in (holdout.counts, holdout.recent_counts):
            if BASE in counts:
                counts[name] = counts.pop(BASE)
    return holdout, earlier_decisions(registry.history())


GATE_IN_MEMORY_FACTOR = 4
"""The in-memory gate's peak over its holdout's size in pandas (the frame, the models' input
tensors and scores, the sorts and the bootstrap's index): a conservative estimate; past the
budget the gate spills."""


def gate_in_memory_size(manifest: Manifest) -> int | None:
    """The in-memory gate's estimated peak (bytes) on the test split, or None when unknown."""
    size = in_memory_size([manifest.split_path("test")])
    return None if size is None else size * GATE_IN_MEMORY_FACTOR


def spilled_comparison(
    settings: Settings,
    registry: ModelRegistry,
    manifest: Manifest,
    comparator: ModelComparator,
    baseline: Any | None,
    candidate: Any,
) -> ComparisonResult:
    """``comparator.compare`` over the test split spilled to a scratch folder beside the
    model's reports (removed after), in about ``settings.memory_budget``."""
    target = comparator.target_column or target_of(baseline, candidate)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gate-", dir=settings.reports_dir) as scratch:
        holdout, earlier = spilled_holdout(
            settings, registry, manifest, (baseline, candidate), target, Path(scratch)
        )
        return compare_spilled(
            comparator,
            holdout,
            baseline_info=None if baseline is None else ModelInfo.of(baseline),
            candidate_info=ModelInfo.of(candidate),
            earlier=earlier,
        )


def record_comparison(
    registry: ModelRegistry,
    result: ComparisonResult,
    candidate_version: str,
    baseline_version: str | None,
    **fields: Any,
) -> dict[str, Any]:
    """Append the ``compared`` event: the decision, its primary test, the evidence (the
    batches of its rows and its level) and what it spent (0, with the reason, when it tested
    nothing). ``fields``: the run's extras (reports, holdout, run id…). Returns the event."""
    report = result.to_dict()
    metrics = {
        name: {"baseline": m.get("baseline"), "candidate": m.get("candidate")}
        for name, m in report["metrics"].items()
    }
    return registry.record(
        "compared",
        version=candidate_version,
        baseline=baseline_version,
        decision=result.decision,
        reasons=list(result.reasons),
        metrics=metrics,
        primary=report["primary"],
        decided_on=result.decided_on,
        holdout_uses=result.holdout_uses,
        alpha_spent=result.alpha_spent,
        untested=result.untested,
        evidence=result.evidence,
        candidate_auc=report["candidate_auc"],
        populations={
            name: {"n": pop["n"], "n_positive": pop["n_positive"]}
            for name, pop in report["populations"].items()
        },
        **fields,
    )
