"""2,000,000 rows through prepare -> drift -> train -> compare with a memory budget of 256 MiB,
each stage in a process of its own (tests/scale_pipeline.py) whose peak RSS is checked: at
most 512 MiB for the stages without torch, and at most 1.5 times the budget beyond what each
stage's imports take (torch and scikit-learn alone take about 440 MiB); against the same
stages reading everything whole: the same prepared folder, the same drift report, models as
good, and the same gate on the same two models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from drift_compare import assert_same_report

ROWS = 2_000_000
BUDGET = 256 << 20
RSS_LIMIT_MIB = 512
HELD_LIMIT_MIB = 1.5 * (BUDGET >> 20)
SCRIPT = Path(__file__).with_name("scale_pipeline.py")
pytestmark = pytest.mark.slow


def _write(folder: Path, rows: int, seed: int, shift: float) -> None:
    """12 numeric features (5 % missing), 8 text ones (10 to 1,000 levels, 2 % missing), a
    0/1 target; files of 250,000 rows."""
    folder.mkdir(parents=True)
    levels = [10, 20, 50, 100, 200, 300, 500, 1000]
    for i, start in enumerate(range(0, rows, 250_000)):
        rng = np.random.default_rng([seed, start])
        m = min(250_000, rows - start)
        cols: dict[str, pa.Array] = {}
        signal = np.zeros(m)
        for j in range(12):
            x = rng.normal(loc=shift * (j < 3), size=m)
            signal += x * (0.4 if j < 4 else 0.0)
            x[rng.random(m) < 0.05] = np.nan
            cols[f"num_{j}"] = pa.array(x)
        for j, n in enumerate(levels):
            codes = rng.integers(0, n, m)
            signal += (codes % 4 == 0) * (0.5 if j < 2 else 0.0)
            names = np.array([f"v{k}" for k in range(n)], dtype=object)
            cols[f"cat_{j}"] = pa.array(names[codes], mask=rng.random(m) < 0.02)
        p = 1 / (1 + np.exp(-(signal - 0.8)))
        cols["target"] = pa.array((rng.random(m) < p).astype(np.int64))
        pq.write_table(pa.table(cols), folder / f"part-{i}.parquet")


def _run(mode: str, work: Path) -> dict[str, dict]:
    """Each stage in a process of its own (``tests/scale_pipeline.py``): what it gave."""
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    results = {}
    for stage in ("prepare", "drift", "train", "compare"):
        out = subprocess.run(
            [sys.executable, str(SCRIPT), mode, str(work), str(BUDGET), stage],
            capture_output=True,
            text=True,
            env=env,
            timeout=1500,
        )
        assert out.returncode == 0, f"{mode} {stage}: {out.stderr[-3000:]}"
        results[stage] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def test_two_million_rows_through_every_stage_in_a_256_mib_budget(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "base", ROWS, 1, 0.0)
    _write(tmp_path / "data" / "current", ROWS // 4, 2, 0.3)
    streamed = _run("streamed", tmp_path)
    whole = _run("whole", tmp_path)

    for stage, result in streamed.items():
        # what a stage holds beyond its imports (torch and scikit-learn: about 440 MiB)
        held = result["peak_mib"] - result["imports_mib"]
        assert held <= HELD_LIMIT_MIB, (stage, result["imports_mib"], result["peak_mib"])
        assert whole[stage]["peak_mib"] - whole[stage]["imports_mib"] > held, stage
    for stage in ("prepare", "drift"):  # stages that do not import torch
        assert streamed[stage]["peak_mib"] <= RSS_LIMIT_MIB, (stage, streamed[stage])
    # every stage streamed
    assert streamed["prepare"]["preparation"]["streamed"] is True
    assert streamed["train"]["baseline"]["data_reading"]["streamed"] is True
    assert whole["prepare"]["preparation"] == {}
    assert whole["train"]["baseline"]["data_reading"] is None
    # prepare: the same folder
    assert streamed["prepare"]["sha256"] == whole["prepare"]["sha256"]
    # drift: the same report (the shifted features found drifted both ways)
    assert_same_report(whole["drift"]["report"], streamed["drift"]["report"])
    features = whole["drift"]["report"]["features"]
    assert {"num_0", "num_1", "num_2"} <= {f for f, d in features.items() if d["drifted"]}
    # training: the same data in another order, as good within noise
    for name in ("baseline", "candidate"):
        assert whole["train"][name]["val_auc"] > 0.7
        assert abs(streamed["train"][name]["val_auc"] - whole["train"][name]["val_auc"]) < 0.01
    # the gate: on the same two models, spilled and in memory decide the same way
    spilled, in_memory = streamed["compare"]["result"], whole["compare"]["their_models"]
    assert spilled["decision"] == in_memory["decision"]
    # the curves are points at rounded thresholds: a score moved in its last bit may move one
    for key in ("created_at", "reports", "curves"):
        spilled.pop(key, None)
        in_memory.pop(key, None)
    # the holdout is scored in batches: float32 sums in another blocking move the scores
    # in their last bits (the AUC by 2e-11, a relative AP gain by 5e-8), not the decision
    assert_same_report(in_memory, spilled, rel=1e-6, tol=1e-7)
