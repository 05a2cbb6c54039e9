"""Training benchmark: the project's ``train`` against a straightforward DataLoader loop.

Run: ``.venv/bin/python bench/train_bench.py [--device cpu|cuda] [--seeds 3] [--out FILE]``

On the lab's demo data (first 8,000 rows train, last 2,000 validation, 10 numeric features,
network 10->64->32->1, ReLU, dropout 0.2, Adam lr 1e-3):

1. Lab configuration (50 epochs, batch 32, early stopping off), both implementations, mean of
   3 seeds: seconds per epoch, validation AUC, speed ratio.
2. Recommended configuration (``model.training.RECOMMENDED``): time from the start of ``train``
   until the first epoch whose validation AUC reaches the reference's mean AUC, against the
   reference's full training time; plus the final (best-epoch) AUC and total time.
3. Throughput: samples per second at 1,000,000 rows, batch 1024 (same network).

The reference is what a tutorial would write: ``DataLoader(TensorDataset(X, y), batch_size,
shuffle=True)``, ``nn.Sequential``, ``BCEWithLogitsLoss``, ``optimizer.zero_grad()``,
``running_loss += loss.item()``, torch's default thread count; its time covers the training
loop only (standardisation done before, not timed). Ours is timed end to end: fitting the
preprocessing, encoding, per-epoch validation loss + AUC, final metrics.
Writes ``bench/results/train.json`` (``train_cuda.json`` with ``--device cuda``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import FeatureSpec  # noqa: E402
from model.data.demo import DEMO_NUMERIC, make_customers  # noqa: E402
from model.training import LAB, RECOMMENDED, TrainParams, train  # noqa: E402

FEATURES = DEMO_NUMERIC


def customers(rows: int, seed: int) -> pd.DataFrame:
    """The lab's demo data (DESIGN.md "Demo data")."""
    return make_customers(rows, seed=seed)


def reference_net(dropout: float = 0.2) -> nn.Module:
    return nn.Sequential(
        nn.Linear(10, 64),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(32, 1),
    )


def standardized(train_df: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x = train_df[FEATURES].to_numpy(np.float32)
    mu, sd = x.mean(0), x.std(0)
    return (x - mu) / sd, (other[FEATURES].to_numpy(np.float32) - mu) / sd


def reference_train(
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    device: str,
    max_batches: int | None = None,
) -> dict[str, float]:
    """The straightforward loop. Returns seconds (training loop) and validation AUC."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    net = reference_net().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    ds = TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ytr.astype(np.float32)))
    t0 = time.perf_counter()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True)
    seen = 0
    for _ in range(epochs):
        net.train()
        running = 0.0
        for i, (xb, yb) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            xb, yb = xb.to(dev), yb.to(dev)
            opt.zero_grad()
            loss = loss_fn(net(xb).squeeze(1), yb)
            loss.backward()
            opt.step()
            running += loss.item()
            seen += len(xb)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        scores = torch.sigmoid(net(torch.from_numpy(xva).to(dev)).squeeze(1)).cpu().numpy()
    return {"seconds": seconds, "val_auc": float(roc_auc_score(yva, scores)), "samples": seen}


def ours_train(
    train_df: pd.DataFrame, val_df: pd.DataFrame, params: TrainParams, target_auc: float | None
) -> dict[str, Any]:
    spec = FeatureSpec(numeric=list(FEATURES))
    t0 = time.perf_counter()
    reached: list[float] = []
    curve: list[tuple[float, float]] = []

    def on_epoch(stats: Any) -> None:
        elapsed = time.perf_counter() - t0
        curve.append((round(elapsed, 4), round(stats.val_auc, 5)))
        if target_auc is not None and not reached and stats.val_auc >= target_auc:
            reached.append(elapsed)

    result = train(train_df, val_df, params, on_epoch=on_epoch, spec=spec)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "val_auc": result.val_metrics["auc"],
        "seconds_to_target": reached[0] if reached else None,
        "epoch_seconds": [h.seconds for h in result.history],
        "curve": curve,
    }


def _summary(runs: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    secs = [r["seconds"] for r in runs]
    return {
        "seconds_mean": float(np.mean(secs)),
        "seconds_min": float(np.min(secs)),
        "seconds_per_epoch_mean": float(np.mean(secs)) / epochs,
        "seconds_per_epoch_min": float(np.min(secs)) / epochs,
        "val_auc": float(np.mean([r["val_auc"] for r in runs])),
        "runs": [{k: v for k, v in r.items() if k != "curve"} for r in runs],
    }


def lab_comparison(device: str, seeds: list[int]) -> dict[str, Any]:
    df = customers(10_000, seed=42)
    train_df, val_df = df.iloc[:8000], df.iloc[8000:]
    xtr, xva = standardized(train_df, val_df)
    ytr, yva = train_df["target"].to_numpy(), val_df["target"].to_numpy()
    lab = LAB.with_overrides(device=device)
    epochs = lab.num_epochs
    default_threads = torch.get_num_threads()
    ref_runs, ref1_runs, our_runs = [], [], []

    def reference(seed: int, threads: int) -> dict[str, Any]:
        torch.set_num_threads(threads)
        try:
            return reference_train(
                xtr,
                ytr,
                xva,
                yva,
                epochs=epochs,
                batch_size=lab.batch_size,
                seed=seed,
                device=device,
            )
        finally:
            torch.set_num_threads(default_threads)

    for seed in seeds:  # interleaved, so that machine noise hits all alike
        ref_runs.append(reference(seed, default_threads))
        ref1_runs.append(reference(seed, 1))
        our_runs.append(ours_train(train_df, val_df, lab.with_overrides(seed=seed), None))
        print(
            f"  seed {seed}: reference {ref_runs[-1]['seconds']:.2f}s "
            f"(1 thread {ref1_runs[-1]['seconds']:.2f}s) auc {ref_runs[-1]['val_auc']:.4f} | "
            f"ours {our_runs[-1]['seconds']:.2f}s auc {our_runs[-1]['val_auc']:.4f}",
            flush=True,
        )
    ref, ref1, ours = (_summary(r, epochs) for r in (ref_runs, ref1_runs, our_runs))
    ref_auc = ref["val_auc"]
    # the conservative baseline: the faster of the two reference variants (min over seeds)
    base_s = min(ref["seconds_min"], ref1["seconds_min"])
    print(f"  recommended configuration, target AUC {ref_auc:.4f}", flush=True)
    rec_runs = [
        ours_train(train_df, val_df, RECOMMENDED.with_overrides(seed=s, device=device), ref_auc)
        for s in seeds
    ]
    for s, r in zip(seeds, rec_runs, strict=True):
        print(
            f"  seed {s}: recommended {r['seconds']:.2f}s ({r['epochs']} epochs, best "
            f"{r['best_epoch']}) auc {r['val_auc']:.4f}; reached target after "
            f"{r['seconds_to_target']}s",
            flush=True,
        )
    to_target = [r["seconds_to_target"] for r in rec_runs]
    reached_all = all(t is not None for t in to_target)
    rec_to_target = max(to_target) if reached_all else None  # the slowest seed
    rec_auc = float(np.mean([r["val_auc"] for r in rec_runs]))
    rec_s = float(np.mean([r["seconds"] for r in rec_runs]))
    speedup_min = base_s / ours["seconds_min"]
    auc_diff = ours["val_auc"] - ref_auc
    return {
        "data": {"train_rows": len(train_df), "val_rows": len(val_df), "features": FEATURES},
        "lab_config": {
            "params": {
                "num_epochs": epochs,
                "batch_size": lab.batch_size,
                "learning_rate": lab.learning_rate,
                "patience": None,
                "dropout": 0.2,
                "hidden_sizes": [64, 32],
            },
            "reference": ref,
            "reference_1_thread": ref1,
            "ours": ours,
            "speedup_per_epoch_mean": ref["seconds_mean"] / ours["seconds_mean"],
            "speedup_per_epoch_min": speedup_min,
            "speedup_basis": "min over seeds; baseline = faster of reference (default threads) "
            "and reference with 1 thread",
            "auc_difference": auc_diff,
            "target": "speedup >= 2 and |auc difference| <= 0.005",
            "met": bool(speedup_min >= 2 and abs(auc_diff) <= 0.005),
        },
        "recommended": {
            "params": RECOMMENDED.to_dict(),
            "target_auc": ref_auc,
            "seconds_to_target_slowest_seed": rec_to_target,
            "reached_in_all_seeds": reached_all,
            "baseline_seconds": base_s,
            "speedup_to_target": base_s / rec_to_target if rec_to_target else None,
            "seconds_total_mean": rec_s,
            "speedup_total": base_s / rec_s,
            "val_auc_final": rec_auc,
            "auc_cost_vs_reference": ref_auc - rec_auc,
            "auc_cost_vs_ours_lab": ours["val_auc"] - rec_auc,
            "runs": rec_runs,
            "target": "time to reach the reference's validation AUC >= 10x less",
            "met": bool(rec_to_target and base_s / rec_to_target >= 10),
        },
    }


def throughput(device: str, rows: int = 1_000_000, batch: int = 1024) -> dict[str, Any]:
    big = customers(rows, seed=7)
    val = customers(20_000, seed=8)
    params = TrainParams(num_epochs=2, batch_size=batch, patience=None, device=device)
    result = ours_train(big, val, params, None)
    epoch_s = min(result["epoch_seconds"])
    worst_s = max(result["epoch_seconds"])
    xtr, xva = standardized(big, val)
    ref_batches = 200  # the reference is slow; time a slice of one epoch and extrapolate
    ref = reference_train(
        xtr,
        big["target"].to_numpy(),
        xva,
        val["target"].to_numpy(),
        epochs=1,
        batch_size=batch,
        seed=1,
        device=device,
        max_batches=ref_batches,
    )
    ours_sps = rows / epoch_s
    ref_sps = ref["samples"] / ref["seconds"]
    print(f"  throughput: ours {ours_sps:,.0f} samples/s, reference {ref_sps:,.0f}", flush=True)
    return {
        "rows": rows,
        "batch_size": batch,
        "ours_samples_per_second": ours_sps,
        "ours_epoch_seconds": epoch_s,
        "worst_case_samples_per_second": rows / worst_s,
        "worst_case": "the slowest epoch",
        "ours_threads": "auto (model.training.default_threads)",
        "reference_samples_per_second": ref_sps,
        "reference_measured_batches": ref_batches,
        "target": "ours >= 300,000 samples/s",
        "met": bool(rows / worst_s >= 300_000),
    }


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "device": device,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "note": "machine shared with other processes; timings are noisy, ratios matter",
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: skipping the cuda benchmark.")
        return 0
    seeds = [42 + i for i in range(args.seeds)]
    name = "train.json" if args.device == "cpu" else "train_cuda.json"
    out = args.out or ROOT / "bench" / "results" / name
    print(f"training benchmark on {args.device}, seeds {seeds}", flush=True)
    report: dict[str, Any] = {"machine": machine(args.device)}
    report.update(lab_comparison(args.device, seeds))
    if not args.skip_throughput:
        report["throughput"] = throughput(args.device)
    lab, rec = report["lab_config"], report["recommended"]
    print(
        f"lab config: reference {lab['reference']['seconds_per_epoch_min'] * 1000:.1f} ms/epoch "
        f"(1 thread {lab['reference_1_thread']['seconds_per_epoch_min'] * 1000:.1f}), ours "
        f"{lab['ours']['seconds_per_epoch_min'] * 1000:.1f} ms/epoch (min over seeds) -> "
        f"{lab['speedup_per_epoch_min']:.2f}x; AUC {lab['reference']['val_auc']:.4f} vs "
        f"{lab['ours']['val_auc']:.4f}"
    )
    if rec["speedup_to_target"]:
        print(
            f"recommended: reaches {rec['target_auc']:.4f} in "
            f"{rec['seconds_to_target_slowest_seed']:.3f}s (slowest seed) vs "
            f"{rec['baseline_seconds']:.2f}s -> {rec['speedup_to_target']:.1f}x; final AUC "
            f"{rec['val_auc_final']:.4f} in {rec['seconds_total_mean']:.2f}s"
        )
    report["machine"]["load_average_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
