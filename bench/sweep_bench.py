"""Benchmark candidate sweeps: 4 configurations on a 2-worker Dask LocalCluster vs sequential.

1. Data: 1,000,000 synthetic rows (10 features), prepared once. The epochs are calibrated so
   that the fastest candidate trains >= 30 s.
2. Sequential: the 4 candidates one after another in this process (``train_prepared``, each
   at its default thread count, as a run without a sweep trains).
3. Sweep: the same 4 through the sweep's own code path (``flows.sweep.train_all`` on a
   ``DaskTaskRunner``), on a LocalCluster of 2 single-threaded worker processes whose
   ``PREFECT_API_URL`` is the parent's; the cluster's start-up is timed separately.
4. The flow's fixed overhead with K = 1 (no sweep): ``bench/flow_bench.py``'s first cycle on
   10,000 demo rows, to compare with its recorded figure (and check no Dask is imported).

Writes bench/results/sweep.json with the load average: the machine is shared (2 cores).
Target: sequential / sweep >= 1.6.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "sweep.json"
SMOKE = "--smoke" in sys.argv
"""``--smoke``: 20,000 rows, 1 s per candidate, nothing written (checks the script runs)."""
ROWS = 20_000 if SMOKE else 1_000_000
MIN_CANDIDATE_S = 1.0 if SMOKE else 30.0
SWEEP: dict[str, Any] = {"hidden_sizes": [[64, 32], [128, 64]], "learning_rate": [0.01, 0.003]}


def _data(root: Path) -> str:
    from model.data import prepare

    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 10)).astype(np.float32)
    logit = x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.3 * np.sin(3 * x[:, 4])
    frame = pd.DataFrame({f"f{i}": x[:, i] for i in range(10)})
    frame["id"] = np.arange(ROWS)
    frame["target"] = (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    raw = root / "raw.parquet"
    frame.to_parquet(raw)
    return str(prepare([raw], root / "prepared", id_column="id").path)


def _candidates(epochs: int) -> list[dict[str, Any]]:
    from model.cycle.sweep import SweepSpec, candidates

    base: dict[str, Any] = {"num_epochs": epochs, "batch_size": 512, "patience": None, "seed": 42}
    base |= {"hidden_sizes": [64, 32], "learning_rate": 0.01, "dropout": 0.2}
    return [c.params(base) for c in candidates(SweepSpec.model_validate(SWEEP), 42)]


def _calibrate(prepared: str, out: Path) -> tuple[int, float]:
    """Epochs for the fastest candidate (64-32) to train >= MIN_CANDIDATE_S: two epochs timed,
    the slower one counted (loading the data is not an epoch), 10 % margin."""
    from model.training import train_prepared

    params = {**_candidates(2)[0], "num_epochs": 2}
    _, result = train_prepared(prepared, out / "calibrate", params)
    epoch = max(h.seconds for h in result.history)
    return max(1, math.ceil(1.1 * MIN_CANDIDATE_S / epoch)), epoch


def _sequential(prepared: str, out: Path, epochs: int) -> dict[str, Any]:
    from model.training import train_prepared

    seconds = []
    t0 = time.perf_counter()
    for i, params in enumerate(_candidates(epochs), start=1):
        t = time.perf_counter()
        train_prepared(prepared, out / f"seq-{i}", params)
        seconds.append(round(time.perf_counter() - t, 2))
    return {"total_s": round(time.perf_counter() - t0, 2), "per_candidate_s": seconds}


def _sweep(prepared: str, out: Path, epochs: int) -> dict[str, Any]:
    from distributed import LocalCluster
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    from flows.sweep import parent_api_url, train_all, worker_environment

    api_url = parent_api_url()
    t0 = time.perf_counter()
    with worker_environment():  # the workers' environment the sweep gives them
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"PREFECT_API_URL": api_url} if api_url else {},
        )
    startup = time.perf_counter() - t0
    params = [{"num_threads": 1, **p} for p in _candidates(epochs)]
    try:
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        t1 = time.perf_counter()
        with temporary_settings({PREFECT_API_URL: api_url} if api_url else {}):
            folders = train_all.with_options(task_runner=runner)(  # type: ignore[arg-type]
                prepared, str(out / "sweep"), params, {}, "bench"
            )
        total = time.perf_counter() - t1
    finally:
        cluster.close()
    seconds = []
    for folder in folders:
        meta = json.loads((Path(folder) / "model.json").read_text())
        seconds.append(meta["training"]["seconds"])
    return {
        "cluster_startup_s": round(startup, 2),
        "total_s": round(total, 2),
        "per_candidate_training_s": seconds,
        "prefect_api_url_of_workers": api_url,
    }


def _k1_overhead(home: Path) -> dict[str, Any]:
    """The first cycle of bench/flow_bench.py (10,000 demo rows), without a sweep."""
    os.environ["RETRAIN_HOME"] = str(home)
    from flows.retraining import retraining
    from model.data.demo import write_demo
    from model.settings import get_settings

    write_demo(get_settings(), rows=10_000, seed=42)
    t0 = time.perf_counter()
    result = retraining(id_column="id", min_hours_between_trainings=0.0)
    seconds = time.perf_counter() - t0
    recorded = json.loads((ROOT / "bench" / "results" / "flow.json").read_text())
    return {
        "first_cycle_s": round(seconds, 2),
        "status": result.status,
        "flow_bench_first_cycle_s": recorded["flow_default_configuration"]["first_cycle_s"],
        "dask_imported": any(m in sys.modules for m in ("distributed", "prefect_dask")),
    }


def main() -> None:
    import torch
    from prefect import flow

    @flow(name="warm-up")
    def warm_up() -> None:
        return None

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["RETRAIN_HOME"] = str(home)
        warm_up()  # the embedded server starts here, outside every timing
        k1 = _k1_overhead(Path(tmp) / "k1")
        os.environ["RETRAIN_HOME"] = str(home)
        t = time.perf_counter()
        prepared = _data(Path(tmp))
        prepare_s = time.perf_counter() - t
        epochs, one_epoch = _calibrate(prepared, Path(tmp))
        load_before_runs = os.getloadavg()
        sequential = _sequential(prepared, Path(tmp), epochs)
        load_mid = os.getloadavg()
        sweep = _sweep(prepared, Path(tmp), epochs)
    ratio = sequential["total_s"] / sweep["total_s"]
    result = {
        "benchmark": "sweep",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average": {
                "start": load_start,
                "before_sequential": load_before_runs,
                "before_sweep": load_mid,
                "end": os.getloadavg(),
            },
            "note": "2 cores shared with other agents' processes: timings are noisy",
        },
        "data": f"{ROWS:,} synthetic rows x 10 features (prepared in {prepare_s:.1f} s)",
        "candidates": SWEEP,
        "training": {
            "batch_size": 512,
            "epochs": epochs,
            "calibration_epoch_64_32_s": round(one_epoch, 2),
        },
        "sequential": sequential,
        "sweep_2_workers": sweep,
        "ratio_sequential_over_sweep": round(ratio, 2),
        "ratio_including_cluster_startup": round(
            sequential["total_s"] / (sweep["total_s"] + sweep["cluster_startup_s"]), 2
        ),
        "target_ratio": 1.6,
        "k1_flow_overhead": k1,
    }
    print(json.dumps(result, indent=2))
    if SMOKE:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
