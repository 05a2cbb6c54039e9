"""The loop closed (``make serve-demo``): demo traffic through the real service, its labels
added late, the drift monitor on the prediction log, and a forced cycle that trains on the
labelled batch (its manifest lists it)."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
import pytest

from deployments.scoring.demo import score_and_label
from flows.retraining import retraining
from model.data import load_manifest
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings

pytestmark = pytest.mark.slow

FAST: dict[str, Any] = {
    "num_epochs": 4,
    "batch_size": 256,
    "patience": None,
    "n_bootstrap": 200,
    "id_column": "id",
    "min_hours_between_trainings": 0.0,
}


def test_demo_traffic_labelled_becomes_the_next_training_batch(
    prefect_harness: None, settings: Settings
) -> None:
    write_demo(settings, rows=2_500, seed=7)
    assert retraining(**FAST).status == "promoted"
    out = score_and_label(settings, rows=600, chunk=50, cycle=FAST)
    assert out["served"] == {"v0001": 600}
    labels = out["labels"]
    assert labels["added"] == 600 and labels["rows"] == 600 and labels["never_served"] == 0
    batch = pq.read_table(labels["batch"])
    assert batch.num_rows == 600
    assert set(batch.column("__served_version__").to_pylist()) == {"v0001"}
    # the drift monitor took the prediction log as its current data
    assert out["drift"]["status"] == "ok"
    assert all("predictions/demo/date=" in p for p in out["drift"]["current"]["paths"])
    # the forced cycle trained on the labelled batch
    day = labels["batch"].split("/")[-2]
    assert day in out["candidate_batches"]
    registry = ModelRegistry(settings.models_dir)
    meta = registry.metadata(out["candidate"])
    manifest = load_manifest(settings.resolve(meta["data_manifest"]["path"]))
    assert any(source.endswith(labels["batch"].split("/")[-1]) for source in manifest.sources)
    assert manifest.rows == 2_500 + 600
    assert not any(c.startswith("__") for c in manifest.spec.features)
