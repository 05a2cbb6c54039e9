"""Demo data: the lab's distributions, drift (features and concept), batches, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model.cli import main
from model.data import load_manifest, read_table
from model.data.demo import DEMO_COLUMNS, DEMO_FEATURES, make_customers, write_demo
from model.errors import DataValidationError
from model.settings import Settings


def test_columns_determinism_and_lab_distributions() -> None:
    df = make_customers(10_000, seed=42)
    assert list(df.columns) == DEMO_COLUMNS and len(DEMO_FEATURES) == 10
    pd.testing.assert_frame_equal(df, make_customers(10_000, seed=42))
    assert not df.equals(make_customers(10_000, seed=43))
    assert df["id"].is_unique
    assert df["age"].between(18, 80).all() and abs(df["age"].mean() - 35) < 0.5
    assert df["income"].between(20_000, 200_000).all()
    assert abs(df["income"].mean() - 65_000) < 800
    assert df["credit_score"].between(300, 850).all()
    assert abs(df["num_purchases"].mean() - 5) < 0.1 and abs(df["num_returns"].mean() - 1) < 0.05
    assert df["account_age_days"].between(1, 3650).all()
    assert abs(np.log(df["avg_transaction"]).mean() - 4.5) < 0.03
    assert abs(df["is_premium"].mean() - 0.3) < 0.02
    assert set(df["region"]) == {1, 2, 3, 4} and set(df["category_preference"]) == set(range(1, 10))
    # the lab's rule: 0.3*[income>70000] + 0.4*premium + 0.3*U > 0.5
    rich, premium = df["income"] > 70_000, df["is_premium"] == 1
    assert df.loc[rich & premium, "target"].eq(1).all()
    assert df.loc[~rich & ~premium, "target"].eq(0).all()
    assert abs(df.loc[~rich & premium, "target"].mean() - 2 / 3) < 0.04
    assert abs(df.loc[rich & ~premium, "target"].mean() - 1 / 3) < 0.04


def test_rows_seed_and_drift_arguments_are_checked() -> None:
    for kwargs in ({"rows": 0}, {"drift": 1.5}, {"drift": -0.1}, {"seed": -1}):
        with pytest.raises(DataValidationError):
            make_customers(**kwargs)  # type: ignore[arg-type]


def test_drift_shifts_at_least_six_features() -> None:
    base = make_customers(2_000, seed=42)
    drifted = make_customers(2_000, seed=42, drift=0.5, batch=1)
    rejected = [
        f for f in DEMO_FEATURES if ks_2samp(base[f], drifted[f], method="asymp").pvalue < 0.05
    ]
    assert len(rejected) >= 6, rejected
    same = make_customers(2_000, seed=42, drift=0.0, batch=1)
    rejected_same = [
        f for f in DEMO_FEATURES if ks_2samp(base[f], same[f], method="asymp").pvalue < 0.01
    ]
    assert len(rejected_same) <= 1, rejected_same


def _auc(model: object, df: pd.DataFrame) -> float:
    scores = model.predict_proba(df[DEMO_FEATURES])[:, 1]  # type: ignore[attr-defined]
    return float(roc_auc_score(df["target"], scores))


def test_concept_drift_costs_auc_and_retraining_recovers_it() -> None:
    def fit(df: pd.DataFrame) -> object:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return pipe.fit(df[DEMO_FEATURES], df["target"])

    base = make_customers(10_000, seed=42)
    drifted = make_customers(10_000, seed=42, drift=0.5, batch=1)
    old = fit(base.iloc[:8000])
    new = fit(drifted.iloc[:8000])
    a_old_base = _auc(old, base.iloc[8000:])
    a_old_drift = _auc(old, drifted.iloc[8000:])
    a_new_drift = _auc(new, drifted.iloc[8000:])
    assert a_old_base - a_old_drift >= 0.05
    assert a_new_drift - a_old_drift >= 0.05
    assert a_new_drift >= a_old_base - 0.02  # recovers (most of) the loss


def test_write_demo_batches(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    paths = write_demo(
        settings,
        rows=3_000,
        seed=7,
        drift=0.6,
        batches=3,
        batch_rows=2_000,
        drift_from_batch=3,
        start_date="2025-03-30",
    )
    assert paths["base"] == settings.raw_data_path
    expected = ["2025-03-30", "2025-03-31", "2025-04-01"]
    for k, day in enumerate(expected, start=1):
        assert paths[f"batch-{k}"] == settings.incoming_dir / f"date={day}" / "part-0.parquet"
    base = pd.read_parquet(paths["base"])
    pd.testing.assert_frame_equal(base, make_customers(3_000, seed=7))
    incoming = read_table(settings.incoming_dir)
    assert sorted(incoming["date"].unique()) == expected and len(incoming) == 6_000
    ids = [set(base["id"])] + [set(pd.read_parquet(paths[f"batch-{k}"])["id"]) for k in (1, 2, 3)]
    assert sum(len(s) for s in ids) == len(set().union(*ids))  # disjoint id ranges
    b1 = pd.read_parquet(paths["batch-1"])
    b3 = pd.read_parquet(paths["batch-3"])
    drifted1 = sum(ks_2samp(base[f], b1[f], method="asymp").pvalue < 0.01 for f in DEMO_FEATURES)
    drifted3 = sum(ks_2samp(base[f], b3[f], method="asymp").pvalue < 0.01 for f in DEMO_FEATURES)
    assert drifted1 <= 1 and drifted3 >= 6
    assert not any(tmp_path.rglob("*.tmp"))


def test_write_demo_without_batches_drifts_the_base(tmp_path: Path) -> None:
    paths = write_demo(tmp_path, rows=500, seed=1, drift=0.3)
    assert list(paths) == ["base"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(paths["base"]), make_customers(500, seed=1, drift=0.3)
    )


def test_cli_demo_data_then_prepare(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare"]) == 2  # no base data yet
    assert "retrain demo-data" in capsys.readouterr().err
    rc = main(["demo-data", "--rows", "2000", "--batches", "2", "--batch-rows", "500"])
    assert rc == 0
    assert settings.raw_data_path.exists()
    assert len(list(settings.incoming_dir.glob("date=*/part-0.parquet"))) == 2
    capsys.readouterr()
    assert main(["prepare", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    manifest = load_manifest(settings.root / "data" / "demo" / "prepared" / doc["sha256"][:16])
    assert manifest.rows == 3_000 and "date" not in manifest.spec.features
    assert manifest.batches == ["date=2025-01-01", "date=2025-01-02"]  # each batch a source
    assert manifest.spec.numeric == DEMO_FEATURES and manifest.spec.id_column == "id"
    assert main(["demo-data", "--drift", "2"]) == 2


def test_separate_calls_write_disjoint_batches(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = write_demo(settings, rows=100, batches=1, batch_rows=50, start_date="2025-01-01")
    kept = pd.read_parquet(first["batch-1"])
    second = write_demo(
        settings, rows=100, drift=0.5, batches=1, batch_rows=50, start_date="2025-01-02"
    )
    base_ids = set(pd.read_parquet(first["base"])["id"])
    ids_1, ids_2 = set(kept["id"]), set(pd.read_parquet(second["batch-1"])["id"])
    assert ids_1.isdisjoint(ids_2) and base_ids.isdisjoint(ids_1 | ids_2)
    again = write_demo(settings, rows=100, batches=1, batch_rows=50, start_date="2025-01-01")
    pd.testing.assert_frame_equal(pd.read_parquet(again["batch-1"]), kept)  # same date, same data
    assert len(list(settings.incoming_dir.iterdir())) == 2


def test_batches_continue_after_the_newest(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_demo(settings, rows=100, batches=2, batch_rows=20)
    write_demo(settings, rows=100, drift=0.5, batches=1, batch_rows=20)
    names = sorted(p.name for p in settings.incoming_dir.iterdir())
    assert names == ["date=2025-01-01", "date=2025-01-02", "date=2025-01-03"]
    with pytest.raises(DataValidationError, match="not YYYY-MM-DD"):
        write_demo(settings, rows=100, batches=1, start_date="01/02/2025")


def test_bad_batch_arguments_write_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(DataValidationError, match="outside the supported range"):
        write_demo(settings, rows=100, batches=1, batch_rows=10, start_date="1999-01-01")
    with pytest.raises(DataValidationError, match="batch_rows must be"):
        write_demo(settings, rows=100, batches=1, batch_rows=0)
    assert not settings.raw_data_path.exists() and not settings.incoming_dir.exists()
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataValidationError, match="is a folder"):
        write_demo(settings, rows=100, out=tmp_path / "folder")
