"""The CUDA training path (``model.training.cuda``): the on-device AUC everywhere, the graphed
training step where a GPU is present (skipped otherwise).

Imports nothing from Prefect, so the GPU half also runs on a machine that has only torch, pandas
and scikit-learn (``pytest --noconftest tests/training/test_cuda.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from model.data import FeatureSpec
from model.data.demo import DEMO_NUMERIC, make_customers
from model.training import TrainParams, train
from model.training.cuda import auc_on_device

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


@pytest.mark.parametrize("seed", range(5))
def test_auc_on_device_equals_sklearn_with_and_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2_000
    y = rng.binomial(1, 0.3, n).astype(np.float32)
    scores = rng.normal(size=n) + y
    tied = np.round(scores, 1)  # many ties, within and across classes
    for s in (scores, tied):
        got = auc_on_device(torch.from_numpy(y), torch.from_numpy(s.astype(np.float32)))
        want = roc_auc_score(y, s.astype(np.float32))
        assert got == pytest.approx(want, abs=1e-12)


def test_auc_on_device_is_nan_for_one_class_or_non_finite_scores() -> None:
    assert np.isnan(auc_on_device(torch.ones(10), torch.arange(10.0)))
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert np.isnan(auc_on_device(y, torch.tensor([0.1, float("nan"), 0.3, 0.4])))


def test_cuda_batch_size_is_an_opt_in_that_cpu_training_ignores() -> None:
    df = make_customers(600, seed=3)
    spec = FeatureSpec(numeric=list(DEMO_NUMERIC))
    params = TrainParams(num_epochs=1, batch_size=64, device="cpu", cuda_batch_size=4096)
    result = train(df.iloc[:400], df.iloc[400:], params, spec=spec)
    assert result.params.batch_size == 64  # the user's batch, untouched off CUDA
    with pytest.raises(ValueError, match="cuda_batch_size must be >= 1"):
        TrainParams(cuda_batch_size=0)


def _data(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, FeatureSpec]:
    df = make_customers(rows + 20_000, seed=11)
    return df.iloc[:rows], df.iloc[rows:], FeatureSpec(numeric=list(DEMO_NUMERIC))


@pytest.mark.gpu
@needs_cuda
def test_graphed_cuda_training_matches_the_cpu_path() -> None:
    train_df, val_df, spec = _data(100_000)
    base = TrainParams(num_epochs=6, batch_size=512, learning_rate=1e-2, patience=None)
    cpu = train(train_df, val_df, base.with_overrides(device="cpu"), spec=spec)
    graphed = train(train_df, val_df, base.with_overrides(device="cuda"), spec=spec)
    no_graphs = TrainParams(**{**base.to_dict(), "device": "cuda", "cuda_graphs": False})
    eager = train(train_df, val_df, no_graphs, spec=spec)
    assert graphed.device.startswith("cuda")
    for result in (graphed, eager):
        assert abs(result.val_metrics["auc"] - cpu.val_metrics["auc"]) <= 0.005
        assert all(np.isfinite(h.train_loss) for h in result.history)
    # the on-device validation AUC per epoch is the AUC of the final weights at the last epoch
    assert graphed.history[-1].val_auc == pytest.approx(graphed.val_metrics["auc"], abs=1e-6)
    # warm-up steps before capture are undone: the first epoch's loss starts where eager's does
    assert graphed.history[0].train_loss == pytest.approx(eager.history[0].train_loss, rel=0.05)


@pytest.mark.gpu
@needs_cuda
def test_cuda_batch_size_opt_in_is_used_and_recorded() -> None:
    train_df, val_df, spec = _data(50_000)
    params = TrainParams(
        num_epochs=2, batch_size=512, patience=None, device="cuda", cuda_batch_size=4096
    )
    result = train(train_df, val_df, params, spec=spec)
    assert result.params.batch_size == 4096 and result.params.cuda_batch_size == 4096
    # a batch that leaves a partial last batch (eager step after the replays) still trains
    odd = train(
        train_df.iloc[:10_001], val_df, params.with_overrides(cuda_batch_size=1000), spec=spec
    )
    assert odd.val_metrics["auc"] > 0.6
