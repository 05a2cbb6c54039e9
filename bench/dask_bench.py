"""Streamed prepare and drift on a Dask cluster against the same calls in one process, in
the same run.

The data is ``scale_bench``'s (12 numeric features, 8 text ones of 10 to 10,000 levels, a 0/1
target, in Parquet files of 1M rows and row groups of 131,072) at ``--rows`` rows, and a
shifted copy for drift. Each stage and mode runs in a process of its own:

- ``prepare``: :func:`model.data.prepare` of the data within ``--budget`` (streamed);
- ``drift``: :func:`model.drift.stream.stream_drift` of the data against the shifted copy;
- mode ``local``: in the process; ``dask``: with a ``LocalCluster`` of ``--workers``
  single-threaded worker processes (:mod:`model.data.stream_parallel`,
  :mod:`model.drift.parallel`), the cluster's start-up timed apart.

Recorded: wall time, per-row cost, the peak RSS (VmHWM) of the calling process and of each
worker, and whether the outputs are equal byte for byte (the split files and the manifest's
content hash; the drift reports' JSON, ``created_at`` aside).

    python bench/dask_bench.py [--rows 10000000] [--budget 2GiB] [--workers 2]
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


def run_one(
    stage: str, mode: str, data: tuple[Path, Path], budget: int, workers: int, out: Path
) -> dict:
    result: dict[str, Any] = {"stage": stage, "mode": mode}
    cluster = client = executor = None
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
        if stage == "prepare":
            result.update(_prepare(data[0], Path(scratch), budget, executor, out))
        else:
            result.update(_drift(data, Path(scratch), budget, executor, out))
        seconds = time.perf_counter() - t0
    result.update(
        seconds=round(seconds, 2),
        ns_per_row=round(seconds / result["rows"] * 1e9, 1),
        peak_rss_mib=round(vm_hwm_mib(), 1),
    )
    if client is not None and cluster is not None:
        peaks = client.run(vm_hwm_mib)
        result["worker_peak_rss_mib"] = sorted(round(v, 1) for v in peaks.values())
        client.close()
        cluster.close()
    return result


def _prepare(data: Path, scratch: Path, budget: int, executor: Any, out: Path) -> dict:
    from model.data import prepare

    manifest = prepare([data], scratch / "prepared", memory_budget=budget, executor=executor)
    files = {s.file: s.sha256 for s in manifest.splits.values()}
    out.write_text(json.dumps({"sha256": manifest.sha256, "files": files}, sort_keys=True))
    return {"rows": manifest.rows, "preparation": manifest.preparation}


def _drift(data: tuple[Path, Path], scratch: Path, budget: int, executor: Any, out: Path) -> dict:
    from model.clock import at
    from model.data import FeatureSpec
    from model.drift import DriftSettings
    from model.drift.stream import stream_drift

    spec = FeatureSpec(
        numeric=[f"num_{j}" for j in range(12)],
        categorical=[f"cat_{j}" for j in range(8)],
        target="target",
    )
    with at(datetime(2026, 12, 1, tzinfo=UTC)):  # the report's created_at
        report = stream_drift(
            data[0],
            data[1],
            spec,
            DriftSettings(seed=3),
            memory_budget=budget,
            scratch_dir=scratch,
            executor=executor,
            reference_path="reference",
            current_path="current",
        )
    out.write_text(json.dumps(report.to_dict(), sort_keys=True))
    return {
        "rows": report.reference["rows"] + report.current["rows"],
        "drifted": report.drifted_features,
    }


def main() -> None:
    from scale_bench import write_data

    from model.settings import parse_memory_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--budget", default="2GiB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", nargs=5, metavar=("STAGE", "MODE", "DATA", "SHIFTED", "OUT"))
    args = parser.parse_args()
    budget = parse_memory_size(args.budget)
    if args.one:
        stage, mode, data, shifted, out = args.one
        data_pair = (Path(data), Path(shifted))
        print(json.dumps(run_one(stage, mode, data_pair, budget, args.workers, Path(out))))
        return
    scratch = Path(os.environ.get("BENCH_SCRATCH") or tempfile.gettempdir()) / "dask-bench"
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = write_data(scratch / f"rows-{args.rows}", args.rows, 0.0)
    shifted = write_data(scratch / f"rows-{args.rows}", args.rows, 0.3)
    print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for stage in ("prepare", "drift"):
        results[stage] = {}
        for mode in ("local", "dask"):
            out = scratch / f"{stage}-{mode}.json"
            command = [sys.executable, __file__, "--budget", args.budget]
            command += ["--workers", str(args.workers), "--one", stage, mode]
            command += [str(data), str(shifted), str(out)]
            proc = subprocess.run(command, capture_output=True, text=True, check=True)
            results[stage][mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(results[stage][mode]), flush=True)
        outputs = [(scratch / f"{stage}-{mode}.json").read_bytes() for mode in ("local", "dask")]
        results[stage]["same_output"] = outputs[0] == outputs[1]
        local, dask = results[stage]["local"], results[stage]["dask"]
        results[stage]["speedup"] = round(local["seconds"] / dask["seconds"], 2)
    record = {
        "bench": "dask",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": args.rows,
        "memory_budget": budget,
        "workers": args.workers,
        "results": results,
    }
    path = ROOT / "bench" / "results" / "dask.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({s: {k: results[s][k] for k in ("same_output", "speedup")} for s in results}))


if __name__ == "__main__":
    main()
