"""Benchmark ``retrain backtest --demo``: the demo's 12 monthly batches with injected drift,
replayed through the real cycle for the configured policy, never and always.

Runs the command as a user would (a fresh ``RETRAIN_HOME``, the virtualenv built), once with
the policies one after the other and once on a Dask LocalCluster of 2 workers, and records the
wall time, the trainings the training cache saved, and the numbers the README quotes
(configured against 'retrain always'). Writes bench/results/backtest.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "backtest.json"


def _run(workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "RETRAIN_HOME": home}
        command = [sys.executable, "-m", "model.cli", "backtest", "--demo", "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*command, "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"backtest failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    summaries = {p["name"]: p["summary"] for p in result["policies"]}
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "flow_wall_s": result["compute"]["wall_seconds"],
        "trainings_run": result["compute"]["trainings_run"],
        "trainings_reused": result["compute"]["trainings_reused"],
        "training_seconds_by_policy": {k: v["training_seconds"] for k, v in summaries.items()},
        "mean_auc": {k: v["mean_auc"] for k, v in summaries.items()},
        "trainings": {k: v["trainings"] for k, v in summaries.items()},
        "versus_always": result["versus_reference"],
    }


def main() -> None:
    import torch

    load_start = os.getloadavg()
    runs = [_run(1), _run(2)]
    result = {
        "benchmark": "backtest",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average": {"start": load_start, "end": os.getloadavg()},
        },
        "command": "retrain backtest --demo --json [--workers 2]",
        "data": "demo timeline: 10,000 rows over 6 months, then 12 monthly batches of 2,000 "
        "rows, drift 1.0 from June; policies configured, never retrain, retrain always",
        "runs": runs,
        "target": "a few minutes from a fresh clone (README)",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
