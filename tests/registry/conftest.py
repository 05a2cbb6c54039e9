"""Fixtures of the registry tests: real (tiny, untrained) model folders.

The entry layers (``retrain register|promote|rollback|challenger set``, the Prefect tasks)
check that a model loads with torch ``weights_only=True``, so tests that go through them
need folders that really load; ``fakes.make_model`` (random bytes) serves the registry
itself, which checks only checksums.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

RealModel = Callable[..., Path]


@pytest.fixture
def make_real_model() -> RealModel:
    """``make_real_model(folder, seed, auc)``: a tiny untrained model saved with
    ``save_model``, its validation metrics set in model.json (``auc`` as for make_model)."""
    pd = pytest.importorskip("pandas")
    torch = pytest.importorskip("torch")
    from model.artifact import save_model
    from model.data import infer_spec
    from model.training.network import Preprocessor, build_model

    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": list("abab"), "target": [0, 1, 0, 1]})
    spec = infer_spec(df)
    pre = Preprocessor.fit(df, spec)

    def make(folder: Path, seed: int = 0, auc: float | None = None) -> Path:
        torch.manual_seed(seed)
        save_model(build_model(spec, pre, [4], 0.0, "relu"), folder)
        meta = json.loads((folder / "model.json").read_text())
        meta["trained_at"] = "2026-11-20T10:00:00Z"
        auc = 0.8 + seed / 1000 if auc is None else auc
        meta["metrics"] = {"validation": {"auc": auc, "f1": 0.7}}
        (folder / "model.json").write_text(json.dumps(meta))  # model.pt, its sha256 unchanged
        return folder

    return make


@pytest.fixture
def real_models(tmp_path: Path, make_real_model: RealModel) -> list[Path]:
    """Five real model folders, like the ``models`` fixture (AUC 0.81 ... 0.85)."""
    return [make_real_model(tmp_path / f"r{i}", seed=i, auc=0.8 + i / 100) for i in range(1, 6)]
