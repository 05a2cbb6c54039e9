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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


Side = Literal["reference", "current"]


@dataclass(frozen=True)
class ColumnProfile:
    """What the checks need of one column: its kind as pandas reads the whole column
    (:func:`_kind_of`), how many values it holds, and the first of them (for messages)."""

    kind: str
    values: int
    dtype: str
    example: Any = None


@dataclass(frozen=True)
class Profile:
    """A frame (or a set of files) seen by the checks: rows and column profiles, in order."""

    rows: int
    columns: dict[str, ColumnProfile]


def profile_frame(frame: pd.DataFrame) -> Profile:
    columns = {}
    for name in frame.columns:
        series = frame[name]
        present = series.notna().to_numpy()
        count = int(present.sum())
        example = series.iloc[int(np.argmax(present))] if count else None
        columns[str(name)] = ColumnProfile(_kind_of(series), count, str(series.dtype), example)
    return Profile(len(frame), columns)


def _check_inputs(
    reference: Profile, current: Profile, spec: FeatureSpec, labels: tuple[str, str]
) -> None:
    """The reference must hold every feature with values; the current data may lack some
    (a schema change, see :func:`schema_changes`), but what it holds must have the
    reference's types."""
    ref_name, cur_name = labels
    features = spec.features
    if not features:
        raise DriftInputError("feature spec has no features to compare")
    for profile, name in ((reference, ref_name), (current, cur_name)):
        if profile.rows == 0:
            raise DriftInputError(f"{name}: no rows (empty batch)")
    missing = [c for c in features if c not in reference.columns]
    if missing:
        raise DriftInputError(f"{ref_name}: feature columns missing: {missing}")
    for col in features:
        ref = reference.columns[col]
        if not ref.values:
            raise DriftInputError(f"{ref_name}: column {col!r} has only missing values")
        if col in spec.numeric and ref.kind not in ("numeric", "bool"):
            raise DriftInputError(
                f"column {col!r} is numeric in the feature spec but {ref.dtype} in {ref_name}"
            )
        cur = current.columns.get(col)
        if cur is None or not cur.values:
            continue  # a schema change, not a type error
        if ref.kind != cur.kind and col not in spec.categorical:  # categories compare as text
            raise DriftInputError(
                f"column {col!r} has different types: {ref_name} {ref.dtype} "
                f"({ref.kind}), {cur_name} {cur.dtype} ({cur.kind}, e.g. "
                f"{str(cur.example)[:40]!r})"
            )


def schema_changes(
    features: Sequence[str], parts: Mapping[str, Profile]
) -> dict[str, tuple[SchemaChange, list[str]]]:
    """Features some part (batch) of the current data lacks or holds only missing values of:
    ``{feature: ("missing" | "all_missing", [part labels])}`` (``missing`` wins when some
    parts lack the column and others hold it empty)."""
    out: dict[str, tuple[SchemaChange, list[str]]] = {}
    for col in features:
        lacking = [label for label, part in parts.items() if col not in part.columns]
        empty = [
            label
            for label, part in parts.items()
            if col in part.columns and not part.columns[col].values
        ]
        if lacking:
            out[col] = ("missing", lacking + empty)
        elif empty:
            out[col] = ("all_missing", empty)
    return out


def extra_columns(reference: Profile, current: Profile, spec: FeatureSpec) -> list[str]:
    """Columns of the current data that the reference does not have (ignored, with a
    warning); the batch partition and provenance columns are not counted."""
    known = {*reference.columns, *spec.features, spec.target, *IGNORED_COLUMNS}
    known.update(c for c in (spec.id_column, spec.timestamp_column) if c is not None)
    return [c for c in current.columns if c not in known]


def _schema_drift(
    col: str, spec: FeatureSpec, reference: Profile, change: tuple[SchemaChange, list[str]]
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
        reference_missing=(reference.rows - reference.columns[col].values) / reference.rows,
        current_missing=1.0,
        schema_change=change[0],
        schema_batches=list(change[1]),
    )


def category_text(series: pd.Series, integral: bool | None = None) -> pd.Series:
    """A categorical column's values as text, the way data preparation writes them: integral
    numbers without ".0" (1 and 1.0 are the same level), missing values kept missing.
    ``integral``: whether every value of the whole column is integral, when ``series`` is a
    part of it (None: decided from ``series``)."""
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_float_dtype(s.dtype):
        if integral is None:
            integral = all_integral(s)
        if integral:
            s = s.astype("Int64")
    return s.astype("string")


def all_integral(series: pd.Series) -> bool:
    """Whether a float column holds values and only integral ones."""
    values = series.dropna().to_numpy(dtype=float)
    return bool(values.size and np.all(np.mod(values, 1) == 0))


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


class Sides(Protocol):
    """The two sides of a comparison as the drift computation reads them: their profiles
    (the current data's also per part, e.g. per batch) and each column's statistics. Whole
    frames in memory (:class:`_Frames`) or Parquet files read in batches
    (:class:`model.drift.stream.ParquetSides`)."""

    reference: Profile
    current: Profile
    parts: Mapping[str, Profile]

    def numeric(self, col: str, n_bins: int) -> FeatureDrift: ...

    def categorical(self, col: str, as_text: bool) -> FeatureDrift: ...

    def target(self, col: str, as_text: bool) -> FeatureDrift: ...

    def sample(self, side: Side, size: int, seed: int) -> pd.DataFrame: ...

    def each(self, fn: Callable[[str], FeatureDrift], cols: list[str]) -> list[FeatureDrift]: ...


class _Frames:
    """Both sides as whole frames in memory."""

    def __init__(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        parts: Mapping[str, pd.DataFrame] | None,
        labels: tuple[str, str],
    ) -> None:
        self.frames = {"reference": reference, "current": current}
        self.reference, self.current = profile_frame(reference), profile_frame(current)
        self.parts: Mapping[str, Profile] = (
            {label: profile_frame(frame) for label, frame in parts.items()}
            if parts
            else {labels[1]: self.current}
        )

    def numeric(self, col: str, n_bins: int) -> FeatureDrift:
        ref, cur = (numeric_values(f[col]) for f in self.frames.values())
        return numeric_drift(col, ref, cur, n_bins)

    def categorical(self, col: str, as_text: bool) -> FeatureDrift:
        ref, cur = (f[col] for f in self.frames.values())
        if as_text:  # e.g. integer codes vs their prepared text
            ref, cur = category_text(ref), category_text(cur)
        return categorical_drift(col, ref, cur)

    def target(self, col: str, as_text: bool) -> FeatureDrift:
        ref, cur = (f[col].dropna() for f in self.frames.values())
        if as_text:  # e.g. 0/1 vs "yes"/"no": compare as text
            ref, cur = ref.astype(str), cur.astype(str)
        return categorical_drift(col, ref, cur)

    def sample(self, side: Side, size: int, seed: int) -> pd.DataFrame:
        return _sample(self.frames[side], size, seed)

    def each(self, fn: Callable[[str], FeatureDrift], cols: list[str]) -> list[FeatureDrift]:
        if len(cols) == 1 or self.reference.rows + self.current.rows < 100_000:
            return [fn(col) for col in cols]
        # columns are compared in threads (sorting and counting release the GIL), as many
        # as are free
        threads = choose_threads(synchronised=False).threads
        if threads == 1:
            return [fn(col) for col in cols]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(fn, cols))


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
    if spec is None:
        spec = spec_for_reference(reference)
    paths = _paths(reference_path), _paths(current_path)
    sides = _Frames(reference, current, current_parts, side_labels(paths))
    return drift_of(sides, spec, settings, model=model, paths=paths, model_info=model_info)


def side_labels(paths: tuple[list[str], list[str]]) -> tuple[str, str]:
    """How messages name the two sides (with their paths when given)."""
    ref_paths, cur_paths = paths
    return (
        f"reference ({', '.join(ref_paths)})" if ref_paths else "reference",
        f"current ({', '.join(cur_paths)})" if cur_paths else "current",
    )


def drift_of(
    sides: Sides,
    spec: FeatureSpec,
    settings: DriftSettings | None,
    *,
    model: Scorer | None,
    paths: tuple[list[str], list[str]],
    model_info: dict[str, Any] | None,
) -> DriftReport:
    """The drift report of two sides, however they are read (:func:`detect_drift`);
    ``paths``: the reference's and the current data's, for the report and messages."""
    settings = settings or DriftSettings()
    labels = side_labels(paths)
    _check_inputs(sides.reference, sides.current, spec, labels)
    changes = schema_changes(spec.features, sides.parts)
    extra = extra_columns(sides.reference, sides.current, spec)
    if extra:
        logger.warning("%s: columns not in the reference are ignored: %s", labels[1], extra)

    def one(col: str) -> FeatureDrift:
        if col in changes:
            return _schema_drift(col, spec, sides.reference, changes[col])
        ref_kind = sides.reference.columns[col].kind
        if col in spec.numeric and ref_kind == "numeric":
            return sides.numeric(col, settings.n_bins)
        return sides.categorical(col, as_text=ref_kind != sides.current.columns[col].kind)

    cols = list(spec.features)
    features = dict(zip(cols, sides.each(one, cols), strict=True))
    tested = [f for f in features.values() if f.schema_change is None]
    adjusted = _adjust([f.p_value for f in tested], settings.correction)
    for f, p_adj in zip(tested, adjusted, strict=True):
        f.p_value_adjusted = p_adj
    for f in features.values():
        f.decide(settings)
    n_drifted = sum(f.drifted for f in features.values())
    report = DriftReport(
        features=features,
        reference={"paths": paths[0], "rows": sides.reference.rows},
        current={
            "paths": paths[1],
            "rows": sides.current.rows,
            "extra_columns": extra,
        },
        settings=settings,
        drift_share=n_drifted / len(features),
        dataset_drift=bool(settings.dataset_reasons(n_drifted, len(features))),
        model=model_info,
    )
    if model is not None:
        report.prediction = _prediction_drift(model, sides, spec, settings)
    report.target = _target_drift(sides, spec.target, settings)
    return report


def _prediction_drift(
    model: Scorer, sides: Sides, spec: FeatureSpec, settings: DriftSettings
) -> FeatureDrift:
    ref = sides.sample("reference", settings.max_model_rows, settings.seed)
    cur = sides.sample("current", settings.max_model_rows, settings.seed + 1)
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


def _target_drift(sides: Sides, target: str, settings: DriftSettings) -> FeatureDrift | None:
    ref, cur = sides.reference.columns.get(target), sides.current.columns.get(target)
    if ref is None or cur is None or not ref.values or not cur.values:
        return None
    fd = sides.target(target, as_text=ref.kind != cur.kind)
    fd.decide(settings)
    return fd
