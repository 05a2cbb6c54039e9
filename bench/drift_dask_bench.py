"""Streamed drift on a Dask cluster against the same drift in one process, in the same run.

The data is ``scale_bench``'s (12 numeric features, 8 text ones of 10 to 10,000 levels, a 0/1
target, in Parquet files of 1M rows and row groups of 131,072) at ``--rows`` rows a side, the
current side shifted. Each mode runs in a process of its own:

- ``local``: :func:`model.drift.stream.stream_drift` within ``--budget``;
- ``dask``: the same call with a ``LocalCluster`` of ``--workers`` single-threaded worker
  processes (:mod:`model.drift.parallel`), the cluster's start-up timed apart.

Recorded: wall time, per-row cost, the peak RSS (VmHWM) of the calling process and of each
worker, and whether the two reports are equal byte for byte (their JSON, ``created_at``
aside).

    python bench/drift_dask_bench.py [--rows 10000000] [--budget 2GiB] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def vm_hwm_mib() -> float:
    """This process's peak RSS since it started (MiB)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def run_one(mode: str, ref: Path, cur: Path, budget: int, workers: int, out: Path) -> dict:
    from model.clock import at
    from model.data import FeatureSpec
    from model.drift import DriftSettings
    from model.drift.stream import stream_drift

    spec = FeatureSpec(
        numeric=[f"num_{j}" for j in range(12)],
        categorical=[f"cat_{j}" for j in range(8)],
        target="target",
    )
    result: dict[str, Any] = {"mode": mode}
    cluster = client = None
    executor = None
    if mode == "dask":
        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        executor = client.get_executor()
        result["cluster_start_s"] = round(time.perf_counter() - t0, 2)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_SCRATCH")) as scratch:
        t0 = time.perf_counter()
        with at(datetime(2026, 12, 1, tzinfo=UTC)):
            report = stream_drift(
                ref,
                cur,
                spec,
                DriftSettings(seed=3),
                memory_budget=budget,
                scratch_dir=scratch,
                executor=executor,
                reference_path="reference",
                current_path="current",
            )
        seconds = time.perf_counter() - t0
    rows = report.reference["rows"] + report.current["rows"]
    result.update(
        rows=rows,
        seconds=round(seconds, 2),
        ns_per_row=round(seconds / rows * 1e9, 1),
        peak_rss_mib=round(vm_hwm_mib(), 1),
        drifted=report.drifted_features,
    )
    if client is not None and cluster is not None:
        peaks = client.run(vm_hwm_mib)
        result["worker_peak_rss_mib"] = sorted(round(v, 1) for v in peaks.values())
        client.close()
        cluster.close()
    out.write_text(json.dumps(report.to_dict(), sort_keys=True))
    return result


def main() -> None:
    from scale_bench import write_data

    from model.settings import parse_memory_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--budget", default="2GiB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", nargs=4, metavar=("MODE", "REF", "CUR", "OUT"))
    args = parser.parse_args()
    budget = parse_memory_size(args.budget)
    if args.one:
        mode, ref, cur, out = args.one
        result = run_one(mode, Path(ref), Path(cur), budget, args.workers, Path(out))
        print(json.dumps(result))
        return
    scratch = Path(os.environ.get("BENCH_SCRATCH") or tempfile.gettempdir()) / "drift-dask"
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ref = write_data(scratch / f"rows-{args.rows}", args.rows, 0.0)
    cur = write_data(scratch / f"rows-{args.rows}", args.rows, 0.3)
    print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)
    results = {}
    for mode in ("local", "dask"):
        out = scratch / f"report-{mode}.json"
        proc = subprocess.run(
            [
                *(sys.executable, __file__, "--budget", args.budget),
                *("--workers", str(args.workers), "--one", mode, str(ref), str(cur), str(out)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[mode]), flush=True)
    reports = [(scratch / f"report-{mode}.json").read_bytes() for mode in ("local", "dask")]
    same = reports[0] == reports[1]
    record = {
        "bench": "drift_dask",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows_per_side": args.rows,
        "memory_budget": budget,
        "workers": args.workers,
        "results": results,
        "same_report": same,
        "speedup": round(results["local"]["seconds"] / results["dask"]["seconds"], 2),
    }
    path = ROOT / "bench" / "results" / "drift_dask.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("same_report", "speedup")}))


if __name__ == "__main__":
    main()
