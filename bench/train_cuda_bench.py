"""GPU training benchmark: the CUDA-graph training path against straightforward GPU loops.

Run: ``.venv/bin/python bench/train_cuda_bench.py [--rows 1000000] [--epochs 5] [--out FILE]``
(skips, writing nothing, where CUDA is not available; ``--device cpu`` runs the same cases on
the CPU as a smoke test).

Data: the lab's demo customers (10 numeric features), ``--rows`` training rows and 50,000
validation rows; network 10->64->32->1, ReLU, dropout 0.2, Adam lr 1e-2, early stopping off.

Cases, all in one run on one device:
- ``ours`` with CUDA graphs at batch 4,096 (the user's opt-in ``cuda_batch_size=4096``) and at
  the recommended batch 512; the same without graphs (``cuda_graphs=False``: the eager loop).
  Throughput = training rows / epoch seconds, where an epoch includes its validation pass
  (loss and AUC on 50,000 rows); the median and the worst (slowest) epoch are reported, and
  the end-to-end seconds (encoding, capture, final metrics).
- ``reference_dataloader``: what a tutorial writes (``DataLoader(TensorDataset)`` on host
  tensors, ``.to(device)`` per batch, ``zero_grad/backward/step``, ``loss.item()`` per step),
  at batch 4,096, timed on 150 batches.
- ``reference_sliced``: the plain fast loop (tensors on the GPU, ``randperm``, slicing,
  ``torch.optim.Adam(fused=True)``, no per-step ``item()``), one epoch at batch 4,096.
- AUC: the same parameters trained on the CPU path (batch 4,096 and 512); the validation AUC
  must be within 0.005 of the GPU path's.
Writes ``bench/results/train_cuda.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
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
from model.training import TrainParams, train  # noqa: E402

FEATURES = list(DEMO_NUMERIC)
SPEC = FeatureSpec(numeric=FEATURES)
TARGET_SPS = 3_000_000


def params(device: str, epochs: int, batch: int, graphs: bool = True) -> TrainParams:
    return TrainParams(
        num_epochs=epochs,
        batch_size=512,
        cuda_batch_size=batch if device == "cuda" else None,
        learning_rate=1e-2,
        patience=None,
        device=device,
        cuda_graphs=graphs,
        seed=7,
    )


def ours(
    train_df: pd.DataFrame, val_df: pd.DataFrame, p: TrainParams, batch: int
) -> dict[str, Any]:
    if p.device == "cpu":
        p = p.with_overrides(batch_size=batch)
    t0 = time.perf_counter()
    result = train(train_df, val_df, p, spec=SPEC)
    total = time.perf_counter() - t0
    epochs = [h.seconds for h in result.history]
    rows = len(train_df)
    return {
        "batch_size": result.params.batch_size,
        "cuda_graphs": p.cuda_graphs,
        "epochs": len(epochs),
        "epoch_seconds": [round(s, 5) for s in epochs],
        "samples_per_second_median": rows / statistics.median(epochs),
        "samples_per_second_worst": rows / max(epochs),
        "seconds_end_to_end": total,
        "val_auc": result.val_metrics["auc"],
        "device": result.device,
    }


def _standardized(train_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x = train_df[FEATURES].to_numpy(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    return x, train_df["target"].to_numpy(np.float32)


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Linear(len(FEATURES), 64),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(32, 1),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_dataloader(
    train_df: pd.DataFrame, device: str, batch: int, batches: int
) -> dict[str, Any]:
    x, y = _standardized(train_df)
    dev = torch.device(device)
    torch.manual_seed(1)
    net = _net().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch, shuffle=True
    )
    seen, running = 0, 0.0
    _sync(dev)
    t0 = time.perf_counter()
    for i, (xb, yb) in enumerate(loader):
        if i >= batches:
            break
        xb, yb = xb.to(dev), yb.to(dev)
        opt.zero_grad()
        loss = loss_fn(net(xb).squeeze(1), yb)
        loss.backward()
        opt.step()
        running += loss.item()
        seen += len(xb)
    _sync(dev)
    seconds = time.perf_counter() - t0
    return {"batch_size": batch, "batches": batches, "samples_per_second": seen / seconds}


def reference_sliced(train_df: pd.DataFrame, device: str, batch: int) -> dict[str, Any]:
    x, y = _standardized(train_df)
    dev = torch.device(device)
    torch.manual_seed(1)
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    net = _net().to(dev)
    try:
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    except (RuntimeError, ValueError):
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    n = len(yt)
    _sync(dev)
    t0 = time.perf_counter()
    perm = torch.randperm(n, device=dev)
    xs, ys = xt[perm], yt[perm]
    for b0 in range(0, n, batch):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xs[b0 : b0 + batch]).squeeze(1), ys[b0 : b0 + batch])
        loss.backward()
        opt.step()
    _sync(dev)
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        score = net(xt[:50_000]).squeeze(1).float().cpu().numpy()
    return {
        "batch_size": batch,
        "samples_per_second": n / seconds,
        "train_auc_sanity": float(roc_auc_score(y[:50_000], score)),
    }


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "load_average_before": os.getloadavg(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            info["nvidia_smi_before"] = smi.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["nvidia_smi_before"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_cuda.json")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: skipping the GPU training benchmark (nothing written).")
        return 0
    dev = args.device
    report: dict[str, Any] = {"machine": machine(dev)}
    df = make_customers(args.rows + 50_000, seed=7)
    train_df, val_df = df.iloc[: args.rows], df.iloc[args.rows :]
    report["data"] = {"train_rows": len(train_df), "val_rows": len(val_df), "features": FEATURES}
    print(f"GPU training benchmark on {dev}: {len(train_df):,} rows", flush=True)
    cases: dict[str, dict[str, Any]] = {}
    train(train_df.iloc[:20_000], val_df, params(dev, 1, 4096), spec=SPEC)  # CUDA context, cuBLAS
    for name, batch, graphs in (
        ("graphs_4096", 4096, True),
        ("graphs_512", 512, True),
        ("eager_4096", 4096, False),
        ("eager_512", 512, False),
    ):
        cases[name] = ours(train_df, val_df, params(dev, args.epochs, batch, graphs), batch)
        c = cases[name]
        print(
            f"  ours {name}: median {c['samples_per_second_median']:,.0f} samples/s, worst "
            f"{c['samples_per_second_worst']:,.0f}; {c['seconds_end_to_end']:.2f}s end to end; "
            f"val AUC {c['val_auc']:.4f}",
            flush=True,
        )
    report["ours"] = cases
    report["reference_dataloader"] = reference_dataloader(train_df, dev, 4096, 150)
    report["reference_sliced"] = reference_sliced(train_df, dev, 4096)
    print(
        f"  reference DataLoader {report['reference_dataloader']['samples_per_second']:,.0f} "
        f"samples/s, sliced {report['reference_sliced']['samples_per_second']:,.0f}",
        flush=True,
    )
    auc: dict[str, Any] = {}
    for batch in (4096, 512):
        cpu = ours(train_df, val_df, params("cpu", args.epochs, batch), batch)
        gpu = cases[f"graphs_{batch}"]
        diff = gpu["val_auc"] - cpu["val_auc"]
        auc[str(batch)] = {
            "cpu_val_auc": cpu["val_auc"],
            "gpu_val_auc": gpu["val_auc"],
            "difference": diff,
            "cpu_samples_per_second_median": cpu["samples_per_second_median"],
            "met": bool(abs(diff) <= 0.005),
        }
        print(f"  AUC batch {batch}: cpu {cpu['val_auc']:.4f} gpu {gpu['val_auc']:.4f}", flush=True)
    report["auc_vs_cpu"] = auc
    best = cases["graphs_4096"]
    report["target"] = {
        "what": f">= {TARGET_SPS:,} samples/s at batch 4,096 (worst epoch), AUC within 0.005",
        "samples_per_second_worst": best["samples_per_second_worst"],
        "speedup_vs_dataloader": best["samples_per_second_median"]
        / report["reference_dataloader"]["samples_per_second"],
        "speedup_vs_sliced": best["samples_per_second_median"]
        / report["reference_sliced"]["samples_per_second"],
        "graphs_vs_eager_4096": best["samples_per_second_median"]
        / cases["eager_4096"]["samples_per_second_median"],
        "graphs_vs_eager_512": cases["graphs_512"]["samples_per_second_median"]
        / cases["eager_512"]["samples_per_second_median"],
        "met": bool(
            best["samples_per_second_worst"] >= TARGET_SPS and all(a["met"] for a in auc.values())
        ),
    }
    report["machine"]["load_average_after"] = os.getloadavg()
    print(json.dumps(report["target"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
