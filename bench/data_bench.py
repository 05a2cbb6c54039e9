"""Benchmark of ``model.data.prepare`` on the demo data set (default 10,000,000 rows).

Generates the data (outside the measurement), then runs each preparation in a fresh child
process and reports its time and peak RSS (``RUSAGE_CHILDREN`` of a small launcher process,
cross-checked with the child's VmHWM) above a fresh process's baseline with the same imports,
next to the Arrow size (nbytes) of the input table. Compares with a straightforward reference:
pandas read + per-row Python hashing (timed on a sample, extrapolated). Also measures the demo
data's drift figures (KS tests, AUC of old / retrained models). Writes bench/results/data.json.

    .venv/bin/python bench/data_bench.py            # 10M rows (about 1.5 GB of disk in /tmp)
    .venv/bin/python bench/data_bench.py --rows 1000000 --skip-drift
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 60.0
TARGET_MEMORY_RATIO = 3.0

CHILD_PRELUDE = """
import json, os, resource, sys, time
cpus = int(sys.argv[1])
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])
import numpy, pandas, pyarrow, pyarrow.parquet
pyarrow.set_cpu_count(cpus)
import model.data
def vm_hwm():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
def report(**extra):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"self_maxrss_bytes": rss, "vm_hwm_bytes": vm_hwm(), **extra}))
"""

GENERATE = (
    CHILD_PRELUDE
    + """
from model.data.demo import make_customers
path, rows = sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
table = pyarrow.Table.from_pandas(make_customers(rows, seed=42), preserve_index=False)
pyarrow.parquet.write_table(table, path)
report(arrow_nbytes=table.nbytes, columns=table.num_columns, seconds=time.perf_counter() - t0)
"""
)

BASELINE = CHILD_PRELUDE + "report()\n"

PREPARE = (
    CHILD_PRELUDE
    + """
src, out, detect_id = sys.argv[2], sys.argv[3], sys.argv[4] == "1"
t0 = time.perf_counter()
m = model.data.prepare(src, out, detect_id=detect_id, exclude=() if detect_id else ("id",))
seconds = time.perf_counter() - t0
report(seconds=seconds, key=m.split["key"], rows={k: v.rows for k, v in m.splits.items()})
"""
)

REFERENCE = (
    CHILD_PRELUDE
    + """
import hashlib
src, sample = sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
df = pandas.read_parquet(src)
read_s = time.perf_counter() - t0
part = df.iloc[:sample]
t0 = time.perf_counter()
splits = []
for row in part.itertuples(index=False):
    h = int.from_bytes(hashlib.sha256(repr(tuple(row)).encode()).digest()[:8], "little")
    u = h / 2**64
    splits.append(0 if u < 0.7 else 1 if u < 0.85 else 2)
hash_s = time.perf_counter() - t0
report(read_seconds=read_s, hash_seconds_sample=hash_s, sample=len(part), rows=len(df))
"""
)


LAUNCHER = """
import json, resource, subprocess, sys
proc = subprocess.run([sys.executable, "-c", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(proc.stderr)
if proc.returncode:
    sys.exit(proc.returncode)
report = json.loads(proc.stdout.strip().splitlines()[-1])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
report["rusage_children_maxrss_bytes"] = usage.ru_maxrss * 1024
print(json.dumps(report))
"""
"""Runs one measured child from a small stdlib-only process, so that the child's ru_maxrss
(which starts from its parent's RSS at fork on Linux) is not inflated by this process."""


def run_child(code: str, *args: str) -> tuple[dict[str, Any], float]:
    """Run ``code`` in a fresh interpreter (via LAUNCHER): its JSON report and wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def machine_info(cpus: int) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_count": os.cpu_count(),
        "cpus_used": cpus,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "pandas": version("pandas"),
        "pyarrow": version("pyarrow"),
        "torch": version("torch"),
        "scikit-learn": version("scikit-learn"),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def generate(path: Path, rows: int, cpus: int) -> dict[str, Any]:
    """Write the demo data set in a child process (keeps this process small, see peak_rss)."""
    report, _ = run_child(GENERATE, str(cpus), str(path), str(rows))
    return {
        "rows": rows,
        "columns": report["columns"],
        "arrow_nbytes": report["arrow_nbytes"],
        "file_bytes": path.stat().st_size,
        "generate_seconds": round(report["seconds"], 2),
    }


def peak_rss(report: dict[str, Any]) -> int:
    """Peak RSS of a measured child: RUSAGE_CHILDREN of its launcher (VmHWM if unavailable)."""
    return int(report.get("rusage_children_maxrss_bytes") or report["vm_hwm_bytes"])


def measure_prepare(src: Path, work: Path, cpus: int, detect_id: bool, base: int, nbytes: int):
    out = work / ("prepared-id" if detect_id else "prepared-rowhash")
    report, wall = run_child(PREPARE, str(cpus), str(src), str(out), str(int(detect_id)))
    peak = peak_rss(report)
    above = peak - base
    shutil.rmtree(out, ignore_errors=True)
    return {
        "key": report["key"],
        "split_rows": report["rows"],
        "seconds": round(report["seconds"], 2),
        "child_wall_seconds": round(wall, 2),
        "peak_rss_bytes": peak,
        "self_ru_maxrss_bytes": report["self_maxrss_bytes"],
        "rusage_children_maxrss_bytes": report["rusage_children_maxrss_bytes"],
        "rss_above_baseline_bytes": above,
        "rss_above_baseline_over_arrow_nbytes": round(above / nbytes, 3),
        "meets_time_target": report["seconds"] <= TARGET_SECONDS,
        "meets_memory_target": above <= TARGET_MEMORY_RATIO * nbytes,
    }


def measure_reference(src: Path, cpus: int, rows: int, sample: int) -> dict[str, Any]:
    report, _ = run_child(REFERENCE, str(cpus), str(src), str(sample))
    per_row = report["hash_seconds_sample"] / report["sample"]
    estimate = report["read_seconds"] + per_row * rows
    return {
        "method": "pandas.read_parquet + per-row sha256(repr(row)) (extrapolated from sample)",
        "read_seconds": round(report["read_seconds"], 2),
        "sample_rows": report["sample"],
        "hash_us_per_row": round(per_row * 1e6, 2),
        "estimated_seconds": round(estimate, 1),
        "peak_rss_bytes": peak_rss(report),
    }


def measure_drift(seeds: tuple[int, ...] = (42, 7, 123)) -> dict[str, Any]:
    """KS rejections (2,000 rows per side) and AUCs of old / retrained models per drift level."""
    import numpy as np
    from scipy.stats import ks_2samp
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model.data.demo import DEMO_FEATURES, DRIFT_RECIPE, make_customers

    makers = {
        "logistic_regression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        ),
        "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(random_state=0),
    }
    levels: dict[str, Any] = {}
    for drift in (0.0, 0.25, 0.5, 0.75, 1.0):
        rows: dict[str, Any] = {"ks_rejected": [], "positive_rate": []}
        aucs: dict[str, dict[str, list[float]]] = {
            m: {"old_on_base": [], "old_on_drifted": [], "retrained_on_drifted": []} for m in makers
        }
        for seed in seeds:
            base = make_customers(10_000, seed=seed)
            drifted = make_customers(10_000, seed=seed, drift=drift, batch=1)
            rejected = [
                f
                for f in DEMO_FEATURES
                if ks_2samp(base[f][:2000], drifted[f][:2000], method="asymp").pvalue < 0.05
            ]
            rows["ks_rejected"].append(len(rejected))
            rows["positive_rate"].append(float(drifted["target"].mean()))
            for name, make in makers.items():
                old = make().fit(base[DEMO_FEATURES][:8000], base["target"][:8000])
                new = make().fit(drifted[DEMO_FEATURES][:8000], drifted["target"][:8000])

                def auc(model: Any, df: Any) -> float:
                    scores = model.predict_proba(df[DEMO_FEATURES][8000:])[:, 1]
                    return float(roc_auc_score(df["target"][8000:], scores))

                aucs[name]["old_on_base"].append(auc(old, base))
                aucs[name]["old_on_drifted"].append(auc(old, drifted))
                aucs[name]["retrained_on_drifted"].append(auc(new, drifted))
        summary: dict[str, Any] = {
            "ks_rejected_of_10": rows["ks_rejected"],
            "positive_rate": round(float(np.mean(rows["positive_rate"])), 3),
        }
        for name, values in aucs.items():
            mean = {k: round(float(np.mean(v)), 3) for k, v in values.items()}
            mean["loss"] = round(mean["old_on_base"] - mean["old_on_drifted"], 3)
            mean["recovered"] = round(mean["retrained_on_drifted"] - mean["old_on_drifted"], 3)
            summary[name] = mean
        levels[str(drift)] = summary
    return {
        "seeds": list(seeds),
        "train_rows": 8000,
        "test_rows": 2000,
        "levels": levels,
        "recipe": DRIFT_RECIPE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--sample", type=int, default=200_000, help="reference hashing sample")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch (default: a tmp dir)")
    parser.add_argument("--skip-drift", action="store_true")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="data-bench-", dir=args.workdir))
    try:
        src = work / "customers.parquet"
        data = generate(src, args.rows, args.cpus)
        print(f"generated {args.rows:,} rows: {data}", flush=True)
        baseline, _ = run_child(BASELINE, str(args.cpus))
        base_rss = peak_rss(baseline)
        results: dict[str, Any] = {
            "benchmark": "model.data.prepare",
            "machine": machine_info(args.cpus),
            "targets": {"seconds": TARGET_SECONDS, "rss_over_arrow_nbytes": TARGET_MEMORY_RATIO},
            "input": data,
            "baseline_rss_bytes": base_rss,
        }
        nbytes = data["arrow_nbytes"]
        results["prepare_id_key"] = measure_prepare(src, work, args.cpus, True, base_rss, nbytes)
        print("prepare (id key):", results["prepare_id_key"], flush=True)
        results["prepare_row_hash"] = measure_prepare(src, work, args.cpus, False, base_rss, nbytes)
        print("prepare (row-value hash):", results["prepare_row_hash"], flush=True)
        if not args.skip_reference:
            ref = measure_reference(src, args.cpus, args.rows, args.sample)
            ref["speedup_vs_row_hash"] = round(
                ref["estimated_seconds"] / results["prepare_row_hash"]["seconds"], 1
            )
            results["reference"] = ref
            print("reference:", ref, flush=True)
        if not args.skip_drift:
            results["demo_drift"] = measure_drift()
            print("drift:", json.dumps(results["demo_drift"]["levels"], indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
