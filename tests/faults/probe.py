"""Helpers of the fault-probe regression tests (issue 25): tiny real models and a holdout
they score, a registry with a production model, and running a command in-process under a
time limit (a hang fails the test instead of stopping the suite)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import make_model, time_limit

from model.cli import main
from model.registry import ModelRegistry

LIMIT_S = 60
"""Seconds a command may take before it counts as a hang (generous: 2 shared cores)."""


def holdout(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "x": x,
            "c": rng.choice(list("ab"), rows),
            "target": (x + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64),
        }
    )


def real_model(folder: Path, seed: int = 0) -> Path:
    """A tiny untrained network over ``holdout()``'s columns, saved as a model folder."""
    torch = pytest.importorskip("torch")
    from model.artifact import save_model
    from model.data import infer_spec
    from model.training.network import Preprocessor, build_model

    df = holdout(40)
    spec = infer_spec(df)
    pre = Preprocessor.fit(df, spec)
    torch.manual_seed(seed)
    save_model(build_model(spec, pre, [4], 0.0, "relu"), folder)
    return folder


def registry_with_production(models_dir: Path, tmp: Path) -> ModelRegistry:
    """v0001 (production) and v0002 (a candidate): fake model folders."""
    reg = ModelRegistry(models_dir)
    reg.register(make_model(tmp / "fake1", seed=1))
    reg.register(make_model(tmp / "fake2", seed=2))
    reg.promote("v0001", "first", force=True)
    return reg


def fifo_at(path: Path) -> Path:
    """Replace ``path`` (when it exists) by a FIFO nobody writes to."""
    if path.is_symlink() or path.exists():
        os.chmod(path, 0o644) if path.is_file() else None
        path.unlink()
    os.mkfifo(path)
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``retrain ARGV`` in-process under :data:`LIMIT_S`; returns (rc, stdout, stderr)."""
    capsys.readouterr()
    with time_limit(LIMIT_S, f"retrain {' '.join(argv)}"):
        rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str, *names: str) -> str:
    """``err`` is one ``error: ...`` line that names each of ``names``."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]
