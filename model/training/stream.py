"""Training on a prepared folder too large to hold: batches from the split files' row groups,
never one tensor of the whole split.

:func:`streams` decides: the training split's in-memory size (rows times the pandas
widths of its columns, times :data:`IN_MEMORY_FACTOR` for the frame and its tensors) is over
the memory budget. :func:`train_streamed` then:

- fits the preprocessor in passes over the row groups (:func:`fit_streamed`): each numeric
  column's median exactly (:mod:`model.data.select`), its mean and standard deviation by
  merging per-group moments (Chan et al.), the categorical levels as the union of each
  group's;
- trains epoch by epoch over **windows** of row groups: the groups in a new random order each
  epoch (seeded), ``window`` groups at a time, each window's rows shuffled and stepped
  through in batches by the in-memory loop's own step code
  (:func:`model.training.loop.shuffled_steps`). On CUDA, the next window is read and encoded
  on a second thread into pinned memory and copied without blocking while the current one
  trains (double buffering);
- validates each epoch by streaming the validation split's groups through the network: the
  loss and AUC come from the scores, which are kept (4 bytes a row), not the features.

The same seed gives the same weights (on CPU). The order of rows differs from the in-memory
loop's (one permutation of all rows per epoch), so the weights do too: the model's quality
is the same within noise (tested), not its bits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from model.data import FeatureSpec, Manifest
from model.data.manifest import verified_split
from model.data.select import float_keys, key_floats, order_statistics
from model.errors import DataValidationError
from model.threads import thread_scope
from model.training.loop import (
    EarlyStopping,
    FusedAdam,
    Split,
    as_params,
    binary_target,
    device_params,
    f1_threshold,
    params_for,
    resolve_device,
    shuffled_steps,
    thread_choice,
)
from model.training.network import Preprocessor, TabularModel, build_model, category_strings
from model.training.network import numeric_matrix as _numeric
from model.training.params import (
    EpochCallback,
    EpochStats,
    TrainParams,
    TrainResult,
)

IN_MEMORY_FACTOR = 3
"""The in-memory training's peak over its training split's size in pandas (the frame, its
float32 and int64 encodings, the shuffled copies)."""
WIDE_VALUE_BYTES = 64
"""A text value in pandas: an object pointer and a Python string."""


def split_size(manifest: Manifest, name: str = "train") -> int:
    """The bytes a split takes read whole into pandas, estimated from its schema and rows."""
    schema = pq.read_schema(manifest.split_path(name))
    width = sum(
        8 if f.type.bit_width and f.type.bit_width <= 64 else WIDE_VALUE_BYTES
        for f in schema
        if _has_width(f.type)
    ) + WIDE_VALUE_BYTES * sum(1 for f in schema if not _has_width(f.type))
    return manifest.splits[name].rows * width


def _has_width(kind: Any) -> bool:
    try:
        return bool(kind.bit_width)
    except ValueError:
        return False


def streams(manifest: Manifest, memory_budget: int | None) -> bool:
    """Whether training on ``manifest`` streams in ``memory_budget`` (None: never)."""
    if memory_budget is None:
        return False
    return split_size(manifest) * IN_MEMORY_FACTOR > memory_budget


@dataclass
class SplitFile:
    """One prepared split read by row groups (its checksum verified first)."""

    path: Path
    spec: FeatureSpec
    rows: int

    @classmethod
    def open(cls, manifest: Manifest, name: str) -> SplitFile:
        return cls(verified_split(manifest, name), manifest.spec, manifest.splits[name].rows)

    @property
    def groups(self) -> int:
        with pq.ParquetFile(self.path) as f:
            return int(f.num_row_groups)

    def frames(
        self, order: list[int] | None = None, per: int = 1, rows: int = 1 << 14
    ) -> Iterator[pd.DataFrame]:
        """The row groups as frames (features and target), in ``order`` (default: the
        file's): ``per`` groups to a frame, or with ``per`` 0 at most ``rows`` rows a frame
        (smaller reads, a lower peak)."""
        columns = [*self.spec.features, self.spec.target]
        with pq.ParquetFile(self.path, pre_buffer=False) as f:
            order = list(range(f.num_row_groups)) if order is None else order
            if per == 0:
                for batch in f.iter_batches(batch_size=rows, row_groups=order, columns=columns):
                    yield batch.to_pandas()
                return
            for i in range(0, len(order), per):
                groups = order[i : i + per]
                batches = f.iter_batches(batch_size=rows, row_groups=groups, columns=columns)
                yield pa.Table.from_batches(list(batches)).to_pandas()


def fit_streamed(split: SplitFile, memory_budget: int) -> Preprocessor:
    """:meth:`Preprocessor.fit` over the row groups of ``split`` (see the module)."""
    spec = split.spec
    numeric, categorical = list(spec.numeric), list(spec.categorical)
    count = np.zeros(len(numeric))
    mean = np.zeros(len(numeric))
    m2 = np.zeros(len(numeric))
    levels: dict[str, set[str]] = {c: set() for c in categorical}
    for df in split.frames(per=0):
        x = _numeric(df, numeric, "training data").astype(np.float64)
        for j in range(len(numeric)):
            col = x[:, j][np.isfinite(x[:, j])]
            if col.size:
                part = (col.size, col.mean(), float(((col - col.mean()) ** 2).sum()))
                count[j], mean[j], m2[j] = _merged((count[j], mean[j], m2[j]), part)
        for c in categorical:
            levels[c].update(str(v) for v in category_strings(df[c]).dropna().unique())
    finite = [int(c) for c in count]
    wanted = {str(j): {(n - 1) // 2, n // 2} for j, n in enumerate(finite) if n}

    def passes() -> Iterator[dict[str, np.ndarray]]:
        for df in split.frames(per=0):
            x = _numeric(df, numeric, "training data").astype(np.float64)
            yield {str(j): float_keys(x[:, j][np.isfinite(x[:, j])]) for j in range(len(numeric))}

    stats = max(1, sum(len(ks) for ks in wanted.values()))
    found = order_statistics(passes, wanted, max(1 << 12, memory_budget // 8 // (4 * stats)))
    median, means, std = [], [], []
    for j in range(len(numeric)):
        med = 0.0
        if finite[j]:
            lo, hi = key_floats(
                np.array([found[str(j)][(finite[j] - 1) // 2], found[str(j)][finite[j] // 2]])
            )
            med = float((lo + hi) / 2)  # np.median's mean of the middle two
        others = split.rows - finite[j]  # not finite: counted as the median, as fit does
        n, mu, sq = _merged((count[j], mean[j], m2[j]), (others, med, 0.0))
        sd = math.sqrt(sq / n) if n else 0.0
        median.append(med)
        means.append(float(mu))
        std.append(sd if math.isfinite(sd) and sd > 1e-12 else 1.0)
    return Preprocessor(
        numeric, categorical, median, means, std, {c: sorted(levels[c]) for c in categorical}
    )


def _merged(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, ...]:
    """Chan's merge of (count, mean, sum of squared deviations)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    if n == 0:
        return 0.0, 0.0, 0.0
    delta = mb - ma
    return n, ma + delta * nb / n, sa + sb + delta * delta * na * nb / n


class _Windows:
    """Encoded windows of the training split: on CUDA read one ahead on a second thread,
    into pinned memory, copied without blocking."""

    def __init__(self, model: TabularModel, split: SplitFile, per: int, device: torch.device):
        self.model, self.split, self.per, self.device = model, split, per, device

    def _encode(self, df: pd.DataFrame) -> tuple[torch.Tensor, ...]:
        y = torch.from_numpy(binary_target(df[self.split.spec.target], "training data"))
        x_num, x_cat = self.model.encode(df, "training data")
        if self.device.type == "cuda":
            x_num, x_cat, y = x_num.pin_memory(), x_cat.pin_memory(), y.pin_memory()
        return x_num, x_cat, y

    def __call__(self, order: list[int]) -> Iterator[Split]:
        frames = self.split.frames(order, self.per)
        if self.device.type != "cuda":
            for df in frames:
                yield self._split(self._encode(df))
            return

        def read() -> tuple[torch.Tensor, ...] | None:  # on the second thread
            df = next(frames, None)
            return None if df is None else self._encode(df)

        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(read)
            while (encoded := ahead.result()) is not None:
                ahead = pool.submit(read)
                yield self._split(encoded)

    def _split(self, encoded: tuple[torch.Tensor, ...]) -> Split:
        x_num, x_cat, y = (t.to(self.device, non_blocking=True) for t in encoded)
        with torch.no_grad():
            z = self.model.net.standardize(x_num)
        return Split(z.contiguous(), x_cat, y)


def scores_of(
    model: TabularModel, split: SplitFile, device: torch.device, keep: float = 1.0
) -> tuple[np.ndarray, ...]:
    """(y, logits) of the rows of ``split``, group by group (features never held whole):
    every row, or with ``keep`` < 1 each row with that probability (seeded: the same rows
    every time)."""
    net = model.net
    net.eval()
    ys, logits = [], []
    rng = np.random.default_rng(20261205)
    with torch.inference_mode():
        for df in split.frames(per=0):
            if keep < 1.0:
                df = df[rng.random(len(df)) < keep]
            ys.append(binary_target(df[split.spec.target], "validation data"))
            x_num, x_cat = model.encode(df, "validation data")
            z = net.standardize(x_num.to(device))
            logits.append(net.head(net.inputs(z, x_cat.to(device))).float().cpu().numpy())
    return np.concatenate(ys), np.concatenate(logits)


METRIC_ROW_BYTES = 256
"""What :func:`lean_metrics` and the scores take per row, with room: the training metrics
are measured on at most ``memory_budget // METRIC_ROW_BYTES`` rows (a seeded uniform
sample beyond), the validation metrics on every row."""


def train_streamed(
    manifest: Manifest,
    params: TrainParams | dict[str, Any] | None,
    memory_budget: int,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """:func:`model.training.loop.train` on ``manifest``'s train and val splits, streamed from
    their row groups in about ``memory_budget`` (see the module)."""
    spec = manifest.spec
    params = params_for(as_params(params), spec)
    if not spec.features:
        raise DataValidationError("the feature spec has no feature columns")
    info = manifest.splits
    if info["train"].rows == 0 or info["val"].rows == 0:
        raise DataValidationError(
            "training and validation data must not be empty "
            f"(rows: {info['train'].rows}, {info['val'].rows})"
        )
    if info["train"].positives == 0 or info["train"].negatives == 0:
        raise DataValidationError(
            f"training data: target column {spec.target!r} has a single class; need both 0 and 1"
        )
    tr, va = SplitFile.open(manifest, "train"), SplitFile.open(manifest, "val")
    device = resolve_device(params.device)
    params = device_params(params, device)
    threads = thread_choice(params)
    group_rows = max(1, math.ceil(tr.rows / max(1, tr.groups)))
    row_bytes = max(1, split_size(manifest) // max(1, tr.rows))
    per = max(1, memory_budget // (row_bytes * IN_MEMORY_FACTOR * 4) // group_rows)
    started = time.perf_counter()
    with (
        thread_scope(threads.threads),
        torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []),
    ):
        torch.manual_seed(params.seed)
        pre = fit_streamed(tr, memory_budget)
        model = build_model(spec, pre, params.hidden_sizes, params.dropout, params.activation)
        model.net.to(device)
        pos, neg = info["train"].positives, info["train"].negatives
        pos_weight = torch.tensor(neg / pos, device=device) if params.class_weight else None
        history, best_epoch, stopped = _fit(
            model, tr, va, params, device, (per, pos_weight), on_epoch
        )
        keep = min(1.0, memory_budget / METRIC_ROW_BYTES / tr.rows)
        y_train, train_logits = scores_of(model, tr, device, keep)
        y_val, val_logits = scores_of(model, va, device)
    train_scores = _probabilities(train_logits)
    val_scores = _probabilities(val_logits)
    threshold = 0.5 if params.threshold_strategy == "fixed" else f1_threshold(y_val, val_scores)
    model.decision_threshold = threshold
    model.net.to("cpu")
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        val_metrics=lean_metrics(y_val, val_scores, threshold),
        train_metrics=lean_metrics(y_train, train_scores, threshold),
        threshold=threshold,
        seconds=time.perf_counter() - started,
        params=params,
        device=str(device),
        stopped_early=stopped,
        threads=threads.to_dict(),
        extra={
            "data_reading": {
                "streamed": True,
                "memory_budget": memory_budget,
                "row_groups_per_window": per,
                "rows_per_group": group_rows,
                "train_metrics_rows": len(y_train),
            }
        },
    )


def _fit(
    model: TabularModel,
    tr: SplitFile,
    va: SplitFile,
    params: TrainParams,
    device: torch.device,
    window: tuple[int, torch.Tensor | None],
    on_epoch: EpochCallback | None,
) -> tuple[list[EpochStats], int, bool]:
    """The epochs (as :func:`model.training.loop._fit`, over windows of row groups);
    ``window``: the row groups a window holds and the positive class's loss weight."""
    per, pos_weight = window
    net = model.net
    weights = [p for p in net.parameters() if p.requires_grad]
    opt = FusedAdam(weights, params.learning_rate, params.weight_decay)
    gen = torch.Generator(device=device)
    gen.manual_seed(params.seed)
    order_gen = torch.Generator().manual_seed(params.seed + 1)
    n, bs = tr.rows, params.batch_size
    windows = _Windows(model, tr, per, device)
    hidden = list(params.hidden_sizes)
    chunk = max(bs, (4_000_000 // max(1, sum(hidden))) // bs * bs)
    progress = EarlyStopping(net, params, on_epoch)
    groups = tr.groups
    for epoch in range(1, params.num_epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(groups, generator=order_gen).tolist()
        loss_sum = torch.zeros((), device=device)
        net.train()
        for rows in windows(order):
            shuffled_steps(
                net,
                weights,
                opt,
                rows,
                bs,
                chunk,
                hidden,
                params.dropout,
                gen,
                pos_weight,
                loss_sum,
            )
        y_val, logits = scores_of(model, va, device)
        y_t = torch.from_numpy(y_val)
        val_loss = float(
            F.binary_cross_entropy_with_logits(
                torch.from_numpy(logits),
                y_t,
                pos_weight=None if pos_weight is None else pos_weight.cpu(),
            ).item()
        )
        val_auc = lean_metrics(y_val, logits, 0.5)["auc"]
        if progress.record(epoch, float(loss_sum.item()) / n, val_loss, val_auc, t0):
            break
    return progress.finish()


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """The sigmoid in float32, then float64, as the in-memory path computes the scores."""
    return torch.sigmoid(torch.from_numpy(logits)).double().numpy()


def lean_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """:func:`model.training.loop.binary_metrics` in a few arrays of the scores' length
    (scikit-learn's take about 12 float64 copies): one sort, tie groups for the AUC's
    midranks and the average precision's distinct thresholds, sums for the rest."""
    yi = np.asarray(y).astype(np.int8, copy=False)
    n, positives = len(yi), int(yi.sum())
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    sorted_s, sorted_y = s[order], yi[order]
    del order
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], n]
    pos_in = np.add.reduceat(sorted_y.astype(np.int64), starts) if n else np.zeros(0, np.int64)
    negatives = n - positives
    two = positives > 0 and negatives > 0
    auc = math.nan
    if two and np.isfinite(s).all():
        midranks = (starts + ends + 1) / 2.0
        auc = float(
            (np.dot(midranks, pos_in) - positives * (positives + 1) / 2) / positives / negatives
        )
    ap = math.nan
    if (
        two and np.isfinite(s).all()
    ):  # thresholds from the highest score down: each group's cumulative counts
        tp = np.cumsum(pos_in[::-1])
        seen = np.cumsum((ends - starts)[::-1])
        precision, recall = tp / seen, tp / positives
        ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    pred = s >= threshold
    tp1 = int(np.count_nonzero(pred & (yi == 1)))
    predicted = int(np.count_nonzero(pred))
    clipped = np.clip(s, 1e-7, 1 - 1e-7)
    prec = tp1 / predicted if predicted else 0.0
    rec = tp1 / positives if positives else 0.0
    return {
        "auc": auc,
        "average_precision": ap,
        "log_loss": float(-np.mean(yi * np.log(clipped) + (1 - yi) * np.log(1 - clipped))),
        "brier": float(np.mean((s - yi) ** 2)),
        "accuracy": float(np.count_nonzero(pred == (yi == 1)) / n),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(2 * prec * rec / (prec + rec)) if prec + rec > 0 else 0.0,
        "threshold": float(threshold),
        "n": n,
        "positives": positives,
    }
