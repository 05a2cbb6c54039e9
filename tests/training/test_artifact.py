"""The model artifact: round trip, metadata, and every refusal of load_model."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from model.data import FeatureSpec
from model.errors import DataValidationError, ModelLoadError
from model.training import TrainParams, TrainResult, train
from model.training.artifact import FORMAT_VERSION, load_model, save_model

SPEC = FeatureSpec(numeric=["a", "b"], categorical=["shop"], id_column="id")


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "a": rng.normal(0, 1, n),
            "b": rng.normal(5, 2, n),
            "shop": rng.choice(["x", "y", "z", "w", "v", "u"], n),
        }
    )
    df["target"] = ((df.a + (df.shop == "x") + rng.normal(0, 0.5, n)) > 0.5).astype(int)
    return df


@pytest.fixture(scope="module")
def trained() -> TrainResult:
    params = TrainParams(num_epochs=3, batch_size=32, hidden_sizes=(8,), threshold_strategy="f1")
    return train(frame(200, 0), frame(80, 1), params, spec=SPEC)


@pytest.fixture
def saved(tmp_path: Path, trained: TrainResult) -> Path:
    return save_model(
        trained,
        tmp_path / "v0007",
        extra_metadata={"data_manifest": {"sha256": "ab" * 32, "path": "data/prepared/x"}},
    )


def rewrite_pt(folder: Path, payload: bytes) -> None:
    """Replace model.pt and write its *correct* SHA-256 into model.json."""
    (folder / "model.pt").write_bytes(payload)
    meta = json.loads((folder / "model.json").read_text())
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))


def test_round_trip_gives_identical_predictions(saved: Path, trained: TrainResult) -> None:
    df = frame(50, 2)
    loaded = load_model(saved)
    np.testing.assert_array_equal(loaded.predict_proba(df), trained.model.predict_proba(df))
    assert loaded.decision_threshold == trained.threshold
    assert loaded.spec == SPEC
    assert loaded.version == "v0007"
    assert loaded.path == saved.resolve()
    assert loaded.sha256 == hashlib.sha256((saved / "model.pt").read_bytes()).hexdigest()
    # via model.pt too
    assert load_model(saved / "model.pt").sha256 == loaded.sha256


def test_model_json_holds_the_contract(saved: Path, trained: TrainResult) -> None:
    text = (saved / "model.json").read_text()
    meta = json.loads(text)  # strict JSON: no NaN
    assert "NaN" not in text
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["sha256"] == hashlib.sha256((saved / "model.pt").read_bytes()).hexdigest()
    assert meta["trained_at"].endswith("Z")
    assert meta["feature_spec"] == SPEC.to_dict()
    assert sorted(meta["preprocessing"]["categorical"]["shop"]["levels"]) == list("uvwxyz")
    assert set(meta["preprocessing"]["numeric"]) == {"a", "b"}
    assert meta["decision_threshold"] == trained.threshold
    assert meta["metrics"]["validation"]["auc"] == pytest.approx(trained.val_metrics["auc"])
    assert "auc" in meta["metrics"]["train"]
    assert meta["training_params"]["threshold_strategy"] == "f1"
    assert meta["data_manifest"] == {"sha256": "ab" * 32, "path": "data/prepared/x"}
    assert {"torch", "numpy", "pandas", "python"} <= set(meta["library_versions"])
    assert meta["architecture"]["hidden_sizes"] == [8]
    assert len(meta["training"]["history"]) == 3
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "model.pt"]  # no temp files


def test_model_pt_is_a_plain_state_dict(saved: Path) -> None:
    state = torch.load(saved / "model.pt", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert "num_mean" in state and "layers.0.weight" in state


def test_symlink_is_resolved_once(tmp_path: Path, saved: Path) -> None:
    link = tmp_path / "production"
    link.symlink_to(saved, target_is_directory=True)
    loaded = load_model(link / "model.pt")
    assert loaded.path == saved.resolve() and loaded.version == "v0007"
    assert load_model(link).path == saved.resolve()


def test_extra_metadata_cannot_override_reserved_keys(tmp_path: Path, trained: TrainResult) -> None:
    with pytest.raises(ValueError, match="sha256"):
        save_model(trained, tmp_path / "m", extra_metadata={"sha256": "0" * 64})


def test_saving_again_replaces_both_files(tmp_path: Path, trained: TrainResult) -> None:
    folder = save_model(trained, tmp_path / "m")
    save_model(trained.model, folder)  # a bare model: no metrics
    loaded = load_model(folder)
    assert loaded.metadata["metrics"] == {} and loaded.metadata["training_params"] is None


class Payload:
    """Unpickling this would create a file: code execution."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path, saved: Path) -> None:
    sentinel = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"layers.0.weight": torch.zeros(1), "evil": Payload(sentinel)}, buf)
    rewrite_pt(saved, buf.getvalue())  # checksum is right: only weights_only stands in the way
    with pytest.raises(ModelLoadError, match="refused"):
        load_model(saved)
    assert not sentinel.exists()
    # the payload is real: an unsafe load runs it (so this test can fail)
    torch.load(saved / "model.pt", weights_only=False)
    assert sentinel.exists()


def test_truncated_file_is_refused(saved: Path) -> None:
    payload = (saved / "model.pt").read_bytes()
    rewrite_pt(saved, payload[: len(payload) // 2])
    with pytest.raises(ModelLoadError, match="truncated, corrupt"):
        load_model(saved)


def test_garbage_file_is_refused(saved: Path) -> None:
    rewrite_pt(saved, os.urandom(4096))
    with pytest.raises(ModelLoadError):
        load_model(saved)


def test_checksum_mismatch_is_refused(saved: Path) -> None:
    payload = bytearray((saved / "model.pt").read_bytes())
    payload[-100] ^= 0xFF
    (saved / "model.pt").write_bytes(bytes(payload))
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        load_model(saved)


def test_missing_model_json_is_refused(saved: Path) -> None:
    (saved / "model.json").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.json is missing"):
        load_model(saved)


def test_missing_model_pt_is_refused(saved: Path) -> None:
    (saved / "model.pt").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.pt is missing"):
        load_model(saved)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nothing")


def test_unknown_format_version_is_refused(saved: Path) -> None:
    meta = json.loads((saved / "model.json").read_text())
    meta["format_version"] = 99
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="format_version 99"):
        load_model(saved)


def test_state_dict_not_matching_the_architecture_is_refused(saved: Path) -> None:
    state = torch.load(saved / "model.pt", weights_only=True)
    state["layers.0.weight"] = torch.zeros(3, 3)
    buf = io.BytesIO()
    torch.save(state, buf)
    rewrite_pt(saved, buf.getvalue())
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model(saved)


def test_frame_with_wrong_columns_is_refused_with_names(saved: Path) -> None:
    loaded = load_model(saved)
    df = frame(10, 3).drop(columns=["b"]).rename(columns={"shop": "store"})
    with pytest.raises(DataValidationError) as err:
        loaded.predict_proba(df)
    msg = str(err.value)
    assert "missing ['b', 'shop']" in msg and "'store'" in msg
    # extra non-feature columns are fine unless strict
    ok = frame(10, 3).assign(date="2024-01-01")
    assert loaded.predict_proba(ok).shape == (10,)
    with pytest.raises(DataValidationError, match=r"unexpected.*'date'"):
        loaded.predict_proba(ok, strict=True)


def edit_json(folder: Path, **changes: Any) -> None:
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("value", ["abc", None, 5, -0.1, True])
def test_bad_decision_threshold_is_refused(saved: Path, value: object) -> None:
    edit_json(saved, decision_threshold=value)
    with pytest.raises(ModelLoadError, match=r"decision_threshold must be a number in \[0, 1\]"):
        load_model(saved)


def test_preprocessing_not_matching_the_network_is_refused(saved: Path) -> None:
    meta = json.loads((saved / "model.json").read_text())
    meta["preprocessing"]["categorical"]["shop"]["levels"].append("extra")
    edit_json(saved, preprocessing=meta["preprocessing"])
    with pytest.raises(ModelLoadError, match="categorical inputs of the architecture"):
        load_model(saved)
    meta["feature_spec"]["numeric"] = ["a"]
    del meta["preprocessing"]["numeric"]["b"]
    edit_json(saved, feature_spec=meta["feature_spec"], preprocessing=meta["preprocessing"])
    with pytest.raises(ModelLoadError, match="2 numeric inputs but the preprocessing lists 1"):
        load_model(saved)
    edit_json(saved, preprocessing=None)
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model(saved)


def test_unserialisable_metadata_leaves_no_folder(tmp_path: Path, trained: TrainResult) -> None:
    with pytest.raises(TypeError):
        save_model(trained, tmp_path / "m", extra_metadata={"training_reason": object()})
    with pytest.raises(ValueError, match="sha256"):
        save_model(trained, tmp_path / "m", extra_metadata={"sha256": "0"})
    assert not (tmp_path / "m").exists()
