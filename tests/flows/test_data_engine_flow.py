"""A model whose ``data_engine`` is dask, through the retraining flow: its data is prepared
on a LocalCluster started for the task (every pass partition-parallel), and the cycle goes
on as on one machine."""

from __future__ import annotations

import pytest
from test_sweep_flow import FAST

from flows.retraining import retraining
from model.data import load_manifest
from model.data.demo import write_demo
from model.registry import ModelRegistry
from model.settings import Settings


@pytest.mark.slow
def test_a_model_on_dask_prepares_its_data_on_the_cluster(
    prefect_harness: None, settings: Settings
) -> None:
    write_demo(settings, rows=3_000, seed=11)
    result = retraining(**FAST, data_engine="dask")
    assert result.status == "promoted", result.reasons
    meta = ModelRegistry(settings.models_dir).metadata(result.candidate_version or "")
    manifest = load_manifest(settings.resolve(meta["data_manifest"]["path"]))
    assert manifest.preparation["engine"] == "dask"
    assert manifest.preparation["streamed"] is True
    assert sum(info.rows for info in manifest.splits.values()) == manifest.rows
    leftovers = [p.name for p in manifest.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the workers' scratch files are gone
