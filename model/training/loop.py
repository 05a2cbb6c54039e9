"""Training the candidate model: ``train(train_df, val_df, params, on_epoch=None)``.

The hot loop is built for small tabular networks, where per-step overhead dominates:
tensors are built once and shuffled once per epoch (a seeded ``randperm`` + ``index_select``),
batches are views (slices), dropout masks are drawn in bulk, gradients come from
``torch.autograd.grad`` and go straight into one fused Adam kernel, and nothing synchronises
with Python inside an epoch (losses are summed on the device, read once per epoch).
Validation loss and AUC are computed once per epoch, vectorised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from torch import Tensor

from model.data import FeatureSpec, infer_spec
from model.errors import DataValidationError
from model.threads import ThreadChoice, choose_threads, thread_scope
from model.training.cuda import auc_on_device, graphed_epoch_or_none
from model.training.network import Preprocessor, TabularModel, build_model
from model.training.params import (
    DEFAULT_TARGET,
    EpochCallback,
    EpochStats,
    TrainingDivergedError,
    TrainingParamsError,
    TrainParams,
    TrainResult,
)

# --------------------------------------------------------------------------- helpers


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingParamsError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def thread_choice(params: TrainParams) -> ThreadChoice:
    """The CPU threads a training run uses (``model.threads.choose_threads``): the user's
    ``num_threads``, else 1 for small steps or on 2 CPUs or fewer, else the free CPUs (up to 4)."""
    return choose_threads(params.num_threads, work=params.batch_size * max(params.hidden_sizes))


def default_threads(params: TrainParams) -> int:
    """The number of threads ``thread_choice`` picks."""
    return thread_choice(params).threads


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's (and numba's and Arrow's) pools at ``n`` threads inside."""
    with thread_scope(n):
        yield


def binary_target(series: pd.Series, source: str) -> np.ndarray:
    """A 0/1 (or boolean) target column as float32; anything else is an error."""
    if series.isna().any():
        raise DataValidationError(
            f"{source}: target column {series.name!r} has {int(series.isna().sum())} missing values"
        )
    values = series.to_numpy()
    if values.dtype == bool:
        return values.astype(np.float32)
    try:
        y = values.astype(np.float64)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"{source}: target column {series.name!r} must be 0/1 or boolean, "
            f"got dtype {series.dtype}"
        ) from None
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise DataValidationError(
            f"{source}: target column {series.name!r} must hold only 0 and 1; "
            f"found e.g. {sorted(set(values[bad].tolist()))[:5]}"
        )
    return y.astype(np.float32)


def auc_or_nan(y: np.ndarray, scores: np.ndarray) -> float:
    if len(np.unique(y)) < 2 or not np.isfinite(scores).all():
        return float("nan")
    return float(skm.roc_auc_score(y, scores))


def f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on (y, scores)."""
    if len(np.unique(y)) < 2:
        return 0.5
    precision, recall, thresholds = skm.precision_recall_curve(y, scores)
    p, r = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def binary_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC, average precision, log loss, Brier and threshold metrics for one split."""
    pred = (scores >= threshold).astype(np.int8)
    yi = y.astype(np.int8)
    two = len(np.unique(yi)) == 2
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    return {
        "auc": auc_or_nan(y, scores),
        "average_precision": float(skm.average_precision_score(yi, scores)) if two else math.nan,
        "log_loss": float(-np.mean(yi * np.log(clipped) + (1 - yi) * np.log(1 - clipped))),
        "brier": float(np.mean((scores - yi) ** 2)),
        "accuracy": float(skm.accuracy_score(yi, pred)),
        "precision": float(skm.precision_score(yi, pred, zero_division=0)),
        "recall": float(skm.recall_score(yi, pred, zero_division=0)),
        "f1": float(skm.f1_score(yi, pred, zero_division=0)),
        "threshold": float(threshold),
        "n": len(y),
        "positives": int(yi.sum()),
    }


class FusedAdam:
    """Adam as one fused kernel call per step, without ``Optimizer.step``'s Python overhead.

    Same update as ``torch.optim.Adam`` (L2 weight decay, bias correction); falls back to
    ``torch.optim.Adam`` where the fused kernel is unavailable.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_t = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
        self.steps = [self.step_t] * len(self.params)
        self.fallback: torch.optim.Optimizer | None = None
        if not hasattr(torch, "_fused_adam_"):
            self._use_fallback()

    def _use_fallback(self) -> None:
        try:
            self.fallback = torch.optim.Adam(
                self.params, self.lr, self.betas, self.eps, self.weight_decay, fused=True
            )
        except (RuntimeError, ValueError):
            self.fallback = torch.optim.Adam(
                self.params, self.lr, self.betas, self.eps, self.weight_decay
            )

    def step(self, grads: Sequence[Tensor]) -> None:
        if self.fallback is None:
            try:
                with torch.no_grad():
                    self.step_t.add_(1)
                    torch._fused_adam_(
                        self.params,
                        list(grads),
                        self.exp_avg,
                        self.exp_avg_sq,
                        [],
                        self.steps,
                        lr=self.lr,
                        beta1=self.betas[0],
                        beta2=self.betas[1],
                        weight_decay=self.weight_decay,
                        eps=self.eps,
                        amsgrad=False,
                        maximize=False,
                    )
                return
            except (RuntimeError, NotImplementedError):  # kernel missing for this device
                if int(self.step_t.item()) != 1:
                    raise
                self.step_t.zero_()
                self._use_fallback()
        assert self.fallback is not None
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g
        self.fallback.step()


@dataclass
class Split:
    z: Tensor  # standardised numerics
    cat: Tensor  # categorical codes
    y: Tensor


def _encode_split(
    model: TabularModel, df: pd.DataFrame, y: np.ndarray, source: str, device: torch.device
) -> Split:
    x_num, x_cat = model.encode(df, source)
    with torch.no_grad():
        z = model.net.standardize(x_num.to(device))
    return Split(z.contiguous(), x_cat.to(device), torch.from_numpy(y).to(device))


def _logits(model: TabularModel, split: Split, rows: int = 65_536) -> Tensor:
    net = model.net
    net.eval()
    with torch.inference_mode():
        parts = [
            net.head(net.inputs(split.z[i : i + rows], split.cat[i : i + rows]))
            for i in range(0, len(split.y), rows)
        ]
    return torch.cat(parts) if parts else torch.empty(0, device=split.y.device)


# --------------------------------------------------------------------------- training


def as_params(params: TrainParams | dict[str, Any] | None) -> TrainParams:
    if params is None:
        return TrainParams()
    return TrainParams.from_dict(params) if isinstance(params, dict) else params


def params_for(params: TrainParams, spec: FeatureSpec) -> TrainParams:
    """``params`` with the spec's target (a prepared folder names its own): an explicit
    ``target_column`` that differs is an error."""
    if params.target_column == spec.target:
        return params
    if params.target_column != DEFAULT_TARGET:
        raise TrainingParamsError(
            f"target_column {params.target_column!r} differs from the feature spec's "
            f"target {spec.target!r} (prepared data name their target in the manifest)"
        )
    return replace(params, target_column=spec.target)  # recorded truthfully in model.json


def device_params(params: TrainParams, device: torch.device) -> TrainParams:
    """On CUDA, the user's opt-in ``cuda_batch_size`` replaces ``batch_size``."""
    if device.type == "cuda" and params.cuda_batch_size is not None:
        return replace(params, batch_size=params.cuda_batch_size)
    return params


def train(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    params: TrainParams | dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    spec: FeatureSpec | None = None,
) -> TrainResult:
    """Train a :class:`TabularModel` on ``train_df``, early-stopping on ``val_df``.

    Deterministic on CPU: the same data, parameters and seed give identical weights.
    The caller's global RNG state and thread count are left as they were.
    """
    params = as_params(params)
    if spec is None:  # a column named "id" is a row key, never a feature
        id_column = "id" if "id" in train_df.columns else None
        spec = infer_spec(train_df, target=params.target_column, id_column=id_column)
    params = params_for(params, spec)
    spec.check(train_df, "training data")
    spec.check(val_df, "validation data")
    if len(train_df) == 0 or len(val_df) == 0:
        raise DataValidationError(
            f"training and validation data must not be empty (rows: {len(train_df)}, {len(val_df)})"
        )
    if not spec.features:
        raise DataValidationError("the feature spec has no feature columns")
    y_train = binary_target(train_df[spec.target], "training data")
    y_val = binary_target(val_df[spec.target], "validation data")
    if len(np.unique(y_train)) < 2:
        raise DataValidationError(
            f"training data: target column {spec.target!r} has a single class; need both 0 and 1"
        )
    device = resolve_device(params.device)
    params = device_params(params, device)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    threads = thread_choice(params)
    started = time.perf_counter()
    with thread_scope(threads.threads), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(params.seed)
        pre = Preprocessor.fit(train_df, spec)
        model = build_model(spec, pre, params.hidden_sizes, params.dropout, params.activation)
        model.net.to(device)
        tr = _encode_split(model, train_df, y_train, "training data", device)
        va = _encode_split(model, val_df, y_val, "validation data", device)
        history, best_epoch, stopped = _fit(model, tr, va, y_val, params, device, on_epoch)
        model.net.eval()
        train_scores = torch.sigmoid(_logits(model, tr)).double().cpu().numpy()
        val_scores = torch.sigmoid(_logits(model, va)).double().cpu().numpy()
    threshold = 0.5 if params.threshold_strategy == "fixed" else f1_threshold(y_val, val_scores)
    model.decision_threshold = threshold
    model.net.to("cpu")
    seconds = time.perf_counter() - started
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        val_metrics=binary_metrics(y_val, val_scores, threshold),
        train_metrics=binary_metrics(y_train, train_scores, threshold),
        threshold=threshold,
        seconds=seconds,
        params=params,
        device=str(device),
        stopped_early=stopped,
        threads=threads.to_dict(),
    )


def _fit(
    model: TabularModel,
    tr: Split,
    va: Split,
    y_val: np.ndarray,
    params: TrainParams,
    device: torch.device,
    on_epoch: EpochCallback | None,
) -> tuple[list[EpochStats], int, bool]:
    net = model.net
    weights = [p for p in net.parameters() if p.requires_grad]
    opt = FusedAdam(weights, params.learning_rate, params.weight_decay)
    gen = torch.Generator(device=device)
    gen.manual_seed(params.seed)
    n, bs = len(tr.y), params.batch_size
    pos = float(tr.y.sum().item())
    pos_weight = (
        torch.tensor((n - pos) / pos, device=device) if params.class_weight and pos > 0 else None
    )
    hidden = list(params.hidden_sizes)
    p_drop = params.dropout
    # Dropout masks are drawn in bulk, a chunk of batches at a time (bounded memory).
    chunk = max(bs, (4_000_000 // max(1, sum(hidden))) // bs * bs)
    progress = EarlyStopping(net, params, on_epoch)
    net.train()
    graphed = None
    if device.type == "cuda" and params.cuda_graphs:
        graphed = graphed_epoch_or_none(
            net=net,
            weights=weights,
            opt=opt,
            state=[*weights, *opt.exp_avg, *opt.exp_avg_sq, opt.step_t],
            data=(tr.z, tr.cat, tr.y),
            batch_size=bs,
            hidden=hidden,
            dropout=p_drop,
            pos_weight=pos_weight,
        )
    for epoch in range(1, params.num_epochs + 1):
        t0 = time.perf_counter()
        net.train()
        if graphed is not None:
            loss_sum = graphed.run(gen)
        else:
            loss_sum = torch.zeros((), device=device)  # the eager loop: CPU, or no graphs
            shuffled_steps(
                net, weights, opt, tr, bs, chunk, hidden, p_drop, gen, pos_weight, loss_sum
            )
        val_logits = _logits(model, va)
        val_loss = float(
            F.binary_cross_entropy_with_logits(val_logits, va.y, pos_weight=pos_weight).item()
        )
        if device.type == "cuda":  # no copy of the validation scores to the host
            val_auc = auc_on_device(va.y, val_logits)
        else:
            val_auc = auc_or_nan(y_val, val_logits.float().cpu().numpy())
        if progress.record(epoch, float(loss_sum.item()) / n, val_loss, val_auc, t0):
            break
    return progress.finish()


class EarlyStopping:
    """The epochs' bookkeeping: history, the best validation loss and its weights, the
    patience, divergence, the callback; :meth:`finish` restores the best weights."""

    def __init__(self, net: Any, params: TrainParams, on_epoch: EpochCallback | None) -> None:
        self.net, self.params, self.on_epoch = net, params, on_epoch
        self.history: list[EpochStats] = []
        self.best_loss, self.best_epoch, self.bad = math.inf, 0, 0
        self.best_state: dict[str, Tensor] | None = None
        self.stopped = False

    def record(
        self, epoch: int, train_loss: float, val_loss: float, val_auc: float, t0: float
    ) -> bool:
        """Record one epoch; whether to stop now."""
        params = self.params
        improved = val_loss < self.best_loss - params.min_delta
        if improved:
            self.best_loss, self.best_epoch, self.bad = val_loss, epoch, 0
            if params.patience is not None:
                self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        else:
            self.bad += 1
        stats = EpochStats(epoch, train_loss, val_loss, val_auc, time.perf_counter() - t0, improved)
        self.history.append(stats)
        if not math.isfinite(stats.train_loss):
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch}: train loss is {stats.train_loss} "
                f"(learning_rate {params.learning_rate}; try a lower one)"
            )
        if self.on_epoch is not None:
            self.on_epoch(stats)
        if params.patience is not None and self.bad >= params.patience:
            self.stopped = epoch < params.num_epochs
            return True
        return False

    def finish(self) -> tuple[list[EpochStats], int, bool]:
        if self.params.patience is None:
            self.best_epoch = self.history[-1].epoch  # the lab's behaviour: the last weights
        elif self.best_state is not None:
            self.net.load_state_dict(self.best_state)
        return self.history, self.best_epoch, self.stopped


def shuffled_steps(
    net: Any,
    weights: Sequence[Tensor],
    opt: FusedAdam,
    tr: Split,
    bs: int,
    chunk: int,
    hidden: list[int],
    p_drop: float,
    gen: torch.Generator,
    pos_weight: Tensor | None,
    loss_sum: Tensor,
) -> None:
    """The optimiser steps over ``tr``'s rows in a random order (``gen``), in batches of
    ``bs``, dropout masks drawn ``chunk`` rows at a time; each batch's summed loss is added
    to ``loss_sum`` (on the device)."""
    n, device = len(tr.y), tr.y.device
    has_cat = tr.cat.shape[1] > 0
    perm = torch.randperm(n, generator=gen, device=device)
    z, y = tr.z.index_select(0, perm), tr.y.index_select(0, perm)
    cat = tr.cat.index_select(0, perm) if has_cat else tr.cat
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        masks = _dropout_masks(c1 - c0, hidden, p_drop, gen, device)
        for b0 in range(c0, c1, bs):
            b1 = min(c1, b0 + bs)
            h = net.inputs(z[b0:b1], cat[b0:b1]) if has_cat else z[b0:b1]
            bm = [m[b0 - c0 : b1 - c0] for m in masks] if masks else None
            logits = net.head(h, bm)
            loss = F.binary_cross_entropy_with_logits(logits, y[b0:b1], pos_weight=pos_weight)
            grads = torch.autograd.grad(loss, weights)
            opt.step(grads)
            loss_sum.add_(loss.detach(), alpha=b1 - b0)


def _dropout_masks(
    rows: int, hidden: list[int], p: float, gen: torch.Generator, device: torch.device
) -> list[Tensor]:
    """Inverted-dropout masks (0 or 1/(1-p)) for ``rows`` rows, one per hidden layer."""
    if p <= 0:
        return []
    scale = 1.0 / (1.0 - p)
    return [
        (torch.rand(rows, h, generator=gen, device=device) >= p).to(torch.float32).mul_(scale)
        for h in hidden
    ]
