"""A working root with a production model trained on known columns (for the tests of labels
at the door and of the cycle's door check), without training a network: a fake model folder
whose ``model.json`` names real prepared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import make_model

from model.data import prepare
from model.registry import ModelRegistry
from model.serving.features import Batch
from model.serving.log import PredictionLog
from model.serving.models import Scored


def base_frame(rows: int = 400, seed: int = 0, target: str = "rain") -> pd.DataFrame:
    """Integer ids from 1000, a number ``x``, a text category ``c`` and 0/1 labels."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + rows),
            "x": rng.normal(size=rows),
            "c": rng.choice(["a", "b"], rows),
            target: rng.integers(0, 2, rows),
        }
    )


def make_home(root: Path, *, served: int = 40, target: str = "rain") -> Path:
    """``root`` as RETRAIN_HOME: model ``demo``'s base data (``data/demo/raw/weather.parquet``),
    production v0001 trained on it (a fake folder naming its prepared data), and ids
    0..served-1 in its prediction log."""
    raw = root / "data" / "demo" / "raw" / "weather.parquet"
    raw.parent.mkdir(parents=True)
    base_frame(target=target).to_parquet(raw, index=False)
    manifest = prepare(raw, root / "data" / "demo" / "prepared", target=target, id_column="id")
    model = make_model(root.parent / f"{root.name}-model")
    meta = json.loads((model / "model.json").read_text())
    meta["data_manifest"] = {"path": str(manifest.path.relative_to(root))}
    (model / "model.json").write_text(json.dumps(meta))
    registry = ModelRegistry(root / "models" / "demo")
    registry.register(model)
    registry.promote("v0001", "first", force=True)
    log = PredictionLog(root / "predictions" / "demo", "id", ["x"], ["c"])
    batch = Batch(
        np.zeros((served, 1), np.float32),
        np.zeros((served, 1), np.int64),
        [str(i) for i in range(served)],
        {"x": [float(i) for i in range(served)], "c": ["a"] * served},
    )
    scores = np.linspace(0.1, 0.9, served)
    labels = (scores > 0.5).astype(np.int8)
    log.append(Scored(batch, scores, labels, ["v0001"] * served, ["production"] * served))
    assert log.flush() == served
    return root


def use_home(root: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """:func:`make_home` at ``root``, made the working root of ``retrain`` (and of
    ``get_settings``) with a ``retraining.toml`` whose model ``demo`` has target ``rain``."""
    make_home(root)
    config = config_dir / "retraining.toml"
    config.write_text('[models.demo]\ntarget_column = "rain"\nid_column = "id"\n')
    monkeypatch.setenv("RETRAIN_HOME", str(root))
    monkeypatch.setenv("RETRAIN_CONFIG", str(config))
    monkeypatch.setenv("RETRAIN_MODEL_NAME", "demo")
    return root
