"""The dataset drift rule with ``min_drifted_features`` (Holm-corrected tests plus the effect
floor per feature), proven by simulation, and schema changes reported as drift.

Binomial margins: with a true rate p over 200 runs, the count is Binomial(200, p). The
"≥ 190/200" check passes unless the true detection rate is below ~0.92 (at 0.92 the chance of
≥ 190 is ~5 %; our measured rate is 200/200); the "≤ 10/200" checks fail only if the false
alarm rate is above ~5 % (at p = 0.05, P(count ≤ 10) ≈ 0.58; Holm bounds the family-wise rate
by α = 0.05 before the effect floor, which only lowers it, and the count rule counts features
at α/2; measured: see the README)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.data import FeatureSpec
from model.drift import DriftSettings, detect_drift

RUNS = 200
FEATURES = [f"x{i:02d}" for i in range(20)]
SPEC = FeatureSpec(numeric=FEATURES)


def _frame(rng: np.random.Generator, n: int, shift: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rng.normal(size=(n, len(FEATURES))) + shift, columns=FEATURES)


def _dataset_drift_count(n: int, shifted: int, sd: float, least: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    shift = np.zeros(len(FEATURES))
    shift[:shifted] = sd
    settings = DriftSettings(min_drifted_features=least, dataset_drift_threshold=0.5)
    hits = 0
    for _ in range(RUNS):
        report = detect_drift(
            _frame(rng, n, np.zeros(len(FEATURES))), _frame(rng, n, shift), SPEC, settings
        )
        hits += report.dataset_drift
    return hits


@pytest.mark.slow
def test_five_of_twenty_shifted_features_are_dataset_drift() -> None:
    hits = _dataset_drift_count(5_000, shifted=5, sd=0.2, least=3, seed=1)
    assert hits >= 190, hits
    # without min_drifted_features, 5 of 20 (25 %) never reaches the 50 % share
    rng = np.random.default_rng(2)
    shift = np.zeros(len(FEATURES))
    shift[:5] = 0.2
    report = detect_drift(_frame(rng, 5_000, 0 * shift), _frame(rng, 5_000, shift), SPEC)
    assert sorted(report.drifted_features) == FEATURES[:5] and not report.dataset_drift


@pytest.mark.slow
@pytest.mark.parametrize("n", [500, 100_000])
def test_unshifted_features_rarely_alarm_with_one_drifted_feature_enough(n: int) -> None:
    runs = RUNS
    rng = np.random.default_rng(10 + n)
    settings = DriftSettings(min_drifted_features=1)
    hits = 0
    for _ in range(runs):
        zero = np.zeros(len(FEATURES))
        hits += detect_drift(
            _frame(rng, n, zero), _frame(rng, n, zero), SPEC, settings
        ).dataset_drift
    assert hits <= 10 * runs / RUNS, (hits, runs)


def test_missing_and_all_missing_features_are_schema_changes_that_count_as_drift() -> None:
    rng = np.random.default_rng(5)
    ref = _frame(rng, 2_000, np.zeros(len(FEATURES)))
    cur = _frame(rng, 1_000, np.zeros(len(FEATURES))).drop(columns="x03").assign(x07=np.nan)
    report = detect_drift(ref, cur, SPEC, DriftSettings(min_drifted_features=2))
    assert report.schema_changes == {"x03": "missing", "x07": "all_missing"}
    assert {"x03", "x07"} <= set(report.drifted_features)
    assert report.dataset_drift  # two schema changes reach min_drifted_features=2
    doc = report.to_dict()
    assert doc["features"]["x03"]["schema_change"] == "missing"
    assert doc["features"]["x03"]["test"] == "schema"
    assert doc["schema_changes"] == {"x03": "missing", "x07": "all_missing"}
    # the other 18 features are tested, Holm over 18 p-values
    tested = [f for f in report.features.values() if f.schema_change is None]
    assert len(tested) == 18 and all(0 <= f.p_value_adjusted <= 1 for f in tested)
    md = report.to_markdown()
    assert "schema change: missing" in md and "schema change: all-missing" in md
    page = report.to_html()
    assert "True" not in page and "None" not in page and "all-missing" in page


def test_declared_categorical_codes_are_tested_as_categories() -> None:
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"region": rng.integers(1, 5, 3_000), "x": rng.normal(size=3_000)})
    cur = pd.DataFrame({"region": rng.integers(1, 5, 3_000), "x": rng.normal(size=3_000)})
    report = detect_drift(ref, cur, FeatureSpec(numeric=["x"], categorical=["region"]))
    assert report.features["region"].test == "chi2"
    assert report.features["region"].kind == "categorical"
