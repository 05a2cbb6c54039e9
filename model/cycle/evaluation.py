"""What a cycle's comparison needs from the registry and the data: its number in the model's
family of comparisons, and which holdout rows production has never been trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.data import BATCH_COLUMN, load_manifest
from model.errors import DataValidationError
from model.gate.budget import next_comparison
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


def comparison_inputs(
    settings: Settings, registry: ModelRegistry, test: pd.DataFrame
) -> tuple[int, np.ndarray | None]:
    """``(holdout_uses, recent)`` for comparing a candidate with the current production."""
    k = next_comparison(registry.history())
    production = registry.production()
    if production is None:
        return k, None
    seen = trained_batches(settings, registry.metadata(production.version))
    return k, recent_rows(test, seen)
