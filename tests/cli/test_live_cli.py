"""``retrain challenger evaluate`` and ``retrain watch status | check`` on a registry of fake
models and a prediction log in the adapter's format."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import make_model
from prediction_log import shadow_rows, write_log

from model.cli import main
from model.registry import ModelRegistry
from model.settings import Settings


def _setup(settings: Settings, tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(settings.models_dir)
    for i in range(2):
        reg.register(make_model(tmp_path / f"m{i}", seed=i))
    reg.promote("v0001", "first")
    return reg


def _now(reg: ModelRegistry) -> dt.datetime:
    return pd.Timestamp(reg.history()[-1]["time"]).to_pydatetime()


def test_challenger_evaluate_dry_run_then_reject(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = _setup(settings, tmp_path)
    reg.set_challenger("v0002", 100)
    start = _now(reg)
    rng = np.random.default_rng(1)
    rows = shadow_rows(rng, 2000, ("v0001", 0.85), ("v0002", 0.72), start, days=2)
    write_log(settings.root, settings.model_name, rows)
    as_of = (start + dt.timedelta(days=3)).isoformat()
    before = len(reg.history())
    assert main(["challenger", "evaluate", "--dry-run", "--as-of", as_of]) == 3
    out = capsys.readouterr().out
    assert "Decision: REJECT" in out and "dry run" in out
    assert len(reg.history()) == before and reg.challenger() is not None
    assert main(["challenger", "evaluate", "--as-of", as_of]) == 3
    out = capsys.readouterr().out
    assert "Reports:" in out
    assert reg.challenger() is None
    assert [e["event"] for e in reg.history()[-2:]] == ["challenger_evaluated", "challenger"]


def test_watch_status_and_check(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = _setup(settings, tmp_path)
    assert main(["watch", "status"]) == 0
    assert "No watch: v0001 was the first production model" in capsys.readouterr().out
    reg.promote("v0002", "by hand", force=True)
    start = _now(reg)
    rng = np.random.default_rng(2)
    write_log(
        settings.root,
        settings.model_name,
        shadow_rows(rng, 300, ("v0002", 0.8), ("v0001", 0.8), start, days=1),
    )
    as_of = (start + dt.timedelta(days=2)).isoformat()
    assert main(["watch", "check", "--as-of", as_of]) == 0
    assert "Decision: INCONCLUSIVE" in capsys.readouterr().out
    assert main(["watch", "status"]) == 0
    out = capsys.readouterr().out
    assert "Watching    v0002 (new production) against v0001" in out
    assert "Looks       1; last: INCONCLUSIVE on 300 rows" in out
    prod = reg.production()
    assert prod is not None and prod.version == "v0002"


def test_bad_input_is_one_line_exit_2(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(settings, tmp_path)
    assert main(["challenger", "evaluate"]) == 2
    assert capsys.readouterr().err == "error: no challenger is set: nothing to evaluate\n"
    assert main(["watch", "check", "--as-of", "yesterday"]) == 2
    assert "error: --as-of 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
    assert main(["watch", "check", "--margin", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: watch_margin must be in [0, 1)")
