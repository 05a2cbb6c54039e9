"""The everyday commands answer without loading torch or scikit-learn (issue 24, item 7).

Each command runs in a fresh interpreter (nothing imported before it), on a working root with
a registry and a prediction log, and the test reads ``sys.modules`` after it returned. The
time it takes is a benchmark (``bench/cli_bench.py``), not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import REPO_ROOT, make_model

from model.cli.data import DEFAULT_SPLIT_TEXT
from model.data import DEFAULT_SPLIT, prepare
from model.registry import ModelRegistry
from model.serving.features import Batch
from model.serving.log import PredictionLog
from model.serving.models import Scored

PROBE = """
import json, sys
from model.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help exits
    code = exc.code
heavy = sorted(m for m in ("torch", "sklearn") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def run_fresh(home: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO_ROOT,
        env={**os.environ, "RETRAIN_HOME": str(home), "RETRAIN_MODEL_NAME": "demo"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A working root with one registered and promoted version (trained, per its manifest, on
    a small prepared data set: labels are checked against its classes) and a prediction log."""
    home = tmp_path / "home"
    raw = home / "data" / "demo" / "raw" / "customers.csv"
    raw.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "customer": [str(i) for i in range(200)],
            "x": rng.normal(size=200),
            "churned": rng.integers(0, 2, 200),
        }
    ).to_csv(raw, index=False)
    manifest = prepare(
        [raw], home / "data" / "demo" / "prepared", target="churned", id_column="customer"
    )
    model = make_model(tmp_path / "m1")
    meta = json.loads((model / "model.json").read_text())
    meta["data_manifest"] = {"path": str(manifest.path.relative_to(home))}
    (model / "model.json").write_text(json.dumps(meta))
    registry = ModelRegistry(home / "models" / "demo")
    version = registry.register(model)
    registry.promote(version, "first", force=True)
    log = PredictionLog(home / "predictions" / "demo", "id", ["x"], [])
    n = 4
    ids = ["1", "2", "3", "4"]
    batch = Batch(np.zeros((n, 1), np.float32), np.zeros((n, 0), np.int64), ids, {"x": [0.0] * n})
    scores = np.linspace(0.2, 0.8, n)
    log.append(Scored(batch, scores, (scores > 0.5).astype(np.int8), [version] * n, ["p"] * n))
    assert log.flush() == n
    pd.DataFrame({"customer": ["1", "2"], "churned": [0, 1]}).to_csv(home / "l.csv", index=False)
    return home


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["status"],
        ["history", "-n", "1"],
        ["versions"],
        ["gate", "status"],
        ["labels", "add", "{home}/l.csv", "--id-column", "customer", "--label-column", "churned"],
        ["compare", "--help"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_everyday_commands_load_neither_torch_nor_sklearn(home: Path, args: list[str]) -> None:
    result = run_fresh(home, *(a.format(home=home) for a in args))
    assert result["code"] == 0, result
    assert result["heavy"] == [], f"retrain {' '.join(args)} imported {result['heavy']}"


def test_the_probe_sees_torch_when_a_command_loads_it(home: Path) -> None:
    """The check can fail: `retrain train --help` stays light, `train` itself loads torch."""
    result = run_fresh(home, "train", "--data", str(home / "none"), "--out", str(home / "o"))
    assert result["code"] == 2  # no prepared data there
    assert "torch" in result["heavy"]


def test_compare_parses_its_options_when_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from model.cli import compare, main

    with pytest.raises(SystemExit) as exc:
        main(["compare", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--candidate" in out and "--test-data" in out and "retrain compare" in out
    with pytest.raises(SystemExit) as exc:
        main(["status", "--no-such-option"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    compare.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "--new", "c", "--test-data", "t", "--threshold", "0.1"])
    assert (args.new, args.test_data, args.threshold) == ("c", "t", 0.1)


def test_split_default_text_matches_the_data_default() -> None:
    assert tuple(float(x) for x in DEFAULT_SPLIT_TEXT.split(",")) == tuple(DEFAULT_SPLIT)
