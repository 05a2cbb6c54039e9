"""The drift computation: checks the inputs, measures every column, decides per column and
for the data set (Holm/Bonferroni-corrected p-values, effect-size floor, drift share).

Without a feature spec, :func:`detect_drift` infers one from the reference
(:func:`spec_for_reference`); the model's scores and the target column are compared too
when available, without counting towards the drift share.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from model.drift.categorical import categorical_drift
from model.drift.numeric import numeric_drift, numeric_values
from model.drift.results import (
    Correction,
    DriftReport,
    DriftSettings,
    FeatureDrift,
    SchemaChange,
)
from model.errors import DriftInputError
from model.threads import choose_threads

logger = logging.getLogger(__name__)

IGNORED_COLUMNS = ("date", "__batch__")
"""The batch partition (``date=…`` folders) and the prepared splits' batch provenance."""

if TYPE_CHECKING:
    from model.data import FeatureSpec


class Scorer(Protocol):
    """Anything with ``predict_proba(df) -> scores`` (e.g. ``model.artifact.LoadedModel``)."""

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray: ...


# --------------------------------------------------------------------------- validation


def _kind_of(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "text"


def _check_inputs(
    reference: pd.DataFrame, current: pd.DataFrame, spec: FeatureSpec, labels: tuple[str, str]
) -> None:
    """The reference must hold every feature with values; the current data may lack some
    (a schema change, see :func:`schema_changes`), but what it holds must have the
    reference's types."""
    ref_name, cur_name = labels
    features = spec.features
    if not features:
        raise DriftInputError("feature spec has no features to compare")
    for frame, name in ((reference, ref_name), (current, cur_name)):
        if len(frame) == 0:
            raise DriftInputError(f"{name}: no rows (empty batch)")
    missing = [c for c in features if c not in reference.columns]
    if missing:
        raise DriftInputError(f"{ref_name}: feature columns missing: {missing}")
    for col in features:
        if not reference[col].notna().any():
            raise DriftInputError(f"{ref_name}: column {col!r} has only missing values")
        if col in spec.numeric and _kind_of(reference[col]) not in ("numeric", "bool"):
            raise DriftInputError(
                f"column {col!r} is numeric in the feature spec but {reference[col].dtype} "
                f"in {ref_name}"
            )
        if col not in current.columns or not current[col].notna().any():
            continue  # a schema change, not a type error
        k_ref, k_cur = _kind_of(reference[col]), _kind_of(current[col])
        if k_ref != k_cur and col not in spec.categorical:  # categories compare as text
            example = current[col].dropna().iloc[0]
            raise DriftInputError(
                f"column {col!r} has different types: {ref_name} {reference[col].dtype} "
                f"({k_ref}), {cur_name} {current[col].dtype} ({k_cur}, e.g. "
                f"{str(example)[:40]!r})"
            )


def schema_changes(
    features: Sequence[str], parts: Mapping[str, pd.DataFrame]
) -> dict[str, tuple[SchemaChange, list[str]]]:
    """Features some part (batch) of the current data lacks or holds only missing values of:
    ``{feature: ("missing" | "all_missing", [part labels])}`` (``missing`` wins when some
    parts lack the column and others hold it empty)."""
    out: dict[str, tuple[SchemaChange, list[str]]] = {}
    for col in features:
        lacking = [label for label, frame in parts.items() if col not in frame.columns]
        empty = [
            label
            for label, frame in parts.items()
            if col in frame.columns and not frame[col].notna().any()
        ]
        if lacking:
            out[col] = ("missing", lacking + empty)
        elif empty:
            out[col] = ("all_missing", empty)
    return out


def extra_columns(reference: pd.DataFrame, current: pd.DataFrame, spec: FeatureSpec) -> list[str]:
    """Columns of the current data that the reference does not have (ignored, with a
    warning); the batch partition and provenance columns are not counted."""
    known = {*reference.columns, *spec.features, spec.target, *IGNORED_COLUMNS}
    known.update(c for c in (spec.id_column, spec.timestamp_column) if c is not None)
    return [str(c) for c in current.columns if c not in known]


def _schema_drift(
    col: str, spec: FeatureSpec, reference: pd.DataFrame, change: tuple[SchemaChange, list[str]]
) -> FeatureDrift:
    kind: Literal["numeric", "categorical"] = "numeric" if col in spec.numeric else "categorical"
    return FeatureDrift(
        name=col,
        kind=kind,
        test="schema",
        statistic=math.nan,
        p_value=math.nan,
        psi=math.nan,
        distance=math.nan,
        distance_name="wasserstein_norm" if kind == "numeric" else "jensen_shannon",
        reference_missing=float(reference[col].isna().mean()),
        current_missing=1.0,
        schema_change=change[0],
        schema_batches=list(change[1]),
    )


def category_text(series: pd.Series) -> pd.Series:
    """A categorical column's values as text, the way data preparation writes them: integral
    numbers without ".0" (1 and 1.0 are the same level), missing values kept missing."""
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.dropna().to_numpy(dtype=float)
        if values.size and bool(np.all(np.mod(values, 1) == 0)):
            s = s.astype("Int64")
    return s.astype("string")


# --------------------------------------------------------------------------- detection


def _adjust(p_values: list[float], correction: Correction) -> list[float]:
    k = len(p_values)
    if correction == "none" or k == 0:
        return list(p_values)
    if correction == "bonferroni":
        return [min(1.0, p * k) for p in p_values]
    order = sorted(range(k), key=lambda i: p_values[i])
    adjusted = [0.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _sample(df: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    if len(df) <= size:
        return df
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=size, replace=False))
    return df.iloc[idx]


def _paths(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> list[str]:
    if path is None:
        return []
    if isinstance(path, str | os.PathLike):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


PathArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def spec_for_reference(
    reference: pd.DataFrame,
    target: str = "target",
    id_column: str | None = None,
    exclude: Sequence[str] = ("date",),
) -> FeatureSpec:
    """A feature spec inferred from the reference; a column named ``id`` is never a feature."""
    from model.data import infer_spec

    if id_column is None and "id" in reference.columns:
        id_column = "id"
    return infer_spec(reference, target=target, id_column=id_column, exclude=exclude)


def _feature_drifts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    settings: DriftSettings,
    changes: Mapping[str, tuple[SchemaChange, list[str]]],
) -> dict[str, FeatureDrift]:
    """One :class:`FeatureDrift` per feature, in the spec's order (computed in threads)."""

    def one(col: str) -> FeatureDrift:
        if col in changes:
            return _schema_drift(col, spec, reference, changes[col])
        if col in spec.numeric and _kind_of(reference[col]) == "numeric":
            return numeric_drift(
                col, numeric_values(reference[col]), numeric_values(current[col]), settings.n_bins
            )
        ref, cur = reference[col], current[col]
        if _kind_of(ref) != _kind_of(cur):  # e.g. integer codes vs their prepared text
            ref, cur = category_text(ref), category_text(cur)
        return categorical_drift(col, ref, cur)

    cols = list(spec.features)
    if len(cols) == 1 or len(reference) + len(current) < 100_000:
        return {col: one(col) for col in cols}
    # columns are compared in threads (sorting and counting release the GIL), as many as are free
    threads = choose_threads(synchronised=False).threads
    if threads == 1:
        return {col: one(col) for col in cols}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(one, cols))
    return dict(zip(cols, results, strict=True))


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec | None = None,
    settings: DriftSettings | None = None,
    *,
    model: Scorer | None = None,
    reference_path: PathArg = None,
    current_path: PathArg = None,
    model_info: dict[str, Any] | None = None,
    current_parts: Mapping[str, pd.DataFrame] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature (see :mod:`model.drift`).

    Without ``spec``, the features are inferred from the reference's dtypes
    (:func:`spec_for_reference`: the ``target`` column, a column named ``id`` and ``date``
    are not features).

    With ``model``, the model scores a sample (at most ``settings.max_model_rows`` rows) of
    each frame and its score distribution is compared too (``prediction``); when the target
    column is in both frames its distribution is compared (``target``). Neither counts
    towards ``drift_share``.

    A feature the current data lacks, or holds only missing values of, is a schema change
    (``FeatureDrift.schema_change``): drifted, without a test (and left out of the Holm
    family). ``current_parts`` (label -> frame, e.g. one per batch, ``current`` being their
    concatenation) finds the batches where that happens; columns the reference does not have
    are ignored with a warning (``current["extra_columns"]``).
    """
    settings = settings or DriftSettings()
    if spec is None:
        spec = spec_for_reference(reference)
    ref_paths, cur_paths = _paths(reference_path), _paths(current_path)
    labels = (
        f"reference ({', '.join(ref_paths)})" if ref_paths else "reference",
        f"current ({', '.join(cur_paths)})" if cur_paths else "current",
    )
    _check_inputs(reference, current, spec, labels)
    changes = schema_changes(spec.features, current_parts or {labels[1]: current})
    extra = extra_columns(reference, current, spec)
    if extra:
        logger.warning("%s: columns not in the reference are ignored: %s", labels[1], extra)
    features = _feature_drifts(reference, current, spec, settings, changes)
    tested = [f for f in features.values() if f.schema_change is None]
    adjusted = _adjust([f.p_value for f in tested], settings.correction)
    for f, p_adj in zip(tested, adjusted, strict=True):
        f.p_value_adjusted = p_adj
    for f in features.values():
        f.decide(settings)
    n_drifted = sum(f.drifted for f in features.values())
    report = DriftReport(
        features=features,
        reference={"paths": ref_paths, "rows": len(reference)},
        current={"paths": cur_paths, "rows": len(current), "extra_columns": extra},
        settings=settings,
        drift_share=n_drifted / len(features),
        dataset_drift=bool(settings.dataset_reasons(n_drifted, len(features))),
        model=model_info,
    )
    if model is not None:
        report.prediction = _prediction_drift(model, reference, current, spec, settings)
    report.target = _target_drift(reference, current, spec.target, settings)
    return report


def _prediction_drift(
    model: Scorer,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    settings: DriftSettings,
) -> FeatureDrift:
    ref = _sample(reference, settings.max_model_rows, settings.seed)
    cur = _sample(current, settings.max_model_rows, settings.seed + 1)
    absent = [c for c in spec.features if c not in cur.columns]
    if absent:  # a schema change: scored as missing values (the model imputes them)
        cur = cur.assign(**{c: np.nan for c in absent})
    r = np.asarray(model.predict_proba(ref), dtype=np.float64).ravel()
    c = np.asarray(model.predict_proba(cur), dtype=np.float64).ravel()
    fd = numeric_drift("prediction", r, c, settings.n_bins)
    fd.summary["rows_scored_reference"] = float(len(ref))
    fd.summary["rows_scored_current"] = float(len(cur))
    fd.decide(settings)
    return fd


def _target_drift(
    reference: pd.DataFrame, current: pd.DataFrame, target: str, settings: DriftSettings
) -> FeatureDrift | None:
    if target not in reference.columns or target not in current.columns:
        return None
    ref, cur = reference[target].dropna(), current[target].dropna()
    if ref.empty or cur.empty:
        return None
    if _kind_of(ref) != _kind_of(cur):  # e.g. 0/1 vs "yes"/"no": compare as text
        ref, cur = ref.astype(str), cur.astype(str)
    fd = categorical_drift(target, ref, cur)
    fd.decide(settings)
    return fd
