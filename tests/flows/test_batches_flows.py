"""Batches as users deliver them, through both flows: CSV and Parquet batches mixed under
``incoming/``, and a batch missing a feature (the schema-change rule, both ways)."""

from __future__ import annotations

from typing import Any

import pytest

from flows.drift_monitor import drift_monitor
from flows.retraining import retraining
from model.data import load_manifest
from model.data.demo import make_customers, write_demo
from model.registry import ModelRegistry
from model.settings import Settings

FAST: dict[str, Any] = {
    "num_epochs": 3,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "min_hours_between_trainings": 0.0,
}


def _batch(settings: Settings, day: str, rows: int, seed: int, fmt: str, **drop: Any) -> None:
    folder = settings.incoming_dir / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    df = make_customers(rows, seed=seed, batch=seed)
    if drop.get("column"):
        df = df.drop(columns=drop["column"])
    if fmt == "csv":
        df.to_csv(folder / "part-0.csv")  # with pandas' unnamed index column
    else:
        df.to_parquet(folder / "part-0.parquet", index=False)


def test_mixed_csv_and_parquet_batches_in_both_flows(
    prefect_harness: None, settings: Settings
) -> None:
    write_demo(settings, rows=3_000, seed=4)
    assert retraining(**FAST).status == "promoted"
    _batch(settings, "2030-01-01", 600, 11, "csv")
    _batch(settings, "2030-01-02", 600, 12, "parquet")
    summary = drift_monitor(emit=False)
    assert summary["status"] == "ok"
    assert len(summary["current"]["paths"]) == 2  # both new batches, whatever their format
    result = retraining(force_retrain=True, **FAST)
    assert result.status in ("promoted", "rejected", "inconclusive")
    registry = ModelRegistry(settings.models_dir)
    meta = registry.metadata(result.candidate_version)  # type: ignore[arg-type]
    manifest = load_manifest(settings.resolve(meta["data_manifest"]["path"]))
    assert any(s.endswith("part-0.csv") for s in manifest.sources)
    assert any("date=2030-01-02" in s for s in manifest.sources)
    assert "" not in manifest.spec.features and "Unnamed: 0" not in manifest.spec.features


@pytest.mark.parametrize("limit, outcome", [(0.2, "trained"), (0.05, "refused")])
def test_a_batch_missing_a_feature_follows_the_rule(
    prefect_harness: None, settings: Settings, limit: float, outcome: str
) -> None:
    write_demo(settings, rows=3_000, seed=5)
    assert retraining(**FAST).status == "promoted"
    _batch(settings, "2030-02-01", 400, 13, "parquet", column="income")  # 400 of 3,400 rows
    drift = drift_monitor(emit=False)
    assert drift["schema_changes"] == {"income": "missing"}
    params = {**FAST, "force_retrain": True, "max_imputed_row_share": limit}
    if outcome == "trained":
        result = retraining(**params)
        meta = ModelRegistry(settings.models_dir).metadata(result.candidate_version)  # type: ignore[arg-type]
        manifest = load_manifest(settings.resolve(meta["data_manifest"]["path"]))
        (change,) = manifest.schema_changes
        assert change["column"] == "income" and change["rows"] == 400
        assert change["value_from"] == "production"
    else:
        state = retraining(**params, return_state=True)
        assert state.is_failed()
        assert "column 'income' is missing" in str(state.message)
        assert ModelRegistry(settings.models_dir).production().version == "v0001"  # type: ignore[union-attr]
