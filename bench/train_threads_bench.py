"""Training threads under a competing CPU load: the automatic choice against every fixed one.

Run: ``.venv/bin/python bench/train_threads_bench.py [--rows 200000] [--rounds 3] [--out FILE]``

A second process spins on one core for the whole run (``while True: pass``). Under that load
``model.training.train`` trains the same data (20 numeric features, network 20->64->32->1) at
batch 512 and at batch 4,096, with ``num_threads`` left to the automatic choice
(``model.threads.choose_threads``) and fixed at 1, 2, ... up to the CPUs this process may use
(at most 4). Configurations run interleaved, in a shuffled order each round, so the load any
of them meets is the same on average. Throughput is training samples per second over each
run's epochs after the first (warm-up), each epoch including its validation pass; the figure
per configuration is the median over rounds.

The target (#26): the automatic choice within 10 % of the best fixed choice at both batch sizes.
Writes ``bench/results/train_threads.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.threads import usable_cpus  # noqa: E402
from model.training import TrainParams, train  # noqa: E402

FEATURES = 20
BATCHES = (512, 4096)
TARGET = 0.90
"""The automatic choice must reach this share of the best fixed choice's throughput."""


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    logit = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.4, -0.3], dtype=np.float32)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)]).assign(target=y)
    cut = int(rows * 0.9)
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


def one_run(
    train_df: pd.DataFrame, val_df: pd.DataFrame, batch: int, threads: int | None, epochs: int
) -> tuple[float, dict[str, Any] | None]:
    """(samples per second over the epochs after the first, the thread choice recorded)."""
    params = TrainParams(
        num_epochs=epochs,
        batch_size=batch,
        hidden_sizes=(64, 32),
        patience=None,
        device="cpu",
        num_threads=threads,
    )
    result = train(train_df, val_df, params)
    seconds = [h.seconds for h in result.history[1:]]
    return len(train_df) / statistics.median(seconds), result.threads


def spinner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "train_threads.json"
    )
    args = parser.parse_args()
    for name in ("RETRAIN_THREADS", "OMP_NUM_THREADS"):  # the automatic choice, not a set one
        os.environ.pop(name, None)
    train_df, val_df = make_data(args.rows)
    fixed = list(range(1, min(4, usable_cpus()) + 1))
    configs: list[int | None] = [None, *fixed]
    rng = random.Random(0)
    load_before = os.getloadavg()
    spin = spinner()
    time.sleep(1.0)
    runs: dict[int, dict[str, list[float]]] = {b: {} for b in BATCHES}
    choices: dict[int, list[dict[str, Any] | None]] = {b: [] for b in BATCHES}
    started = time.perf_counter()
    try:
        for round_ in range(args.rounds):
            for batch in BATCHES:
                order = configs[:]
                rng.shuffle(order)
                for threads in order:
                    rate, choice = one_run(train_df, val_df, batch, threads, args.epochs)
                    key = "auto" if threads is None else str(threads)
                    runs[batch].setdefault(key, []).append(rate)
                    if threads is None:
                        choices[batch].append(choice)
                    print(f"round {round_ + 1} batch {batch:>5} threads {key:>4}: {rate:>12,.0f}/s")
    finally:
        spin.kill()
        spin.wait()
    results: dict[str, Any] = {}
    met = True
    for batch in BATCHES:
        medians = {k: statistics.median(v) for k, v in runs[batch].items()}
        best_key = max((k for k in medians if k != "auto"), key=lambda k: medians[k])
        ratio = medians["auto"] / medians[best_key]
        met &= ratio >= TARGET
        results[str(batch)] = {
            "samples_per_s_median": {k: round(v) for k, v in medians.items()},
            "samples_per_s_runs": {k: [round(x) for x in v] for k, v in runs[batch].items()},
            "best_fixed_threads": int(best_key),
            "auto_over_best_fixed": round(ratio, 3),
            "auto_choices": choices[batch],
        }
        print(
            f"batch {batch}: auto {medians['auto']:,.0f} samples/s, best fixed ({best_key} "
            f"threads) {medians[best_key]:,.0f}: ratio {ratio:.3f}"
        )
    out = {
        "bench": "train_threads",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "usable_cpus": usable_cpus(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "setup": {
            "rows_train": len(train_df),
            "rows_validation": len(val_df),
            "features": FEATURES,
            "hidden_sizes": [64, 32],
            "epochs_per_run": args.epochs,
            "rounds": args.rounds,
            "competing_load": "a second process spinning on one core (while True: pass)",
            "measure": "training samples/s over epochs 2.. of each run (validation included)",
        },
        "results": results,
        "target": f"auto >= {TARGET:.0%} of the best fixed choice at batch 512 and 4,096",
        "met": bool(met),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"target {'met' if met else 'NOT met'}; wrote {args.out}")


if __name__ == "__main__":
    main()
