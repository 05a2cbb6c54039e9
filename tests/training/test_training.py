"""Training: determinism, early stopping, thresholds, optimizer, prepared data, CLI, task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from model.data import FeatureSpec
from model.errors import DataValidationError, RetrainError
from model.training import (
    LAB,
    RECOMMENDED,
    EpochStats,
    FusedAdam,
    TrainingDivergedError,
    TrainingParamsError,
    TrainParams,
    train,
    train_prepared,
)

FAST = TrainParams(num_epochs=3, batch_size=32, patience=None, hidden_sizes=(16, 8), device="cpu")


def customers(
    n: int, seed: int, *, categorical: bool = False, pos_rate: float = 0.3
) -> pd.DataFrame:
    """A small version of the lab's data (income step + premium flag decide the target)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "id": np.arange(n) + 1000 * seed,
            "age": rng.normal(35, 10, n),
            "income": rng.normal(65_000, 20_000, n),
            "is_premium": rng.binomial(1, pos_rate, n),
            "noise": rng.uniform(0, 1, n),
        }
    )
    score = 0.3 * (df.income > 70_000) + 0.4 * df.is_premium + 0.3 * rng.uniform(0, 1, n)
    if categorical:
        df["shop"] = rng.choice([f"s{i}" for i in range(8)], n)
        score = 0.6 * df["shop"].isin(["s1", "s2", "s3"]) + 0.5 * rng.uniform(0, 1, n)
    df["target"] = (score > 0.5).astype(np.int64)
    return df


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return customers(400, 1), customers(150, 2)


def state_of(model) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def test_same_seed_same_weights_and_history(data) -> None:  # type: ignore[no-untyped-def]
    train_df, val_df = data
    a = train(train_df, val_df, FAST)
    b = train(train_df, val_df, FAST)
    sa, sb = state_of(a.model), state_of(b.model)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h.val_loss for h in a.history] == [h.val_loss for h in b.history]
    c = train(train_df, val_df, TrainParams(**{**FAST.to_dict(), "seed": 7}))
    assert not torch.equal(state_of(c.model)["layers.0.weight"], sa["layers.0.weight"])


def test_train_leaves_global_rng_and_threads_alone(data) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    train(data[0], data[1], FAST.with_overrides(num_threads=1))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads


def test_learns_the_signal_and_reports_each_epoch(data) -> None:  # type: ignore[no-untyped-def]
    seen: list[EpochStats] = []
    result = train(
        data[0],
        data[1],
        RECOMMENDED.with_overrides(batch_size=64, num_epochs=30),
        on_epoch=seen.append,
    )
    assert [s.epoch for s in seen] == [h.epoch for h in result.history]
    assert all(np.isfinite([s.train_loss, s.val_loss, s.val_auc, s.seconds]).all() for s in seen)
    assert result.val_metrics["auc"] > 0.85
    assert result.model.spec.features == ["age", "income", "is_premium", "noise"]  # no id
    assert result.val_metrics["n"] == len(data[1])


def test_categorical_signal_is_learned() -> None:
    train_df, val_df = customers(600, 3, categorical=True), customers(200, 4, categorical=True)
    spec = FeatureSpec(numeric=["age"], categorical=["shop"], id_column="id")
    result = train(train_df, val_df, RECOMMENDED.with_overrides(batch_size=64), spec=spec)
    assert result.val_metrics["auc"] > 0.8
    assert result.model.architecture["categorical"][0]["encoding"] == "embedding"


def test_early_stopping_restores_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    # random labels: validation loss bottoms out early, then the net overfits
    tr = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde")).assign(
        target=rng.integers(0, 2, 60)
    )
    va = pd.DataFrame(rng.normal(size=(200, 5)), columns=list("abcde")).assign(
        target=rng.integers(0, 2, 200)
    )
    params = TrainParams(
        num_epochs=300,
        batch_size=16,
        learning_rate=0.03,
        patience=4,
        hidden_sizes=(64, 64),
        dropout=0.0,
    )
    result = train(tr, va, params)
    losses = [h.val_loss for h in result.history]
    assert result.stopped_early
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert len(result.history) == result.best_epoch + 4
    # the returned weights are the best epoch's, not the last epoch's
    p = np.clip(result.model.predict_proba(va), 1e-12, 1 - 1e-12)
    y = va["target"].to_numpy()
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert loss == pytest.approx(losses[result.best_epoch - 1], rel=1e-4)
    assert loss != pytest.approx(losses[-1], rel=1e-4)


def test_without_patience_every_epoch_runs_and_last_weights_stay(data) -> None:  # type: ignore[no-untyped-def]
    result = train(data[0], data[1], FAST.with_overrides(num_epochs=4))
    assert len(result.history) == 4 and result.best_epoch == 4 and not result.stopped_early


def test_fixed_threshold_is_one_half(data) -> None:  # type: ignore[no-untyped-def]
    assert train(data[0], data[1], FAST).threshold == 0.5


def test_f1_threshold_maximises_validation_f1(data) -> None:  # type: ignore[no-untyped-def]
    train_df, val_df = data
    result = train(train_df, val_df, FAST.with_overrides(threshold_strategy="f1"))
    scores = result.model.predict_proba(val_df)
    y = val_df["target"].to_numpy()
    best = max(f1_score(y, scores >= t) for t in np.unique(scores))
    assert f1_score(y, scores >= result.threshold) == pytest.approx(best, abs=1e-9)
    assert result.model.decision_threshold == result.threshold
    assert result.val_metrics["threshold"] == result.threshold


def test_class_weight_raises_positive_scores() -> None:
    tr, va = customers(500, 5, pos_rate=0.05), customers(200, 6, pos_rate=0.05)
    plain = train(tr, va, FAST.with_overrides(num_epochs=5))
    weighted = train(tr, va, FAST.with_overrides(num_epochs=5, class_weight=True))
    assert weighted.model.predict_proba(va).mean() > plain.model.predict_proba(va).mean() + 0.05


def test_fused_adam_matches_torch_adam() -> None:
    torch.manual_seed(0)
    ref = [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    ours = [p.detach().clone().requires_grad_(True) for p in ref]
    opt_ref = torch.optim.Adam(ref, lr=0.01, weight_decay=0.1)
    opt = FusedAdam(ours, lr=0.01, weight_decay=0.1)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in ref]
        for p, g in zip(ref, grads, strict=True):
            p.grad = g.clone()
        opt_ref.step()
        opt.step([g.clone() for g in grads])
    for a, b in zip(ref, ours, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)


def test_params_round_trip_and_validation() -> None:
    assert TrainParams.from_dict(RECOMMENDED.to_dict()) == RECOMMENDED
    assert (LAB.num_epochs, LAB.batch_size, LAB.patience, LAB.target_column) == (
        50,
        32,
        None,
        "target",
    )
    assert TrainParams().learning_rate == 1e-3
    with pytest.raises(TrainingParamsError, match=r"unknown training parameters.*'epochs'"):
        TrainParams.from_dict({"epochs": 3})
    with pytest.raises(TrainingParamsError, match="batch_size"):
        TrainParams(batch_size=0)
    with pytest.raises(TrainingParamsError, match="activation"):
        TrainParams(activation="sigmoidish")
    assert issubclass(TrainingParamsError, RetrainError)


def test_bad_targets_are_refused(data) -> None:  # type: ignore[no-untyped-def]
    train_df, val_df = data
    with pytest.raises(DataValidationError, match="only 0 and 1"):
        train(train_df.assign(target=2 * train_df["target"]), val_df, FAST)
    with pytest.raises(DataValidationError, match="single class"):
        train(train_df.assign(target=0), val_df, FAST)
    with pytest.raises(DataValidationError, match="missing"):
        train(train_df.drop(columns=["income"]), val_df, FAST, spec=FeatureSpec(numeric=["income"]))


def write_prepared(folder: Path, data) -> Path:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True)
    data[0].to_parquet(folder / "train.parquet")
    data[1].to_parquet(folder / "val.parquet")
    return folder


def test_train_prepared_records_the_data(settings, tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    prepared = write_prepared(settings.prepared_dir / "abc", data)
    folder, result = train_prepared(
        prepared, tmp_path / "m", FAST, extra_metadata={"training_reason": "test"}
    )
    meta = json.loads((folder / "model.json").read_text())
    assert meta["data_manifest"] == {"sha256": None, "path": "data/demo/prepared/abc"}
    assert meta["training_reason"] == "test"
    assert meta["training_params"]["num_epochs"] == 3
    assert "id" not in result.model.spec.features


def test_train_on_a_prepared_folder_from_the_data_layer(settings, tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    from model.data import prepare

    raw = tmp_path / "raw.parquet"
    pd.concat(data, ignore_index=True).to_parquet(raw)
    manifest = prepare([raw], settings.prepared_dir)
    folder, _ = train_prepared(manifest.path, tmp_path / "m", FAST)
    meta = json.loads((folder / "model.json").read_text())
    assert meta["data_manifest"]["sha256"] == manifest.sha256
    assert meta["feature_spec"] == manifest.spec.to_dict()


def test_cli_train_prints_progress_and_metrics(settings, tmp_path, data, capsys) -> None:  # type: ignore[no-untyped-def]
    from model.cli import main

    prepared = write_prepared(tmp_path / "prep", data)
    out = tmp_path / "model"
    code = main(
        [
            "train",
            "--data",
            str(prepared),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--patience",
            "0",
            "--hidden",
            "8,4",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "epoch   1/2" in text and "epoch   2/2" in text and "validation: auc" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["training_params"]["patience"] is None
    assert meta["architecture"]["hidden_sizes"] == [8, 4]


def test_cli_bad_data_folder_exits_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from model.cli import main

    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_prefect_task_body(settings, tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    from prefect.logging import disable_run_logger

    from tasks.training import train_model

    prepared = write_prepared(tmp_path / "prep", data)
    with disable_run_logger():
        out = train_model.fn(
            str(prepared), str(tmp_path / "m"), FAST.to_dict(), {"training_reason": "x"}
        )
    assert (Path(out) / "model.pt").is_file()
    assert json.loads((Path(out) / "model.json").read_text())["training_reason"] == "x"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda_and_scores_on_cpu(tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    from model.training.artifact import load_model, save_model

    train_df, val_df = data
    result = train(train_df, val_df, FAST.with_overrides(device="cuda", num_epochs=5))
    assert result.device.startswith("cuda")
    assert next(result.model.net.parameters()).device.type == "cpu"
    loaded = load_model(save_model(result, tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_proba(val_df), result.model.predict_proba(val_df))
    assert result.val_metrics["auc"] > 0.7


def test_divergence_is_reported(data) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1"):
        train(data[0], data[1], FAST.with_overrides(learning_rate=1e20))


def test_infinite_feature_values_are_bad_data_not_divergence(data) -> None:  # type: ignore[no-untyped-def]
    bad = data[0].assign(income=np.where(np.arange(len(data[0])) == 3, np.inf, data[0]["income"]))
    with pytest.raises(
        DataValidationError, match=r"training data: .*'income' has 1 infinite.*row 3"
    ):
        train(bad, data[1], FAST)
    huge = data[1].assign(age=np.where(np.arange(len(data[1])) == 0, 1e300, data[1]["age"]))
    with pytest.raises(DataValidationError, match=r"validation data: .*'age'.*float32"):
        train(data[0], huge, FAST)


def test_target_column_and_spec_agree(data) -> None:  # type: ignore[no-untyped-def]
    train_df, val_df = (d.rename(columns={"target": "churn"}) for d in data)
    spec = FeatureSpec(target="churn", numeric=["age", "income"], id_column="id")
    result = train(train_df, val_df, FAST, spec=spec)  # the default target_column yields
    assert result.params.target_column == "churn"  # what model.json records
    with pytest.raises(TrainingParamsError, match=r"target_column 'label' differs.*'churn'"):
        train(train_df, val_df, FAST.with_overrides(target_column="label"), spec=spec)


def test_tampered_or_corrupt_prepared_data_is_refused(settings, tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    from model.data import prepare

    raw = tmp_path / "raw.parquet"
    pd.concat(data, ignore_index=True).to_parquet(raw)
    manifest = prepare([raw], settings.prepared_dir)
    train_path = manifest.split_path("train")
    tampered = pd.read_parquet(train_path).iloc[:50]
    tampered.to_parquet(train_path, index=False)
    with pytest.raises(DataValidationError, match="checksum mismatch"):
        train_prepared(manifest.path, tmp_path / "m", FAST)
    bare = write_prepared(tmp_path / "bare", data)
    (bare / "val.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(DataValidationError, match=r"val\.parquet: unreadable"):
        train_prepared(bare, tmp_path / "m", FAST)
    with pytest.raises(DataValidationError, match="is not a folder"):
        train_prepared(raw, tmp_path / "m", FAST)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden", "64,abc"], "--hidden: expected comma-separated"),
        (["--patience", "-3"], "--patience must be >= 0"),
    ],
)
def test_cli_bad_parameters_exit_2(tmp_path, data, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    from model.cli import main

    prepared = write_prepared(tmp_path / "prep", data)
    assert main(["train", "--data", str(prepared), "--out", str(tmp_path / "m"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_out_that_is_a_file_exits_2_before_training(tmp_path, data, capsys) -> None:  # type: ignore[no-untyped-def]
    from model.cli import main

    prepared = write_prepared(tmp_path / "prep", data)
    (tmp_path / "m").write_text("not a folder")
    assert main(["train", "--data", str(prepared), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr()
    assert "is a file" in err.err and "epoch" not in err.out
