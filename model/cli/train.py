"""``retrain train``: train a candidate model on a prepared-data folder and save it."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch: imported inside the command
    from model.training import EpochStats, TrainParams

PRESET_NAMES = ("default", "lab", "recommended")
"""``--preset``: the names of :func:`presets` (torch is imported only to train)."""


def presets() -> dict[str, TrainParams]:
    from model.training import LAB, RECOMMENDED, TrainParams

    return {"default": TrainParams(), "lab": LAB, "recommended": RECOMMENDED}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a candidate model on prepared data",
        description=(
            "Train the tabular MLP on <data>/train.parquet, early-stop on val.parquet, and write "
            "model.pt + model.json to --out. Parameters not given come from --preset."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="prepared data folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="default",
        help="default: lab parameters with early stopping; lab: exactly the lab's; "
        "recommended: batch 512, lr 1e-2, patience 10 (much faster)",
    )
    p.add_argument("--epochs", dest="num_epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", dest="learning_rate", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--patience", type=int, help="0 turns early stopping off")
    p.add_argument("--hidden", type=str, help="hidden sizes, e.g. 64,32")
    p.add_argument("--dropout", type=float)
    p.add_argument("--activation")
    p.add_argument("--class-weight", action="store_true", default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threshold", dest="threshold_strategy", choices=["fixed", "f1"])
    p.add_argument("--target", dest="target_column")
    p.add_argument("--threads", dest="num_threads", type=int)
    p.add_argument("--reason", default=None, help="training reason recorded in model.json")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=run_train)


def _hidden_sizes(text: str) -> tuple[int, ...]:
    """``--hidden 64,32`` as (64, 32): one or more positive integers, nothing left empty."""
    from model.data.messages import quote
    from model.training import TrainingParamsError

    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise TrainingParamsError(
            f"--hidden: expected comma-separated positive layer sizes such as 64,32, "
            f"got {quote(text)}"
        )
    return sizes


def params_from_args(args: argparse.Namespace) -> TrainParams:
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "num_epochs",
            "batch_size",
            "learning_rate",
            "weight_decay",
            "dropout",
            "activation",
            "class_weight",
            "seed",
            "device",
            "threshold_strategy",
            "target_column",
            "num_threads",
        )
    }
    if args.hidden is not None:  # --hidden '' is an error, not the default
        overrides["hidden_sizes"] = _hidden_sizes(args.hidden)
    from model.training import TrainingParamsError

    params = presets()[args.preset].with_overrides(**overrides)
    if args.patience is not None:
        if args.patience < 0:
            raise TrainingParamsError(
                f"--patience must be >= 0 (0 turns early stopping off), got {args.patience}"
            )
        params = replace(params, patience=args.patience if args.patience > 0 else None)
    return params


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4f}"


def run_train(args: argparse.Namespace) -> int:
    from model.settings import get_settings
    from model.training import TrainingParamsError, train_prepared

    params = params_from_args(args)
    if args.out.exists() and not args.out.is_dir():
        raise TrainingParamsError(f"--out {args.out} is a file; give a model folder")

    def on_epoch(s: EpochStats) -> None:
        if not args.quiet:
            mark = " *" if s.improved else ""
            print(
                f"epoch {s.epoch:3d}/{params.num_epochs}  train_loss {_fmt(s.train_loss)}  "
                f"val_loss {_fmt(s.val_loss)}  val_auc {_fmt(s.val_auc)}  {s.seconds:.2f}s{mark}",
                flush=True,
            )

    extra = {"training_reason": args.reason} if args.reason else None
    folder, result = train_prepared(
        args.data,
        args.out,
        params,
        on_epoch,
        extra_metadata=extra,
        memory_budget=get_settings().memory_budget,
    )
    vm = result.val_metrics
    print(
        f"best epoch {result.best_epoch} of {len(result.history)} "
        f"({'early stop' if result.stopped_early else 'all epochs'}), {result.seconds:.1f}s on "
        f"{result.device}"
    )
    print(
        "validation: "
        + "  ".join(
            f"{k} {_fmt(vm[k])}"
            for k in ("auc", "average_precision", "log_loss", "accuracy", "f1", "threshold")
        )
    )
    print(f"model written to {folder}")
    return 0
