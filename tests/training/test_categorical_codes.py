"""Integer codes declared categorical: prepared as text levels, trained as categories, and a
saved model scores raw integer codes (as serving receives them) exactly as the prepared text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model.artifact import load_model
from model.data import load_split, prepare
from model.training.prepared import train_prepared


def test_declared_codes_train_as_categories_and_serve_from_integers(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    region = rng.integers(0, 6, n)  # the label depends on the code, not on its order
    effect = np.array([1.5, -1.0, 0.5, -1.5, 1.0, -0.5])[region]
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(size=n),
            "region": region,
            "target": (effect + 0.3 * rng.normal(size=n) > 0).astype(int),
        }
    )
    manifest = prepare(df, tmp_path / "prep", id_column="id", categorical_columns=["region"])
    assert manifest.spec.categorical == ["region"] and manifest.spec.numeric == ["x"]
    params = {"num_epochs": 3, "batch_size": 256, "patience": None, "device": "cpu"}
    folder, _ = train_prepared(manifest.path, tmp_path / "model", params, data_path="prep")
    model = load_model(folder)
    levels = model.model.preprocessor.levels["region"]
    assert levels == [str(k) for k in range(6)]
    test = load_split(manifest, "test")  # region as text "0".."5"
    raw = df.set_index("id").loc[test["id"]].reset_index()  # the same rows, region as int64
    assert raw["region"].dtype == np.int64
    assert pd.api.types.is_string_dtype(test["region"])
    np.testing.assert_array_equal(model.predict_proba(raw), model.predict_proba(test))
    floats = raw.astype({"region": float})  # a CSV with a gap reads codes as floats
    np.testing.assert_array_equal(model.predict_proba(floats), model.predict_proba(test))
