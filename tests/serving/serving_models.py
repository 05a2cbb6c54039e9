"""Real (tiny, untrained) model folders for the serving tests: an id, a numeric and two
categorical features (one one-hot, one embedded)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from model.artifact import save_model
from model.data import infer_spec
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


def build_registry(root: Path, versions: int = 3, model: str = "demo") -> ModelRegistry:
    """A registry with v0001..v000N (different weights), v0001 in production, where the
    working root ``root`` keeps model ``model``'s registry (``models/<model>``)."""
    spec = infer_spec(TRAIN, id_column="id")
    pre = Preprocessor.fit(TRAIN, spec)
    reg = ModelRegistry(root / "models" / model, verify=verify_loads)
    for seed in range(1, versions + 1):
        torch.manual_seed(seed)
        folder = root / "runs" / f"m{seed}"
        save_model(build_model(spec, pre, [8], 0.0, "relu", 0.5), folder)
        reg.register(folder)
    reg.promote("v0001", "first", force=True)
    return reg
