"""The model's preprocessing and network: statistics, NaN, unseen categories, column checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from model.data import FeatureSpec
from model.errors import DataValidationError
from model.training.network import (
    ONEHOT_MAX_LEVELS,
    Preprocessor,
    TabularModel,
    build_model,
    category_strings,
)

SPEC = FeatureSpec(numeric=["a", "b"], categorical=["color", "shop"], id_column="id")


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "a": rng.normal(10, 3, n),
            "b": rng.integers(0, 100, n),
            "color": rng.choice(["red", "green", "blue"], n),
            "shop": rng.choice([f"s{i}" for i in range(12)], n),
            "target": rng.integers(0, 2, n),
        }
    )


def model_for(df: pd.DataFrame) -> TabularModel:
    torch.manual_seed(0)
    return build_model(SPEC, Preprocessor.fit(df, SPEC), (8, 4), 0.1, "relu")


def test_statistics_come_from_the_training_frame() -> None:
    df = frame()
    df.loc[[0, 1], "a"] = np.nan
    pre = Preprocessor.fit(df, SPEC)
    a = df["a"].to_numpy()
    med = np.nanmedian(a)
    filled = np.where(np.isnan(a), med, a)
    assert pre.median[0] == pytest.approx(med)
    assert pre.mean[0] == pytest.approx(filled.mean())
    assert pre.std[0] == pytest.approx(filled.std())
    assert pre.levels["color"] == ["blue", "green", "red"]
    assert len(pre.levels["shop"]) == 12


def test_constant_column_gets_unit_std() -> None:
    df = frame().assign(a=5.0)
    assert Preprocessor.fit(df, SPEC).std[0] == 1.0


def test_low_cardinality_is_one_hot_and_high_is_embedded() -> None:
    model = model_for(frame())
    cats = {c["name"]: c for c in model.architecture["categorical"]}
    assert cats["color"]["encoding"] == "onehot" and ONEHOT_MAX_LEVELS >= 3
    assert cats["shop"]["encoding"] == "embedding"
    assert model.net.input_width == 2 + 3 + cats["shop"]["dim"]


def test_standardize_imputes_median() -> None:
    df = frame()
    model = model_for(df)
    x = torch.tensor([[np.nan, 50.0]])
    z = model.net.standardize(x)
    pre = model.preprocessor
    assert z[0, 0].item() == pytest.approx((pre.median[0] - pre.mean[0]) / pre.std[0], rel=1e-5)
    assert z[0, 1].item() == pytest.approx((50.0 - pre.mean[1]) / pre.std[1], rel=1e-5)


def test_nan_numeric_scores_like_the_median() -> None:
    df = frame()
    model = model_for(df)
    row = df.iloc[[3]].copy()
    with_nan = row.assign(a=np.nan)
    with_median = row.assign(a=model.preprocessor.median[0])
    assert model.predict_proba(with_nan)[0] == pytest.approx(model.predict_proba(with_median)[0])


def test_unseen_category_scores_like_unknown_and_does_not_fail() -> None:
    df = frame()
    model = model_for(df)
    row = df.iloc[[5]].copy()
    unseen = row.assign(color="purple", shop="never-seen")
    missing = row.assign(color=None, shop=None)
    p_unseen = model.predict_proba(unseen)
    assert np.isfinite(p_unseen).all()
    assert p_unseen[0] == pytest.approx(model.predict_proba(missing)[0])
    _, codes = model.preprocessor.transform(unseen)
    assert codes.tolist() == [[0, 0]]
    # a known level gets a nonzero code and (in general) a different score
    _, known = model.preprocessor.transform(row)
    assert (known > 0).all()


def test_integral_float_categories_match_integer_levels() -> None:
    assert category_strings(pd.Series([1.0, 2.0, None])).tolist()[:2] == ["1", "2"]
    assert category_strings(pd.Series([1, 2])).tolist() == ["1", "2"]
    assert category_strings(pd.Series([1.5])).tolist() == ["1.5"]


def test_predict_in_batches_matches_one_batch() -> None:
    df = frame(300)
    model = model_for(df)
    whole = model.predict_proba(df)
    pieces = model.predict_proba(df, batch_rows=7)
    np.testing.assert_allclose(whole, pieces, rtol=1e-6)
    assert whole.dtype == np.float64 and ((whole > 0) & (whole < 1)).all()


def test_missing_columns_are_named() -> None:
    model = model_for(frame())
    bad = frame().drop(columns=["b", "shop"]).assign(extra=1)
    with pytest.raises(DataValidationError) as err:
        model.predict_proba(bad)
    msg = str(err.value)
    assert "'b'" in msg and "'shop'" in msg and "'extra'" in msg


def test_extra_columns_are_ignored_unless_strict() -> None:
    df = frame()
    model = model_for(df)
    extra = df.assign(extra=1, date="2024-01-01")
    np.testing.assert_array_equal(model.predict_proba(extra), model.predict_proba(df))
    with pytest.raises(DataValidationError, match=r"unexpected.*'extra'"):
        model.predict_proba(extra, strict=True)
    # id and target are known columns, never unexpected
    model.predict_proba(df, strict=True)


def test_non_numeric_values_in_a_numeric_column() -> None:
    df = frame().astype({"a": object})
    df.loc[2, "a"] = "lots"
    model = model_for(frame())
    with pytest.raises(DataValidationError, match=r"'a'.*non-numeric"):
        model.predict_proba(df)


def test_infinite_values_are_refused_with_column_and_row() -> None:
    df = frame()
    model = model_for(df)
    bad = df.assign(b=np.where(np.arange(len(df)) == 7, -np.inf, df["b"]))
    with pytest.raises(DataValidationError, match=r"'b' has 1 infinite value\(s\).*row 7"):
        model.predict_proba(bad)


def test_missing_categories_in_raw_data_use_the_imputed_level() -> None:
    df = frame()
    df.loc[::4, "color"] = "missing"  # what prepare writes for missing values
    model = model_for(df)
    row = df.iloc[[1]]
    as_level = model.predict_proba(row.assign(color="missing"))
    for raw in (None, ""):
        np.testing.assert_array_equal(model.predict_proba(row.assign(color=raw)), as_level)
    _, codes = model.preprocessor.transform(row.assign(color=None))
    assert codes[0, 0] == 1 + model.preprocessor.levels["color"].index("missing")
