"""Input checks of a comparison: options, models' specs, labels, scores, the holdout file.

Every problem is a :class:`~model.errors.ComparisonInputError` naming the column, value or
model; nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.data import encode_target as data_encode_target
from model.data import read_table
from model.errors import ComparisonInputError, RetrainError
from model.gate.metrics import METRICS, canonical_metric


def metric_name(name: str, what: str) -> str:
    metric = canonical_metric(str(name))
    if metric is None:
        raise ComparisonInputError(
            f"unknown metric {name!r} for {what}; known: {', '.join(METRICS)}"
        )
    return metric


def in_range(value: float, name: str, low: float, high: float, open_low: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ComparisonInputError(f"{name} must be a number, got {value!r}") from None
    too_low = v <= low if open_low else v < low
    if not math.isfinite(v) or too_low or v > high:
        bracket = "(" if open_low else "["
        raise ComparisonInputError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return v


def margins(margins: Mapping[str, float] | None, what: str, lowest: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, margin in (margins or {}).items():
        metric = metric_name(name, what)
        out[metric] = in_range(margin, f"{what} margin for {name}", lowest, 1.0)
    return out


def check_specs(baseline: Any, candidate: Any, df: pd.DataFrame, target: str) -> None:
    specs = {
        who: getattr(model, "spec", None)
        for who, model in (("baseline", baseline), ("candidate", candidate))
        if model is not None
    }
    features = {who: list(getattr(s, "features", [])) for who, s in specs.items() if s is not None}
    if len(features) == 2 and features["baseline"] != features["candidate"]:
        b, c = features["baseline"], features["candidate"]
        only_b = sorted(set(b) - set(c))
        only_c = sorted(set(c) - set(b))
        detail = f"only in baseline: {only_b}, only in candidate: {only_c}"
        if not only_b and not only_c:
            detail = "same features in a different order"
        raise ComparisonInputError(f"the models' feature specs differ ({detail})")
    for who, cols in features.items():
        missing = [col for col in cols if col not in df.columns]
        if missing:
            raise ComparisonInputError(
                f"test data lacks the {who} model's feature columns {missing}"
            )
    if target not in df.columns:
        raise ComparisonInputError(f"test data has no target column {target!r}")


def encode_target(df: pd.DataFrame, target: str) -> np.ndarray:
    col = df[target]
    if col.isna().any():
        raise ComparisonInputError(
            f"target column {target!r} has {int(col.isna().sum())} missing values"
        )
    values = set(pd.unique(col).tolist())
    if values <= {0, 1}:  # also True/False
        return col.to_numpy().astype(np.int8)
    try:
        return np.asarray(data_encode_target(col, "test data")).astype(np.int8)
    except RetrainError as exc:
        raise ComparisonInputError(f"target column {target!r}: {exc}") from exc


def check_labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true).ravel()
    if y.size == 0:
        raise ComparisonInputError("the test set is empty (0 rows)")
    if not np.isin(y, (0, 1)).all():
        raise ComparisonInputError("labels must be 0/1")
    return y.astype(np.int8)  # too few of a class is not bad input: the gate says so


def check_scores(scores: Any, n: int, who: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    s = s.ravel()
    if s.size != n:
        raise ComparisonInputError(f"the {who} model returned {s.size} scores for {n} rows")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ComparisonInputError(
            f"the {who} model returned {int(bad.sum())} NaN or infinite scores (first at row "
            f"{int(np.flatnonzero(bad)[0])})"
        )
    if s.min() < 0 or s.max() > 1:
        raise ComparisonInputError(
            f"the {who} model's scores must be probabilities in [0, 1], got range "
            f"[{s.min():.4g}, {s.max():.4g}]"
        )
    return s


def score(model: Any, df: pd.DataFrame, who: str) -> np.ndarray:
    """The ``who`` model's scores of ``df``, checked. A model that cannot score the holdout (a
    column it reads is missing, say) is a one-line ComparisonInputError naming the model and
    its error, not a traceback from inside the model."""
    if not hasattr(model, "predict_proba"):
        raise ComparisonInputError(f"the {who} model has no predict_proba(df)")
    try:
        scores = model.predict_proba(df)
    except RetrainError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        detail = str(exc) if len(str(exc)) <= 160 else str(exc)[:159] + "…"
        raise ComparisonInputError(
            f"the {who} model could not score the holdout ({type(exc).__name__}: {detail})"
        ) from exc
    return check_scores(scores, len(df), who)


def read_test_data(source: str | Path) -> pd.DataFrame:
    """Read the holdout (CSV, Parquet file or folder) with :func:`model.data.read_table`."""
    path = Path(source)
    if not path.exists():
        raise ComparisonInputError(f"test data {str(path)!r} does not exist")
    return read_table(path)
