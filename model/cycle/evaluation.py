"""What a cycle's comparison needs from the registry and the data, and what it records.

:func:`comparison_inputs` gives the comparator the rows production has never been trained on
(``recent``), the batch of every test row and the batch sets of the model's earlier decisions:
from these the comparator sets the decision's level (:mod:`model.gate.evidence`: evidence is
accounted by rows). :func:`record_comparison` writes the ``compared`` history event with the
evidence the next decision reads back. The retraining flow's ``compare_models`` task and the
gate's simulation tests both go through these two functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.data import BATCH_COLUMN, load_manifest
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


def row_batches(test: pd.DataFrame) -> list[str]:
    """The batch of every test row (:data:`~model.gate.evidence.BASE` for base-data rows, and
    for every row of a split that records no batches)."""
    if BATCH_COLUMN not in test.columns:
        return [BASE] * len(test)
    return batch_ids(test[BATCH_COLUMN].astype(object).tolist())


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
    settings: Settings, registry: ModelRegistry, test: pd.DataFrame
) -> ComparisonInputs:
    """The inputs for comparing a candidate with the current production on ``test``."""
    production = registry.production()
    recent = None
    if production is not None:
        seen = trained_batches(settings, registry.metadata(production.version))
        recent = recent_rows(test, seen)
    return inputs_from_history(registry.history(), row_batches(test), recent)


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
