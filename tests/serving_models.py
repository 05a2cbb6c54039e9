"""Real (tiny, untrained) model folders for the serving tests: an id, a numeric and two
categorical features (one one-hot, one embedded)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from model.artifact import save_model
from model.data import infer_spec, prepare
from model.registry import ModelRegistry
from model.serving.loading import verify_loads
from model.training.network import Preprocessor, build_model

TRAIN = pd.DataFrame(
    {
        "id": range(8),
        "x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "c": list("abababab"),
        "city": ["p", "q", "r", "s", "t", "u", "p", "q"],
        "target": [0, 1, 0, 1, 0, 1, 0, 1],
    }
)


def build_registry(
    root: Path, versions: int = 3, model: str = "demo", *, manifest: bool = False
) -> ModelRegistry:
    """A registry with v0001..v000N (different weights), v0001 in production, where the
    working root ``root`` keeps model ``model``'s registry (``models/<model>``). With
    ``manifest``, each model.json names ``TRAIN`` prepared under ``root`` (integer ids), as
    a trained model's does."""
    spec = infer_spec(TRAIN, id_column="id")
    pre = Preprocessor.fit(TRAIN, spec)
    reg = ModelRegistry(root / "models" / model, verify=verify_loads)
    data_path = None
    if manifest:
        raw = root / "data" / model / "raw" / "train.parquet"
        raw.parent.mkdir(parents=True, exist_ok=True)
        TRAIN.to_parquet(raw, index=False)
        prepared = prepare(
            raw, root / "data" / model / "prepared", id_column="id", split=(0.5, 0.25, 0.25)
        )
        data_path = str(prepared.path.relative_to(root))
    for seed in range(1, versions + 1):
        torch.manual_seed(seed)
        folder = root / "runs" / f"m{seed}"
        save_model(build_model(spec, pre, [8], 0.0, "relu", 0.5), folder)
        if data_path is not None:
            meta = json.loads((folder / "model.json").read_text())
            meta["data_manifest"] = {"path": data_path}
            (folder / "model.json").write_text(json.dumps(meta))
        reg.register(folder)
    reg.promote("v0001", "first", force=True)
    return reg
