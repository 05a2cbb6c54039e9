"""Schema changes in the drift report: a feature missing from the current data, or present
but all missing, is drift of that feature (not an error); extra columns are ignored with a
warning; integer-coded categoricals declared in the spec are tested as categorical."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from model.data import FeatureSpec
from model.drift import DriftSettings, detect_drift, summary_of, table_rows, write_reports
from model.errors import DriftInputError

SPEC = FeatureSpec(numeric=["age", "income"], categorical=["region", "colour"])


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(35, 10, rows),
            "income": rng.normal(65_000, 20_000, rows),
            "region": rng.integers(1, 5, rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "target": rng.integers(0, 2, rows),
        }
    )


class StrictScorer:
    """Refuses a frame that lacks a feature, as the production model does."""

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        missing = [c for c in SPEC.features if c not in df.columns]
        assert not missing, f"scored without {missing}"
        return np.asarray(1 / (1 + np.exp(-(df["age"].fillna(35) - 35) / 10)))


def test_missing_and_all_missing_features_are_schema_changes(tmp_path: Path) -> None:
    ref = frame(2000, 1)
    cur = frame(1000, 2).drop(columns="income").assign(colour=None)
    report = detect_drift(ref, cur, SPEC, model=StrictScorer())
    assert report.schema_changes == {"income": "missing", "colour": "all_missing"}
    assert set(report.drifted_features) == {"income", "colour"}  # age, region unshifted
    assert report.drift_share == pytest.approx(0.5)
    assert report.dataset_drift  # 2 of 4 >= 0.5
    assert report.prediction is not None  # scored with the missing feature imputed
    data = report.to_dict()
    assert data["features"]["income"]["schema_change"] == "missing"
    assert data["features"]["colour"]["schema_change"] == "all_missing"
    assert data["features"]["age"]["schema_change"] is None
    assert data["features"]["income"]["p_value"] is None  # not tested: no NaN in the JSON
    json.dumps(data, allow_nan=False)
    files = write_reports(report, tmp_path)
    md = files["md"].read_text()
    assert "schema: missing" in md and "schema: all missing" in md
    assert "- income: missing from current" in md
    assert "colour: only missing values in current" in files["html"].read_text()
    rows = {r["column"]: r for r in table_rows(report)}
    assert rows["income"]["schema_change"] == "missing" and rows["income"]["psi"] is None
    assert summary_of(report)["schema_changes"] == {"income": "missing", "colour": "all_missing"}


def test_schema_change_names_the_batch_and_leaves_the_holm_family() -> None:
    ref = frame(2000, 1)
    first, second = frame(500, 2), frame(500, 3).drop(columns="income")
    current = pd.concat([first, second], ignore_index=True)
    parts = {"date=2026-01-01": first, "date=2026-01-02": second}
    report = detect_drift(ref, current, SPEC, current_parts=parts)
    income = report.features["income"]
    assert income.schema_change == "missing" and income.drifted
    assert income.schema_batches == ["date=2026-01-02"]
    tested = [f for f in report.features.values() if f.schema_change is None]
    assert len(tested) == 3
    # Holm over the 3 tested features (independent formula): smallest p times 3
    smallest = min(tested, key=lambda f: f.p_value)
    assert smallest.p_value_adjusted == pytest.approx(min(1.0, 3 * smallest.p_value))


def test_extra_column_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    ref, cur = frame(1000, 1), frame(1000, 2).assign(coupon=1.0, date="2026-01-01")
    with caplog.at_level(logging.WARNING, logger="model.drift.detect"):
        report = detect_drift(ref, cur, SPEC, current_path="date=2026-01-01")
    assert report.current["extra_columns"] == ["coupon"]  # the partition column is not extra
    assert "coupon" not in report.features and not report.schema_changes
    assert any("coupon" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)
    assert "ignored (not in the reference): coupon" in report.to_markdown()


def test_type_change_is_still_an_error_naming_an_example() -> None:
    ref, cur = frame(200, 1), frame(200, 2)
    cur["age"] = cur["age"].map(lambda v: f"{v:.0f} years")
    with pytest.raises(DriftInputError, match=r"'age' has different types.*years"):
        detect_drift(ref, cur, SPEC)


def test_integer_coded_categorical_follows_the_spec() -> None:
    ref, cur = frame(3000, 1), frame(3000, 2)
    rng = np.random.default_rng(5)
    cur["region"] = rng.choice([1, 2, 3, 4], 3000, p=[0.4, 0.3, 0.2, 0.1])
    report = detect_drift(ref, cur, SPEC)
    region = report.features["region"]
    assert region.kind == "categorical" and region.test == "chi2"
    table = pd.crosstab(
        np.r_[np.zeros(3000), np.ones(3000)], np.r_[ref["region"], cur["region"]]
    ).to_numpy()
    expected = stats.chi2_contingency(table, correction=False)
    assert region.statistic == pytest.approx(expected.statistic)
    assert region.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert region.drifted
    # the same codes declared numeric are a KS test on the codes
    as_numeric = FeatureSpec(numeric=["age", "income", "region"], categorical=["colour"])
    assert detect_drift(ref, cur, as_numeric).features["region"].test == "ks"


def test_float_codes_in_a_batch_with_missing_values_match_integer_levels() -> None:
    ref = frame(3000, 1)
    cur = frame(3000, 2)
    cur["region"] = cur["region"].astype("float64")
    cur.loc[:9, "region"] = np.nan  # NaN makes the batch's codes float: 1.0 is level 1
    report = detect_drift(ref, cur, SPEC)
    region = report.features["region"]
    assert region.unseen_levels == 1 and region.unseen_examples == ["<missing>"]
    assert not region.drifted


def test_min_drifted_features_is_checked() -> None:
    with pytest.raises(DriftInputError, match="min_drifted_features must be >= 1"):
        DriftSettings(min_drifted_features=0)
    settings = DriftSettings(dataset_drift_threshold=0.5, min_drifted_features=2)
    assert settings.dataset_reasons(1, 20) == []
    assert settings.dataset_reasons(2, 20) == ["2 drifted features >= min_drifted_features 2"]
    assert len(settings.dataset_reasons(10, 20)) == 2
    assert DriftSettings().dataset_reasons(9, 20) == []  # off by default: only the share
