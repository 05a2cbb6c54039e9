"""``prepare`` in bounded memory: the streamed preparation against reading the data whole.

The data: ``--rows`` rows of 12 numeric features (5 % missing) and 8 categorical ones (10 to
10,000 text levels, 2 % missing) and a 0/1 target, written in chunks of 1M rows as the
Parquet files of one folder. Each measurement runs in a process of its own, which reports
its wall time and peak RSS (``resource.getrusage``): the streamed preparation
(``memory_budget``) of ``--rows``, and the in-memory one of ``--reference-rows`` (the
reference per-row cost, in the same run). A smaller size is prepared both ways to show the
folders are the same (content hash and split files).

    python bench/prepare_stream_bench.py [--rows 10000000] [--reference-rows 2000000]
        [--check-rows 300000] [--budget 256MiB]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 1_000_000
LEVELS = [10, 30, 100, 300, 1000, 3000, 10_000, 10_000]


def write_data(folder: Path, rows: int) -> Path:
    """The data set in ``folder`` (made once per size)."""
    done = folder / f"rows-{rows}"
    if (done / "_complete").exists():
        return done
    shutil.rmtree(done, ignore_errors=True)
    done.mkdir(parents=True)
    for i, a in enumerate(range(0, rows, CHUNK)):
        rng = np.random.default_rng([5, a])
        m = min(CHUNK, rows - a)
        columns: dict[str, pa.Array] = {}
        signal = np.zeros(m)
        for j in range(12):
            x = rng.normal(size=m) * (j + 1)
            signal += x / (j + 1) * (0.3 if j < 4 else 0.0)
            x[rng.random(m) < 0.05] = np.nan
            columns[f"num_{j}"] = pa.array(x)
        for j, levels in enumerate(LEVELS):
            codes = rng.integers(0, levels, m)
            signal += (codes % 3 == 0) * (0.2 if j < 2 else 0.0)
            text = np.array([f"c{j}_{k}" for k in range(levels)], dtype=object)[codes]
            mask = rng.random(m) < 0.02
            columns[f"cat_{j}"] = pa.array(text, mask=mask)
        columns["target"] = pa.array((rng.random(m) < 1 / (1 + np.exp(-signal))).astype(np.int64))
        pq.write_table(pa.table(columns), done / f"part-{i:04d}.parquet", row_group_size=1 << 17)
    (done / "_complete").write_text("")
    return done


def run_one(mode: str, data: Path, budget: int) -> dict:
    from model.data import prepare

    out = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_SCRATCH")))
    try:
        t0 = time.perf_counter()
        manifest = prepare([data], out, memory_budget=budget if mode == "streamed" else None)
        seconds = time.perf_counter() - t0
        files = {s.file: s.sha256 for s in manifest.splits.values()}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "mode": mode,
        "rows": manifest.rows,
        "seconds": round(seconds, 2),
        "ns_per_row": round(seconds / manifest.rows * 1e9, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "content_hash": manifest.sha256,
        "split_files_sha256": files,
        "preparation": manifest.preparation,
    }


def measure_in_child(mode: str, data: Path, budget: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(data), str(budget)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reference-rows", type=int, default=2_000_000)
    parser.add_argument("--check-rows", type=int, default=300_000)
    parser.add_argument("--budget", default="256MiB")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        mode, data, budget = args.child
        print(json.dumps(run_one(mode, Path(data), int(budget))))
        return
    from model.settings import parse_memory_size

    budget = parse_memory_size(args.budget)
    scratch = Path(os.environ.get("BENCH_SCRATCH") or tempfile.gettempdir()) / "prepare-bench"
    sizes = {"check": args.check_rows, "reference": args.reference_rows, "big": args.rows}
    data = {name: write_data(scratch, n) for name, n in sizes.items()}
    runs = {
        "check_memory": measure_in_child("memory", data["check"], budget),
        "check_streamed": measure_in_child("streamed", data["check"], budget),
        "reference_memory": measure_in_child("memory", data["reference"], budget),
        "streamed": measure_in_child("streamed", data["big"], budget),
    }
    same = (
        runs["check_memory"]["content_hash"] == runs["check_streamed"]["content_hash"]
        and runs["check_memory"]["split_files_sha256"]
        == runs["check_streamed"]["split_files_sha256"]
    )
    ratio = runs["streamed"]["ns_per_row"] / runs["reference_memory"]["ns_per_row"]
    result = {
        "benchmark": "prepare (validate, impute with training medians, hash split, write) "
        "streamed from Parquet in a memory budget vs read whole",
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(),
        },
        "memory_budget_mib": budget >> 20,
        "features": {"numeric": 12, "categorical": 8, "levels": LEVELS},
        "runs": runs,
        "same_folder_both_ways": same,
        "per_row_cost_ratio_streamed_vs_memory": round(ratio, 2),
        "reference_rss_over_streamed": round(
            runs["reference_memory"]["peak_rss_mib"] / runs["streamed"]["peak_rss_mib"], 2
        ),
        "targets": {
            "peak_rss_at_most_4_gib": runs["streamed"]["peak_rss_mib"] <= 4096,
            "per_row_cost_within_1_5x": ratio <= 1.5,
        },
    }
    out = ROOT / "bench" / "results" / "prepare_stream.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
