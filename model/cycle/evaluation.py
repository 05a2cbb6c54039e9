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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.data import BATCH_COLUMN, Manifest, load_manifest
from model.errors import DataValidationError
from model.gate.evidence import BASE, batch_ids, earlier_decisions
from model.gate.result import ComparisonResult
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


def row_batches(test: pd.DataFrame, manifest: Manifest | None = None) -> list[str]:
    """The batch of every test row: its ``__batch__`` id, and for rows of the base data
    ``base:<fingerprint>`` (:func:`base_fingerprint`), so that base data replaced by new rows
    counts as new rows, and the same base data as the same rows."""
    if BATCH_COLUMN in test.columns:
        ids = batch_ids(test[BATCH_COLUMN].astype(object).tolist())
    else:
        ids = [BASE] * len(test)
    base = np.array([b == BASE for b in ids], dtype=bool)
    if base.any():
        name = f"{BASE}:{base_fingerprint(test.loc[base], manifest)}"
        ids = [name if b == BASE else b for b in ids]
    return ids


def base_fingerprint(rows: pd.DataFrame, manifest: Manifest | None = None) -> str:
    """Which rows these are, independent of their order: a hash of their id column when the
    spec has one, else of the target and every column the data had no missing value in
    (imputed values move when the training data does; the rows themselves do not)."""
    columns: list[str] = [c for c in rows.columns if c != BATCH_COLUMN]
    if manifest is not None:
        spec = manifest.spec
        if spec.id_column and spec.id_column in rows.columns:
            columns = [spec.id_column]
        else:
            kept = [c for c in spec.features if not manifest.missing.get(c) and c in rows.columns]
            columns = [c for c in (spec.target, *kept) if c in rows.columns]
    hashed = np.sort(pd.util.hash_pandas_object(rows[columns], index=False).to_numpy())
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:12]


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
