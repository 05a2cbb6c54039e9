"""Training streamed from the split files' row groups (model/training/stream.py): the
preprocessor's statistics against fitting on the whole frame, determinism, a model as good
as the in-memory one, the routing by the memory budget and what model.json records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from model.data import load_manifest, load_split, prepare
from model.data.demo import make_customers
from model.training import TrainParams, train_prepared
from model.training.loop import binary_metrics, train
from model.training.network import Preprocessor
from model.training.stream import SplitFile, fit_streamed, lean_metrics, streams, train_streamed

GROUP = 2048
PARAMS = TrainParams(num_epochs=6, batch_size=256, patience=3, seed=3, device="cpu")
TINY = 1 << 16


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder of 30,000 demo rows (missing values, a text category) whose split
    files have row groups of 2,048 rows."""
    root = tmp_path_factory.mktemp("stream-training")
    df = make_customers(30_000, seed=5)
    rng = np.random.default_rng(1)
    df.loc[rng.random(len(df)) < 0.05, "income"] = np.nan
    df["segment"] = rng.choice(["a", "b", "c", "d"], len(df))
    df.loc[rng.random(len(df)) < 0.03, "segment"] = None
    mp = pytest.MonkeyPatch()
    mp.setattr("model.data.output.ROW_GROUP_ROWS", GROUP)
    try:
        manifest = prepare(df, root / "prepared")
    finally:
        mp.undo()
    assert pq.ParquetFile(manifest.split_path("train")).num_row_groups > 5
    return manifest.path


def test_the_streamed_preprocessor_is_the_whole_frames(prepared: Path) -> None:
    manifest = load_manifest(prepared)
    whole = Preprocessor.fit(load_split(manifest, "train"), manifest.spec)
    streamed = fit_streamed(SplitFile.open(manifest, "train"), TINY)
    assert streamed.numeric == whole.numeric and streamed.categorical == whole.categorical
    assert streamed.median == whole.median  # exact: order statistics
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.std, whole.std, rtol=1e-9)
    assert streamed.levels == whole.levels
    assert "segment" in streamed.levels and "missing" in streamed.levels["segment"]


def _weights(result: object) -> list[torch.Tensor]:
    return [p.detach().clone() for p in result.model.net.parameters()]  # type: ignore[attr-defined]


def test_streamed_training_is_deterministic_and_as_good_as_in_memory(prepared: Path) -> None:
    manifest = load_manifest(prepared)
    first = train_streamed(manifest, PARAMS, TINY)
    again = train_streamed(manifest, PARAMS, TINY)
    for a, b in zip(_weights(first), _weights(again), strict=True):
        assert torch.equal(a, b)
    whole = train(
        load_split(manifest, "train"), load_split(manifest, "val"), PARAMS, spec=manifest.spec
    )
    # the same data, another order of rows: the same quality within noise, not the same bits
    assert first.val_metrics["auc"] > 0.7
    assert abs(first.val_metrics["auc"] - whole.val_metrics["auc"]) < 0.02
    assert first.val_metrics["n"] == whole.val_metrics["n"]  # validation: every row
    # training metrics: a seeded sample of about budget / 256 rows (here 256 of 21,000)
    sampled = first.extra["data_reading"]["train_metrics_rows"]
    assert first.train_metrics["n"] == sampled == again.train_metrics["n"]
    assert 150 < sampled < 400
    assert first.extra["data_reading"]["streamed"] is True
    assert first.extra["data_reading"]["row_groups_per_window"] >= 1
    # every epoch's validation AUC is the AUC of the model at that epoch: the last one is
    # what the returned model scores when it is the best epoch
    if first.best_epoch == len(first.history):
        assert first.history[-1].val_auc == pytest.approx(first.val_metrics["auc"], abs=1e-6)


def test_a_larger_window_changes_the_order_not_the_rows(prepared: Path) -> None:
    manifest = load_manifest(prepared)
    small = train_streamed(manifest, PARAMS, TINY)
    large = train_streamed(manifest, PARAMS, 1 << 30)
    assert small.extra["data_reading"]["row_groups_per_window"] == 1
    assert large.extra["data_reading"]["row_groups_per_window"] > 1
    manifest_rows = manifest.splits["train"].rows
    assert large.train_metrics["n"] == manifest_rows  # a budget that holds them: every row
    assert abs(small.val_metrics["auc"] - large.val_metrics["auc"]) < 0.02


def test_the_budget_decides_and_model_json_says_so(prepared: Path, tmp_path: Path) -> None:
    manifest = load_manifest(prepared)
    assert streams(manifest, TINY)
    assert not streams(manifest, 1 << 34)
    assert not streams(manifest, None)
    streamed_dir, _ = train_prepared(prepared, tmp_path / "s", PARAMS, memory_budget=TINY)
    whole_dir, _ = train_prepared(prepared, tmp_path / "w", PARAMS, memory_budget=1 << 34)
    s_meta = json.loads((streamed_dir / "model.json").read_text())
    w_meta = json.loads((whole_dir / "model.json").read_text())
    assert s_meta["training"]["data_reading"]["memory_budget"] == TINY
    assert "data_reading" not in w_meta["training"]
    assert s_meta["data_manifest"]["sha256"] == manifest.sha256


def test_a_split_that_changed_on_disk_is_refused(prepared: Path, tmp_path: Path) -> None:
    import shutil

    from model.errors import DataValidationError

    copy = tmp_path / prepared.name
    shutil.copytree(prepared, copy)
    with open(copy / "train.parquet", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(DataValidationError, match="checksum mismatch"):
        train_streamed(load_manifest(copy), PARAMS, TINY)


@pytest.mark.parametrize("ties", [False, True])
def test_lean_metrics_are_scikit_learns(ties: bool) -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(20_000) < 0.3).astype(np.float32)
    scores = 1 / (1 + np.exp(-(rng.normal(size=y.size) + y)))
    if ties:
        scores = np.round(scores, 2)
    for threshold in (0.5, 0.31):
        expected, got = binary_metrics(y, scores, threshold), lean_metrics(y, scores, threshold)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    one_class = lean_metrics(np.zeros(10, np.float32), np.linspace(0, 1, 10), 0.5)
    assert np.isnan(one_class["auc"]) and np.isnan(one_class["average_precision"])
