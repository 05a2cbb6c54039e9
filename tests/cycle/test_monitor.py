"""Drift of the production model's data: the registry gives the reference and the scorer."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.cycle.monitor import drift_for_production
from model.errors import DriftInputError


def test_drift_for_production_without_production_is_none(settings) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("model.registry")
    assert drift_for_production(settings) is None


@pytest.fixture
def production(settings):  # type: ignore[no-untyped-def]
    """A tiny production model trained on demo data (1 epoch), registered and promoted."""
    demo = pytest.importorskip("model.data.demo")
    data = pytest.importorskip("model.data")
    training = pytest.importorskip("model.training")
    registry_mod = pytest.importorskip("model.registry")
    base = settings.data_dir / "raw" / "customers.parquet"
    demo.write_parquet_atomic(demo.make_customers(3000, 42), base)
    manifest = data.prepare([base], settings.prepared_dir, id_column="id")
    folder, _ = training.train_prepared(
        manifest.path,
        settings.runs_dir / "m1",
        {"num_epochs": 1, "batch_size": 256, "patience": None},
        data_path=settings.relative(manifest.path),
    )
    registry = registry_mod.ModelRegistry(settings.models_dir)
    version = registry.register(folder, reason="test")
    registry.promote(version, reason="test")
    return version


def test_drift_for_production_uses_training_data_and_scores(settings, production) -> None:  # type: ignore[no-untyped-def]
    from model.cycle.monitor import monitor_drift, reference_for_production
    from model.data.demo import make_customers, write_parquet_atomic

    ref_path, spec = reference_for_production(settings)
    assert ref_path.name.startswith("train") and ref_path.is_file()
    assert "id" not in spec.features and "age" in spec.features
    assert drift_for_production(settings) is None  # no incoming batch yet
    batch = settings.incoming_dir / "date=2026-02-01" / "part-0.parquet"
    write_parquet_atomic(make_customers(1500, 42, drift=0.5, batch=1), batch)
    report = drift_for_production(settings)
    assert report is not None and report.dataset_drift
    assert report.prediction is not None  # the production model scored both sides
    assert report.model == {"version": production, "path": f"models/demo/versions/{production}"}
    assert report.reference["paths"] == [settings.relative(ref_path)]
    assert report.current["paths"] == ["data/demo/incoming/date=2026-02-01"]
    summary = monitor_drift(settings)
    assert summary["status"] == "ok" and summary["dataset_drift"]
    assert Path(summary["report_path"]).parent.parent == settings.reports_dir / "drift"


def test_drift_for_trigger(settings, production, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from model.cycle.monitor import drift_for_trigger
    from model.data.demo import make_customers, write_parquet_atomic

    assert drift_for_trigger(settings) == (
        None,
        "no new data since production was trained (no incoming batch)",
    )
    with pytest.raises(DriftInputError, match="not found"):
        drift_for_trigger(settings, tmp_path / "missing.json")
    batch = settings.incoming_dir / "date=2026-02-01" / "part-0.parquet"
    write_parquet_atomic(make_customers(1500, 42, drift=0.5, batch=1), batch)
    drift, note = drift_for_trigger(settings, with_model=False)
    assert note == "computed" and drift is not None
    assert drift["source"] == "computed" and drift["dataset_drift"] is True
    assert Path(drift["report_path"]).is_file()
    again, note = drift_for_trigger(settings, drift["report_path"])
    assert again is not None and note.startswith("report")
    assert again["source"] == "file" and again["drift_share"] == drift["drift_share"]
    assert set(again["drifted_features"]) == set(drift["drifted_features"])


def test_schema_changes_in_new_batches_are_reported_not_fatal(settings, production) -> None:  # type: ignore[no-untyped-def]
    """One batch lacks a feature, another holds one only as missing values: the monitor
    (production's model scoring too) names both in the report and the trigger summary."""
    import json

    from model.cycle.monitor import drift_for_trigger, monitor_drift
    from model.cycle.triggers import TriggerParams, TriggerState, evaluate_triggers
    from model.data.demo import make_customers, write_parquet_atomic

    lacking = make_customers(800, 42, batch=1).drop(columns="income")
    empty = make_customers(800, 42, batch=2).assign(region=None, coupon=1.0)
    write_parquet_atomic(lacking, settings.incoming_dir / "date=2026-02-01" / "part-0.parquet")
    write_parquet_atomic(empty, settings.incoming_dir / "date=2026-02-02" / "part-0.parquet")
    summary = monitor_drift(settings)
    assert summary["status"] == "ok"
    assert summary["current"]["selection"]["batches"] == ["date=2026-02-01", "date=2026-02-02"]
    assert summary["current"]["rows"] == 1600
    assert summary["current"]["extra_columns"] == ["coupon"]
    assert summary["schema_changes"] == {"income": "missing", "region": "all_missing"}
    assert {"income", "region"} <= set(summary["drifted_features"])
    report = json.loads(Path(summary["report_path"]).read_text())
    assert report["features"]["income"]["schema_batches"] == ["date=2026-02-01"]
    assert report["features"]["region"]["schema_batches"] == ["date=2026-02-02"]
    assert report["prediction"] is not None  # production scored the batches anyway
    md = Path(summary["reports"]["md"]).read_text()
    assert "- income: missing from date=2026-02-01" in md
    assert "- region: only missing values in date=2026-02-02" in md

    drift, note = drift_for_trigger(settings, min_drifted_features=2, with_model=False)
    assert note == "computed" and drift is not None and drift["dataset_drift"] is True
    decision = evaluate_triggers(TriggerParams(), TriggerState(drift=drift))
    detail = decision.check("drift").detail
    assert "schema changes: income (missing), region (all missing)" in detail


def test_monitor_streams_data_too_large_for_its_memory_budget(  # type: ignore[no-untyped-def]
    settings, production, monkeypatch
) -> None:
    """Past the memory budget the monitor streams the Parquet files (its report equal to the
    one read whole, the label-free estimate too: all rows fit in the model's sample here)
    and says so in the report; CSV batches are read whole whatever their size."""
    import numpy as np
    from drift_compare import assert_same_report

    from model.cycle import monitor, streaming
    from model.data.demo import make_customers, write_parquet_atomic
    from model.drift import to_markdown

    first = make_customers(1200, 42, drift=0.5, batch=1).drop(columns="target")
    second = make_customers(900, 42, batch=2).drop(columns="target")
    second["num_purchases"] = second["num_purchases"].astype(float).mask(np.arange(900) % 5 == 0)
    write_parquet_atomic(first, settings.incoming_dir / "date=2026-02-01" / "part-0.parquet")
    write_parquet_atomic(second, settings.incoming_dir / "date=2026-02-02" / "part-0.parquet")
    whole = monitor.drift_for_production(settings)
    assert whole is not None and "streamed" not in whole.current
    monkeypatch.setattr(streaming, "IN_MEMORY_FACTOR", 10**6)  # this data now "too large"
    small = settings.model_copy(update={"memory_budget": 16 << 20})
    streamed = monitor.drift_for_production(small)
    assert streamed is not None
    assert streamed.current.pop("streamed")["memory_budget"] == 16 << 20
    est = streamed.performance_estimate
    assert est is not None and est.pop("sampled_from") == 2100
    assert_same_report(whole.to_dict(), streamed.to_dict())
    streamed.current["streamed"] = {"memory_budget": 16 << 20, "in_memory_estimate": 3 << 30}
    assert "Read in batches within a memory budget of 16 MiB" in to_markdown(streamed)


@pytest.mark.slow
def test_monitor_on_dask_makes_the_single_machine_streamed_report(  # type: ignore[no-untyped-def]
    settings, production, monkeypatch
) -> None:
    """RETRAIN_DATA_ENGINE=dask: the monitor streams its Parquet data partition-parallel on a
    LocalCluster started for the call, whatever the data's size, and its report (the
    label-free estimate too) is the one streamed here, number for number."""
    import json

    import numpy as np

    from model.cycle import monitor, streaming
    from model.data.demo import make_customers, write_parquet_atomic

    first = make_customers(3000, 42, drift=0.5, batch=1).drop(columns="target")
    second = make_customers(2000, 42, batch=2).drop(columns="target")
    second["num_purchases"] = second["num_purchases"].astype(float).mask(np.arange(2000) % 5 == 0)
    write_parquet_atomic(first, settings.incoming_dir / "date=2026-02-01" / "part-0.parquet")
    write_parquet_atomic(second, settings.incoming_dir / "date=2026-02-02" / "part-0.parquet")
    budget = {"memory_budget": 1 << 18}  # fragments of 2,048 rows: each side has several
    on_dask = settings.model_copy(update={**budget, "data_engine": "dask"})
    dask = monitor.drift_for_production(on_dask)
    assert dask is not None and dask.current.pop("engine") == "dask"
    monkeypatch.setattr(streaming, "IN_MEMORY_FACTOR", 10**6)  # streamed here too
    local = monitor.drift_for_production(settings.model_copy(update=budget))
    assert local is not None and "engine" not in local.current
    for report in (local, dask):  # the estimate in the report is the patched factor's
        assert report.current.pop("streamed")["memory_budget"] == 1 << 18
    a, b = local.to_dict(), dask.to_dict()
    a.pop("created_at"), b.pop("created_at")
    assert a["performance_estimate"]["available"] is True
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert not any((settings.home / ".scratch").iterdir())  # the workers' sorted runs: gone


@pytest.mark.parametrize(("engine", "on_dask"), [("dask", True), ("local", False), (None, False)])
def test_the_models_data_engine_reaches_the_triggers_drift(  # type: ignore[no-untyped-def]
    settings, production, monkeypatch, engine, on_dask
) -> None:
    """A model's ``data_engine`` (retraining.toml or the flow parameter) is the engine of the
    drift the trigger computes; None leaves the environment's (here: local)."""
    from flows.retraining import flow_defaults
    from model.cycle import RetrainingConfig, gather_trigger_state, monitor, select_sources

    seen = []

    def drift_for_trigger(used, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(used.on_dask)
        return None, "not computed in this test"

    monkeypatch.setattr(monitor, "drift_for_trigger", drift_for_trigger)
    cfg = RetrainingConfig(**{**flow_defaults(), "data_engine": engine})
    gather_trigger_state(settings, cfg, select_sources(settings, cfg), is_scheduled=False)
    assert seen == [on_dask]
