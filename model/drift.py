"""Data drift between a reference (the production model's training data) and new batches.

Per numeric feature: two-sample Kolmogorov–Smirnov test, PSI over quantile bins of the
reference and the Wasserstein-1 distance divided by the reference's standard deviation.
Per categorical feature: chi-square test over the levels, PSI and Jensen–Shannon distance
(base 2, in [0, 1]); levels unseen in the reference are counted.

Drift rule (configurable in :class:`DriftSettings`): a feature drifts when its p-value,
Holm-corrected over the features of the report, is below ``alpha`` AND its effect size is
material (``psi >= psi_threshold`` or ``distance >= distance_threshold``). The test controls
false alarms on small batches; the effect-size floor stops huge samples from flagging
trivial shifts. The data set drifts when the share of drifted features reaches
``dataset_drift_threshold``; the report's ``drift_share`` is the measured share.

Speed: each numeric column is sorted once; KS, PSI bins, histograms and Wasserstein all
come from the two sorted arrays (one stable merge gives both ECDFs). Categorical counts
come from ``pd.factorize`` codes and ``np.bincount``.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from model.errors import DriftInputError

if TYPE_CHECKING:
    from model.data import FeatureSpec
    from model.settings import Settings

FORMAT_VERSION = 1
PSI_EPS = 1e-4  # proportions are floored at this before the PSI logarithm
HIST_BINS = 20
MAX_LEVELS_SHOWN = 20
_PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")

Correction = Literal["holm", "bonferroni", "none"]


class Scorer(Protocol):
    """Anything with ``predict_proba(df) -> scores`` (e.g. ``model.artifact.LoadedModel``)."""

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class DriftSettings:
    """How drift is decided. See the module docstring for the rule."""

    alpha: float = 0.05
    correction: Correction = "holm"
    psi_threshold: float = 0.1
    distance_threshold: float = 0.1
    n_bins: int = 10
    dataset_drift_threshold: float = 0.5
    max_model_rows: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise DriftInputError(f"drift settings: alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in ("holm", "bonferroni", "none"):
            raise DriftInputError(
                f"drift settings: correction must be holm, bonferroni or none, "
                f"got {self.correction!r}"
            )
        if not 0 <= self.dataset_drift_threshold <= 1:
            raise DriftInputError(
                "drift settings: dataset_drift_threshold must be in [0, 1], "
                f"got {self.dataset_drift_threshold}"
            )
        if self.n_bins < 2:
            raise DriftInputError(f"drift settings: n_bins must be >= 2, got {self.n_bins}")
        if self.psi_threshold < 0 or self.distance_threshold < 0:
            raise DriftInputError("drift settings: thresholds must be >= 0")
        if self.max_model_rows < 1:
            raise DriftInputError("drift settings: max_model_rows must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FeatureDrift:
    """Drift statistics of one column."""

    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    psi: float
    distance: float
    distance_name: Literal["wasserstein_norm", "jensen_shannon"]
    p_value_adjusted: float = math.nan
    drifted: bool = False
    reference_missing: float = 0.0
    current_missing: float = 0.0
    unseen_levels: int = 0
    unseen_share: float = 0.0
    unseen_examples: list[str] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, list[Any]] = field(default_factory=dict)

    def decide(self, settings: DriftSettings) -> None:
        """Apply the drift rule (uses ``p_value_adjusted``; set it first)."""
        p = self.p_value if math.isnan(self.p_value_adjusted) else self.p_value_adjusted
        material = (
            self.psi >= settings.psi_threshold or self.distance >= settings.distance_threshold
        )
        self.drifted = bool(p < settings.alpha and material)

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


@dataclass
class DriftReport:
    """Result of :func:`detect_drift`; ``to_dict()`` is the JSON report."""

    features: dict[str, FeatureDrift]
    reference: dict[str, Any]
    current: dict[str, Any]
    settings: DriftSettings
    drift_share: float
    dataset_drift: bool
    prediction: FeatureDrift | None = None
    target: FeatureDrift | None = None
    model: dict[str, Any] | None = None
    created_at: str = field(default_factory=lambda: _now_iso())

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "reference": self.reference,
            "current": self.current,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "n_features": len(self.features),
            "n_drifted": len(self.drifted_features),
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
            "model": self.model,
            "settings": self.settings.to_dict(),
        }

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_html(self) -> str:
        return to_html(self)


# --------------------------------------------------------------------------- numeric


def _numeric(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="float64", na_value=np.nan)


def _ecdf_gap(r: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """KS statistic and W1 from two sorted arrays, via one stable merge of both."""
    n, m = r.size, c.size
    merged_all = np.concatenate([r, c])
    order = np.argsort(merged_all, kind="stable")  # two sorted runs: a linear merge
    merged = merged_all[order]
    cr = np.cumsum(order < n)
    gap = cr / n - (np.arange(1, n + m + 1) - cr) / m
    # ECDFs are only defined after the last of tied values: evaluate KS there.
    last = np.empty(n + m, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last[:-1])
    last[-1] = True
    ks = float(np.abs(gap[last]).max())
    w1 = float(np.dot(np.abs(gap[:-1]), np.diff(merged)))
    return ks, w1


def _ks_pvalue(d: float, n: int, m: int, r: np.ndarray, c: np.ndarray) -> float:
    if n * m < 10_000:  # small samples: scipy's exact computation
        return float(stats.ks_2samp(r, c).pvalue)
    en = round(n * m / (n + m))
    return float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))


def _psi(p_ref: np.ndarray, p_cur: np.ndarray) -> float:
    a = np.maximum(p_ref, PSI_EPS)
    b = np.maximum(p_cur, PSI_EPS)
    return float(np.sum((b - a) * np.log(b / a)))


def _bin_counts(sorted_values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e1), [e1, e2), ..., [ek, inf) of a sorted array."""
    cum = np.searchsorted(sorted_values, inner_edges, side="left")
    return np.diff(np.concatenate([[0], cum, [sorted_values.size]]))


def _numeric_drift(name: str, ref: np.ndarray, cur: np.ndarray, n_bins: int) -> FeatureDrift:
    r_all, c_all = ref, cur
    r = np.sort(r_all[~np.isnan(r_all)])
    c = np.sort(c_all[~np.isnan(c_all)])
    n, m = r.size, c.size
    ks, w1 = _ecdf_gap(r, c)
    p = _ks_pvalue(ks, n, m, r, c)
    # reference quantiles (inverted CDF) as bin edges; ties merge bins
    edges = np.unique(r[(np.arange(1, n_bins) * n + n_bins - 1) // n_bins - 1])
    psi = _psi(_bin_counts(r, edges) / n, _bin_counts(c, edges) / m)
    std = float(r.std())
    scale = std if std > 0 else 1.0
    lo = min(r[int(0.005 * (n - 1))], c[int(0.005 * (m - 1))])
    hi = max(r[int(0.995 * (n - 1))], c[int(0.995 * (m - 1))])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    hist_edges = np.linspace(lo, hi, HIST_BINS + 1)
    return FeatureDrift(
        name=name,
        kind="numeric",
        test="ks",
        statistic=ks,
        p_value=p,
        psi=psi,
        distance=w1 / scale,
        distance_name="wasserstein_norm",
        reference_missing=1 - n / r_all.size,
        current_missing=1 - m / c_all.size,
        summary={
            "reference_mean": float(r.mean()),
            "current_mean": float(c.mean()),
            "reference_std": std,
            "current_std": float(c.std()),
            "reference_median": float(r[n // 2]),
            "current_median": float(c[m // 2]),
            "wasserstein": w1,
        },
        histogram={
            "edges": [float(e) for e in hist_edges],
            "reference": (_bin_counts(r, hist_edges[1:-1]) / n).tolist(),
            "current": (_bin_counts(c, hist_edges[1:-1]) / m).tolist(),
        },
    )


# --------------------------------------------------------------------------- categorical

_MISSING_LEVEL = "<missing>"


def _level_counts(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Counts per level (missing values as one extra last level when present)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.int64)
        uniques: list[Any] = list(series.cat.categories)
    else:
        codes, u = pd.factorize(series, use_na_sentinel=True)
        uniques = list(u)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    n_missing = int(codes.size - counts.sum())
    if n_missing:
        return np.append(counts, n_missing), [*uniques, _MISSING_LEVEL]
    return counts, uniques


def _key(level: Any) -> Any:
    """Normalise numpy scalars so equal levels compare and hash equal."""
    return level.item() if isinstance(level, np.generic) else level


def _categorical_drift(name: str, ref: pd.Series, cur: pd.Series) -> FeatureDrift:
    r_counts, r_levels = _level_counts(ref)
    c_counts, c_levels = _level_counts(cur)
    keep = r_counts > 0
    r_counts = r_counts[keep]
    r_levels = [lvl for lvl, k in zip(r_levels, keep, strict=True) if k]
    index = {_key(lvl): i for i, lvl in enumerate(r_levels)}
    levels = list(r_levels)
    cur_aligned = np.zeros(len(levels), dtype=np.int64)
    unseen: list[tuple[Any, int]] = []
    for lvl, cnt in zip(c_levels, c_counts, strict=True):
        if cnt == 0:
            continue
        i = index.get(_key(lvl))
        if i is None:
            unseen.append((lvl, int(cnt)))
        else:
            cur_aligned[i] += cnt
    unseen.sort(key=lambda x: -x[1])
    ref_all = np.concatenate([r_counts, np.zeros(len(unseen), dtype=np.int64)])
    cur_all = np.concatenate([cur_aligned, np.array([u[1] for u in unseen], dtype=np.int64)])
    levels += [u[0] for u in unseen]
    n, m = int(ref_all.sum()), int(cur_all.sum())
    stat, p = _chi2(ref_all, cur_all)
    p_ref, p_cur = ref_all / n, cur_all / m
    mid = 0.5 * (p_ref + p_cur)
    js = math.sqrt(max(0.5 * (_kl2(p_ref, mid) + _kl2(p_cur, mid)), 0.0))
    shown = np.argsort(-(p_ref + p_cur), kind="stable")[:MAX_LEVELS_SHOWN]
    missing_ref = _missing_share(r_levels, r_counts, len(ref))
    missing_cur = _missing_share(c_levels, c_counts, len(cur))
    return FeatureDrift(
        name=name,
        kind="categorical",
        test="chi2",
        statistic=stat,
        p_value=p,
        psi=_psi(p_ref, p_cur),
        distance=min(js, 1.0),
        distance_name="jensen_shannon",
        reference_missing=missing_ref,
        current_missing=missing_cur,
        unseen_levels=len(unseen),
        unseen_share=sum(u[1] for u in unseen) / m,
        unseen_examples=[str(u[0]) for u in unseen[:5]],
        summary={"reference_levels": float(len(r_levels)), "current_levels": float(len(c_levels))},
        histogram={
            "levels": [str(levels[i]) for i in shown],
            "reference": [float(p_ref[i]) for i in shown],
            "current": [float(p_cur[i]) for i in shown],
        },
    )


def _missing_share(levels: list[Any], counts: np.ndarray, total: int) -> float:
    if levels and levels[-1] == _MISSING_LEVEL and total:
        return float(counts[-1]) / total
    return 0.0


def _kl2(p: np.ndarray, q: np.ndarray) -> float:
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / q[nz])))


def _chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of a 2 x K table (levels with any count)."""
    table = np.vstack([ref, cur]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    k = table.shape[1]
    if k < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, k - 1))


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
    ref_name, cur_name = labels
    features = spec.features
    if not features:
        raise DriftInputError("feature spec has no features to compare")
    for frame, name in ((reference, ref_name), (current, cur_name)):
        if len(frame) == 0:
            raise DriftInputError(f"{name}: no rows (empty batch)")
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise DriftInputError(f"{name}: feature columns missing: {missing}")
    for col in features:
        k_ref, k_cur = _kind_of(reference[col]), _kind_of(current[col])
        if k_ref != k_cur:
            raise DriftInputError(
                f"column {col!r} has different types: {ref_name} {reference[col].dtype} "
                f"({k_ref}), {cur_name} {current[col].dtype} ({k_cur})"
            )
        if col in spec.numeric and k_ref not in ("numeric", "bool"):
            raise DriftInputError(
                f"column {col!r} is numeric in the feature spec but {reference[col].dtype} "
                f"in {ref_name}"
            )
        for frame, name in ((reference, ref_name), (current, cur_name)):
            if not frame[col].notna().any():
                raise DriftInputError(f"{name}: column {col!r} has only missing values")


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


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    settings: DriftSettings | None = None,
    *,
    model: Scorer | None = None,
    reference_path: PathArg = None,
    current_path: PathArg = None,
    model_info: dict[str, Any] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature (see the module docstring).

    With ``model``, the model scores a sample (at most ``settings.max_model_rows`` rows) of
    each frame and its score distribution is compared too (``prediction``); when the target
    column is in both frames its distribution is compared (``target``). Neither counts
    towards ``drift_share``.
    """
    settings = settings or DriftSettings()
    ref_paths, cur_paths = _paths(reference_path), _paths(current_path)
    labels = (
        f"reference ({', '.join(ref_paths)})" if ref_paths else "reference",
        f"current ({', '.join(cur_paths)})" if cur_paths else "current",
    )
    _check_inputs(reference, current, spec, labels)
    features: dict[str, FeatureDrift] = {}
    for col in spec.features:
        if col in spec.numeric and _kind_of(reference[col]) == "numeric":
            fd = _numeric_drift(
                col, _numeric(reference[col]), _numeric(current[col]), settings.n_bins
            )
        else:
            fd = _categorical_drift(col, reference[col], current[col])
        features[col] = fd
    adjusted = _adjust([f.p_value for f in features.values()], settings.correction)
    for f, p_adj in zip(features.values(), adjusted, strict=True):
        f.p_value_adjusted = p_adj
        f.decide(settings)
    share = sum(f.drifted for f in features.values()) / len(features)
    report = DriftReport(
        features=features,
        reference={"paths": ref_paths, "rows": len(reference)},
        current={"paths": cur_paths, "rows": len(current)},
        settings=settings,
        drift_share=share,
        dataset_drift=share >= settings.dataset_drift_threshold,
        model=model_info,
    )
    if model is not None:
        report.prediction = _prediction_drift(model, reference, current, settings)
    report.target = _target_drift(reference, current, spec.target, settings)
    return report


def _prediction_drift(
    model: Scorer, reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings
) -> FeatureDrift:
    ref = _sample(reference, settings.max_model_rows, settings.seed)
    cur = _sample(current, settings.max_model_rows, settings.seed + 1)
    r = np.asarray(model.predict_proba(ref), dtype=np.float64).ravel()
    c = np.asarray(model.predict_proba(cur), dtype=np.float64).ravel()
    fd = _numeric_drift("prediction", r, c, settings.n_bins)
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
    fd = _categorical_drift(target, ref, cur)
    fd.decide(settings)
    return fd


# --------------------------------------------------------------------------- reading reports


def read_drift_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a drift report: ours, or any JSON with a top-level boolean ``dataset_drift``.

    Returns the JSON object with ``report_path`` added; ``drift_share`` (optional) must be
    a number in [0, 1] and ``drifted_features`` (optional) a list.
    """
    p = Path(path)
    if not p.is_file():
        raise DriftInputError(f"drift report {p}: file not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DriftInputError(f"drift report {p}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DriftInputError(f"drift report {p}: expected a JSON object at the top level")
    if not isinstance(data.get("dataset_drift"), bool):
        raise DriftInputError(
            f"drift report {p}: top-level 'dataset_drift' must be true or false, "
            f"got {data.get('dataset_drift')!r}"
        )
    share = data.get("drift_share")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
    ):
        raise DriftInputError(f"drift report {p}: 'drift_share' must be in [0, 1], got {share!r}")
    drifted = data.get("drifted_features")
    if drifted is not None and not isinstance(drifted, list):
        raise DriftInputError(f"drift report {p}: 'drifted_features' must be a list")
    return {**data, "report_path": str(p)}


def summary_of(
    report: DriftReport | dict[str, Any],
    report_path: str | None = None,
    source: Literal["file", "computed"] = "computed",
) -> dict[str, Any]:
    """The small dict ``TriggerState.drift`` and the drift event use.

    Keys: ``dataset_drift``, ``drift_share``, ``drifted_features``, ``report_path``, ``source``.
    """
    d = report.to_dict() if isinstance(report, DriftReport) else report
    return {
        "dataset_drift": bool(d["dataset_drift"]),
        "drift_share": d.get("drift_share"),
        "drifted_features": list(d.get("drifted_features") or []),
        "report_path": report_path or d.get("report_path"),
        "source": source,
    }


def drift_from_report_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a drift report file into a ``TriggerState.drift`` summary."""
    return summary_of(read_drift_report(path), str(path), source="file")


# --------------------------------------------------------------------------- rendering


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x != 0 and abs(x) < 10**-digits:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def _rows(report: DriftReport) -> list[FeatureDrift]:
    extra = [f for f in (report.prediction, report.target) if f is not None]
    return [*report.features.values(), *extra]


def table_rows(report: DriftReport) -> list[dict[str, Any]]:
    """One flat row per column (features, then prediction and target) for table artifacts."""
    rows = []
    for f in _rows(report):
        role = "feature" if f.name in report.features else f.name
        if f is report.target:
            role = "target"
        rows.append(
            {
                "column": f.name,
                "role": role,
                "kind": f.kind,
                "test": f.test,
                "statistic": round(f.statistic, 4),
                "p_value": float(f"{f.p_value:.3g}"),
                "p_adjusted": None
                if math.isnan(f.p_value_adjusted)
                else float(f"{f.p_value_adjusted:.3g}"),
                "psi": round(f.psi, 4),
                "distance": round(f.distance, 4),
                "drifted": f.drifted,
            }
        )
    return rows


def to_markdown(report: DriftReport) -> str:
    s = report.settings
    verdict = "**Dataset drift detected**" if report.dataset_drift else "No dataset drift"
    lines = [
        "# Drift report",
        "",
        f"{verdict}: {len(report.drifted_features)} of {len(report.features)} features drifted "
        f"(drift share {report.drift_share:.2f}, threshold {s.dataset_drift_threshold:.2f}).",
        "",
        f"Reference: {', '.join(report.reference['paths']) or 'in memory'} "
        f"({report.reference['rows']:,} rows). "
        f"Current: {', '.join(report.current['paths']) or 'in memory'} "
        f"({report.current['rows']:,} rows).",
        "",
        f"Rule: {s.correction}-corrected p < {s.alpha} and (PSI ≥ {s.psi_threshold} or "
        f"distance ≥ {s.distance_threshold}).",
        "",
        "| Column | Kind | Test | Statistic | p (adj.) | PSI | Distance | Drifted |",
        "|---|---|---|---:|---:|---:|---:|:---:|",
    ]
    for f in _rows(report):
        name = f.name if f.name in report.features else f"*{f.name}*"
        dist = f"{_fmt(f.distance)} ({'W1/std' if f.kind == 'numeric' else 'JS'})"
        p_adj = f.p_value if math.isnan(f.p_value_adjusted) else f.p_value_adjusted
        mark = "**yes**" if f.drifted else "no"
        lines.append(
            f"| {name} | {f.kind} | {f.test} | {_fmt(f.statistic)} | {_fmt(p_adj)} | "
            f"{_fmt(f.psi)} | {dist} | {mark} |"
        )
    unseen = [f for f in report.features.values() if f.unseen_levels]
    if unseen:
        lines += ["", "Levels unseen in the reference:"]
        lines += [
            f"- {f.name}: {f.unseen_levels} ({f.unseen_share:.1%} of rows), e.g. "
            f"{', '.join(f.unseen_examples)}"
            for f in unseen
        ]
    if report.prediction is not None or report.target is not None:
        lines += ["", "*prediction* and *target* rows do not count towards the drift share."]
    return "\n".join(lines) + "\n"


def _svg_bars(f: FeatureDrift, width: int = 460, height: int = 160) -> str:
    h = f.histogram
    ref, cur = h.get("reference", []), h.get("current", [])
    if not ref:
        return ""
    labels = h.get("levels") or [_fmt(e, 2) for e in h.get("edges", [])[:-1]]
    k = len(ref)
    top = max(max(ref), max(cur), 1e-12)
    slot = (width - 40) / k
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg width="{width}" height="{height + 30}" '
        f'role="img" aria-label="{html.escape(f.name)} reference vs current">'
    ]
    for i in range(k):
        x = 30 + i * slot
        for j, (val, color) in enumerate(((ref[i], "#4c78a8"), (cur[i], "#f58518"))):
            bh = height * val / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - bh:.1f}" width="{bar:.1f}" '
                f'height="{bh:.1f}" fill="{color}"><title>{html.escape(str(labels[i]))}: '
                f"{'reference' if j == 0 else 'current'} {val:.3f}</title></rect>"
            )
    parts.append(f'<line x1="30" y1="{height}" x2="{width - 10}" y2="{height}" stroke="#333"/>')
    first, last = html.escape(str(labels[0])), html.escape(str(labels[-1]))
    parts.append(f'<text x="30" y="{height + 15}" font-size="11">{first}</text>')
    parts.append(
        f'<text x="{width - 10}" y="{height + 15}" font-size="11" text-anchor="end">{last}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: DriftReport) -> str:
    """A self-contained page: summary table and histograms of the drifted columns."""
    rows = []
    for r in table_rows(report):
        cls = ' class="drift"' if r["drifted"] else ""
        cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values())
        rows.append(f"<tr{cls}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in table_rows(report)[0])
    drifted = [f for f in _rows(report) if f.drifted]
    charts = "".join(
        f"<section><h3>{html.escape(f.name)} ({f.kind}, PSI {_fmt(f.psi)}, "
        f"distance {_fmt(f.distance)})</h3>{_svg_bars(f)}</section>"
        for f in drifted
    )
    verdict = "Dataset drift detected" if report.dataset_drift else "No dataset drift"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
tr.drift{{background:#fde2e1}}.legend span{{display:inline-block;width:12px;height:12px}}
</style></head><body>
<h1>Drift report</h1>
<p><strong>{verdict}</strong>: {len(report.drifted_features)} of {len(report.features)}
features drifted (share {report.drift_share:.2f}, threshold
{report.settings.dataset_drift_threshold:.2f}). Created {html.escape(report.created_at)}.</p>
<p>Reference: {html.escape(_where(report.reference))};
current: {html.escape(_where(report.current))}.</p>
<p>Rule: a feature drifts when its {html.escape(report.settings.correction)}-corrected p-value is
below {report.settings.alpha:g} and (PSI ≥ {report.settings.psi_threshold:g} or distance ≥
{report.settings.distance_threshold:g}); distance is Wasserstein / std for numeric columns,
Jensen–Shannon for categorical ones. Prediction and target rows do not count towards the
drift share.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Drifted columns</h2>
<p class="legend"><span style="background:#4c78a8"></span> reference
<span style="background:#f58518"></span> current (share of rows per bin)</p>
{charts or "<p>None.</p>"}
</body></html>
"""


def _where(side: dict[str, Any]) -> str:
    """``path, path (1,234 rows)`` for the reference or current side of a report."""
    paths = ", ".join(side.get("paths") or []) or "in memory"
    return f"{paths} ({side['rows']:,} rows)"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(report: DriftReport, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``drift.json``, ``drift.md`` and ``drift.html`` into ``folder`` (created)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "drift.json", "md": out / "drift.md", "html": out / "drift.html"}
    _write_text(paths["json"], json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    _write_text(paths["md"], to_markdown(report))
    _write_text(paths["html"], to_html(report))
    return paths


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- production data


def newest_batches(incoming_dir: str | os.PathLike[str], n: int = 1) -> list[Path]:
    """The newest ``n`` partitions ``date=YYYY-MM-DD`` under ``incoming_dir``, oldest first."""
    root = Path(incoming_dir)
    if n < 1 or not root.is_dir():
        return []
    parts = []
    for child in root.iterdir():
        match = _PARTITION_RE.match(child.name)
        if child.is_dir() and match and any(child.iterdir()):
            parts.append((match.group(1), child))
    parts.sort()
    return [p for _, p in parts[-n:]]


def read_frame(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Read data through ``model.data.read_table`` (Parquet, folders, partitions, CSV)."""
    from model.data import read_table

    return read_table(source)  # type: ignore[arg-type]


def _production_metadata(settings: Settings) -> tuple[Any, dict[str, Any]] | None:
    from model.registry import ModelRegistry

    registry = ModelRegistry(settings.models_dir)
    info = registry.production()
    if info is None:
        return None
    return info, registry.metadata(info.version)


def reference_for_production(settings: Settings) -> tuple[Path, FeatureSpec]:
    """The production model's training split and feature spec (its drift reference)."""
    from model.data import FeatureSpec, load_manifest

    found = _production_metadata(settings)
    if found is None:
        raise DriftInputError(f"no production model in {settings.models_dir}")
    info, meta = found
    manifest_ref = meta.get("data_manifest") or {}
    if not manifest_ref.get("path"):
        raise DriftInputError(
            f"production model {info.version}: model.json has no data_manifest.path "
            "(the training data it was built from)"
        )
    folder = settings.resolve(manifest_ref["path"])
    if not folder.exists():
        raise DriftInputError(
            f"production model {info.version}: training data {folder} does not exist"
        )
    manifest = load_manifest(folder)
    spec = manifest.spec
    if meta.get("feature_spec"):
        known = set(FeatureSpec.__dataclass_fields__)
        spec = FeatureSpec.from_dict({k: v for k, v in meta["feature_spec"].items() if k in known})
    return manifest.split_path("train"), spec


def drift_for_production(
    settings: Settings,
    current_paths: Sequence[str | os.PathLike[str]] | None = None,
    drift_settings: DriftSettings | None = None,
    *,
    n_batches: int = 1,
    with_model: bool = True,
) -> DriftReport | None:
    """Drift of the newest incoming batch(es) against the production model's training data.

    Returns None when there is no production model or no incoming data. With
    ``with_model``, the production model's score distribution is compared too.
    """
    if _production_metadata(settings) is None:
        return None
    paths = (
        [Path(p) for p in current_paths]
        if current_paths
        else newest_batches(settings.incoming_dir, n_batches)
    )
    if not paths:
        return None
    ref_path, spec = reference_for_production(settings)
    reference = read_frame(ref_path)
    current = read_frame(paths)
    scorer = None
    model_info = None
    if with_model:
        from model.artifact import load_model
        from model.registry import ModelRegistry

        info = ModelRegistry(settings.models_dir).production()
        if info is not None:
            scorer = load_model(info.path)
            model_info = {"version": info.version, "path": settings.relative(Path(info.path))}
    return detect_drift(
        reference,
        current,
        spec,
        drift_settings,
        model=scorer,
        reference_path=settings.relative(ref_path),
        current_path=[settings.relative(p) for p in paths],
        model_info=model_info,
    )


# --------------------------------------------------------------------------- monitoring


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


def report_folder(settings: Settings, now: datetime | None = None) -> Path:
    """A fresh ``reports_dir/drift/<UTC timestamp>/`` (suffixed when it already exists)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = settings.reports_dir / "drift" / stamp
    folder, k = base, 1
    while folder.exists():
        folder, k = base.with_name(f"{stamp}-{k}"), k + 1
    return folder


def monitor_drift(
    settings: Settings,
    reference: str | os.PathLike[str] | None = None,
    current: Sequence[str | os.PathLike[str]] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    n_batches: int = 1,
    drift_settings: DriftSettings | None = None,
    with_model: bool = True,
    target: str = "target",
    id_column: str | None = None,
) -> dict[str, Any]:
    """Compute drift, write the reports, and return a JSON-able summary.

    Without ``reference``: the production model's training data (and its scores, with
    ``with_model``). Without ``current``: the newest ``n_batches`` incoming batches.
    ``status`` is ``"skipped"`` (with a ``reason``) when there is nothing to compare.
    """
    if reference is None:
        report = drift_for_production(
            settings, current, drift_settings, n_batches=n_batches, with_model=with_model
        )
        if report is None:
            has_prod = _production_metadata(settings) is not None
            why = "no incoming batch" if has_prod else "no production model (no reference)"
            return {"status": "skipped", "reason": why, "dataset_drift": False}
    else:
        paths = (
            [Path(p) for p in current]
            if current
            else newest_batches(settings.incoming_dir, n_batches)
        )
        if not paths:
            return {"status": "skipped", "reason": "no incoming batch", "dataset_drift": False}
        ref = read_frame(reference)
        spec = spec_for_reference(ref, target=target, id_column=id_column)
        report = detect_drift(
            ref,
            read_frame(paths),
            spec,
            drift_settings,
            reference_path=str(reference),
            current_path=[str(p) for p in paths],
        )
    folder = Path(out_dir) if out_dir is not None else report_folder(settings)
    files = write_reports(report, folder)
    return {
        "status": "ok",
        **summary_of(report, str(files["json"].resolve())),
        "reports": {k: str(v.resolve()) for k, v in files.items()},
        "reference": report.reference,
        "current": report.current,
        "table": table_rows(report),
    }


def drift_for_trigger(
    settings: Settings,
    drift_report_path: str | os.PathLike[str] | None = None,
    dataset_drift_threshold: float = 0.5,
    *,
    current_paths: Sequence[str | os.PathLike[str]] | None = None,
    n_batches: int = 1,
    with_model: bool = True,
) -> tuple[dict[str, Any] | None, str]:
    """``TriggerState.drift`` and a note: from the report file when given, else computed.

    A given report that is missing or malformed raises :class:`DriftInputError`. Without one,
    drift of the newest batch(es) against production's training data is computed and its
    reports written under ``reports_dir/drift/``; ``(None, why)`` when there is nothing to
    compare (no production model, no incoming batch).
    """
    if drift_report_path is not None:
        return drift_from_report_file(drift_report_path), f"report {drift_report_path}"
    summary = monitor_drift(
        settings,
        current=current_paths,
        n_batches=n_batches,
        drift_settings=DriftSettings(dataset_drift_threshold=dataset_drift_threshold),
        with_model=with_model,
    )
    if summary["status"] == "skipped":
        return None, str(summary["reason"])
    return summary_of(summary, summary["report_path"], source="computed"), "computed"
