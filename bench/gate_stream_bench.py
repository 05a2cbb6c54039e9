"""The gate in bounded memory: the spilled comparison against the in-memory one.

Each measurement runs in a process of its own, which reports its wall time and peak RSS
(``resource.getrusage``). Scores are generated in chunks (two binormal models, 30 %
positives, the baseline rounded to 3 decimals so ties occur), spilled, and measured with
every statistic of the gate (:func:`model.gate.measure.measure_spilled_rows`); the reference
is :func:`model.gate.measure.measure` on the same rows in memory, in the same run. A smaller
size is measured both ways to show the numbers are the same.

    python bench/gate_stream_bench.py [--rows 20000000] [--reference-rows 10000000]
        [--budget 256MiB] [--resamples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 1 << 20
KW: dict[str, Any] = {"primary": "auc", "threshold": 0.005, "level": 0.05, "seed": 7}


def chunks(n: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The rows in chunks: (y, baseline scores, candidate scores), reproducible."""
    for a in range(0, n, CHUNK):
        rng = np.random.default_rng([11, a])
        m = min(CHUNK, n - a)
        y = (rng.random(m) < 0.3).astype(np.int8)
        sb = np.round(1 / (1 + np.exp(-(rng.normal(size=m) + 1.0 * y))), 3)
        sc = 1 / (1 + np.exp(-(rng.normal(size=m) + 1.1 * y)))
        yield y, sb, sc


def run_one(mode: str, n: int, budget: int, resamples: int) -> dict:
    from model.gate.measure import measure, measure_spilled_rows
    from model.gate.spill import SpillWriter

    t0 = time.perf_counter()
    if mode == "memory":
        parts = list(chunks(n))
        y, sb, sc = (np.concatenate([p[i] for p in parts]) for i in range(3))
        del parts
        pop = measure("holdout", y, sb, sc, 0.5, 0.5, n_bootstrap=resamples, **KW)
    else:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_SCRATCH")) as d:
            writer = SpillWriter(Path(d) / "spill")
            for y, sb, sc in chunks(n):
                writer.write(y, sb, sc)
            rows = writer.close(budget)
            pop = measure_spilled_rows("holdout", rows, 0.5, 0.5, n_bootstrap=resamples, **KW)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "mode": mode,
        "rows": n,
        "seconds": round(seconds, 2),
        "ns_per_row": round(seconds / n * 1e9, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "decision_auc_diff": pop.metrics["auc"].improvement,
        "delong_se": pop.delong.se if pop.delong else None,
        "bootstrap_sd": pop.bootstrap["sd"] if pop.bootstrap else None,
    }


def measure_in_child(mode: str, n: int, budget: int, resamples: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n), str(budget), str(resamples)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--reference-rows", type=int, default=10_000_000)
    parser.add_argument("--check-rows", type=int, default=1_000_000)
    parser.add_argument("--budget", default="256MiB")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        mode, n, budget, resamples = args.child
        print(json.dumps(run_one(mode, int(n), int(budget), int(resamples))))
        return
    from model.settings import parse_memory_size

    budget = parse_memory_size(args.budget)
    runs = {
        "check_memory": measure_in_child("memory", args.check_rows, budget, args.resamples),
        "check_spilled": measure_in_child("spilled", args.check_rows, budget, args.resamples),
        "reference_memory": measure_in_child("memory", args.reference_rows, budget, args.resamples),
        "spilled": measure_in_child("spilled", args.rows, budget, args.resamples),
    }
    same = runs["check_memory"]["bootstrap_sd"] == runs["check_spilled"]["bootstrap_sd"]
    diff = abs(runs["check_memory"]["delong_se"] - runs["check_spilled"]["delong_se"])
    ratio = runs["spilled"]["ns_per_row"] / runs["reference_memory"]["ns_per_row"]
    result = {
        "benchmark": "the gate's statistics (DeLong, 8 metrics, paired Poisson bootstrap, "
        "curves) on a holdout spilled to disk in a memory budget vs in memory",
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(),
        },
        "memory_budget_mib": budget >> 20,
        "resamples": args.resamples,
        "runs": runs,
        "same_bootstrap_bit_for_bit": same,
        "delong_se_difference": diff,
        "per_row_cost_ratio_spilled_vs_memory": round(ratio, 2),
        "targets": {
            "peak_rss_at_most_4_gib": runs["spilled"]["peak_rss_mib"] <= 4096,
            "per_row_cost_within_1_5x": ratio <= 1.5,
        },
    }
    out = ROOT / "bench" / "results" / "gate_stream.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
