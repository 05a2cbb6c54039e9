"""Drift settings and results: the rule's parameters, one column's statistics, the report.

:class:`DriftSettings` holds the drift rule (see :mod:`model.drift`); :class:`FeatureDrift` the
statistics of one column and its decision; :class:`DriftReport` the dataset decision and its
JSON form (``to_dict``), with Markdown and HTML renderings from :mod:`model.drift.render`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from model import clock
from model.drift.render import to_html, to_markdown
from model.errors import DriftInputError

FORMAT_VERSION = 1

Correction = Literal["holm", "bonferroni", "none"]
SchemaChange = Literal["missing", "all_missing"]
"""A feature the current data lacks (``missing``) or holds only missing values of
(``all_missing``), in at least one of its batches: counts as a drifted feature."""


@dataclass(frozen=True)
class DriftSettings:
    """How drift is decided. See :mod:`model.drift` for the rule."""

    alpha: float = 0.05
    correction: Correction = "holm"
    psi_threshold: float = 0.1
    distance_threshold: float = 0.1
    n_bins: int = 10
    dataset_drift_threshold: float = 0.5
    min_drifted_features: int | None = None
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
        if self.min_drifted_features is not None and (
            isinstance(self.min_drifted_features, bool) or self.min_drifted_features < 1
        ):
            raise DriftInputError(
                "drift settings: min_drifted_features must be >= 1 or None (off), "
                f"got {self.min_drifted_features!r}"
            )
        if self.n_bins < 2:
            raise DriftInputError(f"drift settings: n_bins must be >= 2, got {self.n_bins}")
        if self.psi_threshold < 0 or self.distance_threshold < 0:
            raise DriftInputError("drift settings: thresholds must be >= 0")
        if self.max_model_rows < 1:
            raise DriftInputError("drift settings: max_model_rows must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def dataset_reasons(self, n_drifted: int, n_features: int) -> list[str]:
        """Why the data set drifted (empty: it did not): the share rule, the count rule."""
        share = n_drifted / n_features if n_features else 0.0
        reasons = []
        if share >= self.dataset_drift_threshold:
            reasons.append(
                f"drift share {share:.2f} >= dataset_drift_threshold "
                f"{self.dataset_drift_threshold:.2f}"
            )
        if self.min_drifted_features is not None and n_drifted >= self.min_drifted_features:
            reasons.append(
                f"{n_drifted} drifted feature{'' if n_drifted == 1 else 's'} >= "
                f"min_drifted_features {self.min_drifted_features}"
            )
        return reasons

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FeatureDrift:
    """Drift statistics of one column."""

    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2", "schema"]
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
    schema_change: SchemaChange | None = None
    schema_batches: list[str] = field(default_factory=list)

    def decide(self, settings: DriftSettings) -> None:
        """Apply the drift rule (uses ``p_value_adjusted``; set it first). A schema change
        is drift of the feature, whatever its statistics."""
        if self.schema_change is not None:
            self.drifted = True
            return
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
    performance_estimate: dict[str, Any] | None = None  # CBPE (model.drift.cbpe), JSON form
    created_at: str = field(default_factory=lambda: _now_iso())

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]

    @property
    def schema_changes(self) -> dict[str, SchemaChange]:
        """Feature -> ``missing`` | ``all_missing`` in the current data."""
        return {n: f.schema_change for n, f in self.features.items() if f.schema_change}

    @property
    def dataset_reasons(self) -> list[str]:
        return self.settings.dataset_reasons(len(self.drifted_features), len(self.features))

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
            "dataset_drift_reasons": self.dataset_reasons,
            "schema_changes": self.schema_changes,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
            "model": self.model,
            "performance_estimate": _clean(self.performance_estimate),
            "settings": self.settings.to_dict(),
        }

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_html(self) -> str:
        return to_html(self)


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
    return clock.now().isoformat(timespec="seconds")
