"""Streaming drift benchmark: one numeric and one categorical column at ``rows`` rows
(bounded memory) beside the in-memory path at ``rows / 10`` (the reference), same run.

Run: ``.venv/bin/python bench/drift_stream_bench.py [--rows 100000000] [--budget-mib 256]
[--keep DIR] [--out FILE]``

Data (written once as Parquet, 2M-row row groups, then read by every run): a reference and
a current side of ``rows`` rows each, a numeric column ``x`` (normal, rounded to 4 decimals:
continuous with ties; the current side shifted by 0.01 SD) and a categorical column ``c``
(10,000 integer levels, Zipf-like; the current side mildly reweighted). The reference
case is the first tenth of each side's rows, in its own files.

Ours: :func:`model.drift.stream.stream_column_drift` per column with ``memory_budget`` =
``--budget-mib`` (the numeric column sorted on disk, its statistics from passes over the
sorted files; the categorical one's counts added batch by batch).
Reference: the in-memory path at a tenth of the rows: ``model.data.read_table`` of each side,
then ``numeric_drift`` and ``categorical_drift`` on the whole columns.

Each runs in a subprocess of its own; recorded: wall time (reading included), the peak RSS
of the process (``VmHWM``) and its growth over the RSS after imports, and the per-row cost.
The in-memory path is also run at full size when ``rows`` is at most ``--full-memory-max``
(its statistics must then equal the streaming ones: KS, p-value, PSI and the categorical
statistics exactly, W1 to 1e-9). Writes ``bench/results/drift_stream.json``.
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
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
GROUP = 2_000_000
LEVELS = 10_000

_RUN = r"""
import json, sys, time
import numpy as np
from model.drift.numeric import numeric_drift
from model.drift.categorical import categorical_drift

def status(key):  # kB
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

mode, ref, cur, budget, scratch = sys.argv[1:6]
numeric_drift("warm", np.arange(50.0), np.arange(60.0), 10)  # imports, first calls
import pandas as pd
categorical_drift("warm", pd.Series([1, 2]), pd.Series([2, 3]))
from model.drift.stream import stream_column_drift
from model.data import read_table
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
t0 = time.perf_counter()
if mode == "stream":
    num = stream_column_drift("x", "numeric", ref, cur, memory_budget=int(budget),
                              scratch_dir=scratch)
    cat = stream_column_drift("c", "categorical", ref, cur, memory_budget=int(budget))
else:
    r, c = read_table(ref), read_table(cur)
    num = numeric_drift("x", r["x"].to_numpy(dtype="float64"), c["x"].to_numpy(dtype="float64"), 10)
    cat = categorical_drift("c", r["c"], c["c"])
seconds = time.perf_counter() - t0
peak = status("VmHWM")
print(json.dumps({
    "seconds": seconds, "peak_rss_mib": peak / 1024, "rss_growth_mib": (peak - before) / 1024,
    "numeric": {"statistic": num.statistic, "p_value": num.p_value, "psi": num.psi,
                "wasserstein": num.summary["wasserstein"]},
    "categorical": {"statistic": cat.statistic, "p_value": cat.p_value, "psi": cat.psi,
                    "distance": cat.distance},
}))
"""


def write_side(folder: Path, rows: int, seed: int, shift: float) -> None:
    """``rows`` rows in 2M-row row groups, the first tenth in ``tenth/``, the rest in ``rest/``."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, LEVELS + 1) ** 0.8
    if shift:
        weights = weights * (1 + 0.1 * np.sin(np.arange(LEVELS)))
    weights /= weights.sum()
    schema = pa.schema([("x", pa.float64()), ("c", pa.int32())])
    tenth = rows // 10
    for part, count in (("tenth", tenth), ("rest", rows - tenth)):
        (folder / part).mkdir(parents=True)
        with pq.ParquetWriter(folder / part / "data.parquet", schema) as writer:
            for start in range(0, count, GROUP):
                k = min(GROUP, count - start)
                x = np.round(rng.normal(shift, 1.0, k), 4)
                c = rng.choice(LEVELS, size=k, p=weights).astype(np.int32)
                writer.write_table(pa.table({"x": x, "c": c}, schema=schema), row_group_size=GROUP)


def run(mode: str, ref: Path, cur: Path, budget: int, scratch: Path) -> dict[str, Any]:
    """One measured run in a fresh process (``mode``: ``stream`` or ``memory``)."""
    out = subprocess.run(
        [sys.executable, "-c", _RUN, mode, str(ref), str(cur), str(budget), str(scratch)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if out.returncode:
        raise SystemExit(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    same = all(a["numeric"][k] == b["numeric"][k] for k in ("statistic", "p_value", "psi"))
    same &= a["categorical"] == b["categorical"]
    w_a, w_b = a["numeric"]["wasserstein"], b["numeric"]["wasserstein"]
    return bool(same and abs(w_a - w_b) <= 1e-9 * max(1.0, abs(w_a)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--budget-mib", type=int, default=256)
    parser.add_argument("--full-memory-max", type=int, default=20_000_000)
    parser.add_argument("--keep", type=Path, help="data folder to reuse (made when missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/drift_stream.json")
    args = parser.parse_args()
    budget = args.budget_mib << 20
    data = args.keep or Path(tempfile.mkdtemp(prefix="drift-stream-bench-"))
    t0 = time.perf_counter()
    generate_s: float | None = None  # None: the data of --keep was reused
    if not (data / "ref").exists():
        write_side(data / "ref", args.rows, seed=1, shift=0.0)
        write_side(data / "cur", args.rows, seed=2, shift=0.01)
        generate_s = round(time.perf_counter() - t0, 1)
    sides = {s: data / s for s in ("ref", "cur")}  # both its subfolders
    tenth = {s: data / s / "tenth" for s in ("ref", "cur")}
    scratch = data / "scratch"
    scratch.mkdir(exist_ok=True)
    rows_tenth = args.rows // 10
    results: dict[str, Any] = {
        "stream": run("stream", sides["ref"], sides["cur"], budget, scratch),
        "memory_tenth": run("memory", tenth["ref"], tenth["cur"], budget, scratch),
        "stream_tenth": run("stream", tenth["ref"], tenth["cur"], budget, scratch),
    }
    if args.rows <= args.full_memory_max:
        results["memory"] = run("memory", sides["ref"], sides["cur"], budget, scratch)
    per_row = {
        "stream_ns": 1e9 * results["stream"]["seconds"] / (2 * args.rows),
        "memory_tenth_ns": 1e9 * results["memory_tenth"]["seconds"] / (2 * rows_tenth),
    }
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
        },
        "rows_per_side": args.rows,
        "reference_rows_per_side": rows_tenth,
        "memory_budget_mib": args.budget_mib,
        "generate_s": generate_s,
        "results": results,
        "per_row_cost": {**per_row, "ratio": per_row["stream_ns"] / per_row["memory_tenth_ns"]},
        "tenth_agrees": agree(results["stream_tenth"], results["memory_tenth"]),
        "full_agrees": agree(results["stream"], results["memory"]) if "memory" in results else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
