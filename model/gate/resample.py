"""The Poisson bootstrap over rows read in chunks, with counter-based weights.

Each resample ``r`` has a 64-bit key; row ``i``'s weight in it is a pure function of
``(key_r, i)`` (:func:`model.gate.kernels._weight`: SplitMix64's output of a counter, then a
Poisson(1) count through a 16-bit table). No generator state runs from row to row, so the
rows can come in chunks of any size, from memory or from files on disk, and every chunk is
weighted on its own: the result does not depend on the chunking, bit for bit, because every
sum is also added in one fixed order (rows in row order for the confusion and loss sums;
rows in ascending score order, ties grouped, for the AUC and average precision).

Two passes over :class:`Rows`:

1. in row order, each resample's weighted sums per class of (baseline predicts positive,
   candidate predicts positive, Δ log loss, Δ Brier, 1): the threshold metrics, the losses,
   and each resample's class totals;
2. per model, in ascending score order: the weighted AUC (negatives below + ½ tied) and
   average precision (precision at each tie group, from the class totals of pass 1).

:class:`ArrayRows` serves arrays in memory (the comparator's in-memory path); the spilled
holdout of :mod:`model.gate.spill` serves the same rows from files, so both give the same
bootstrap, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from model.gate import kernels
from model.gate.metrics import METRICS, row_losses, threshold_metrics
from model.threads import choose_threads

ROW_CHUNK = 1 << 16
"""Rows per chunk of the in-memory source (the kernels' working set stays in cache)."""


class Rows(Protocol):
    """Labelled rows scored by both models, read in chunks."""

    size: int

    def row_chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """``(first row, y (int8), baseline scores, candidate scores)`` in row order."""
        ...

    def sorted_chunks(self, model: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(rows (int64), scores, y (int8))`` in ascending order of model ``model``'s
        scores (0: baseline, 1: candidate); the order within ties is irrelevant."""
        ...


class ArrayRows:
    """:class:`Rows` over arrays in memory."""

    def __init__(
        self, y: np.ndarray, sb: np.ndarray, sc: np.ndarray, chunk: int = ROW_CHUNK
    ) -> None:
        self.y = np.ascontiguousarray(y, dtype=np.int8)
        self.scores = (np.asarray(sb, dtype=np.float64), np.asarray(sc, dtype=np.float64))
        self.size = int(self.y.size)
        self.chunk = max(1, int(chunk))

    def row_chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        sb, sc = self.scores
        for a in range(0, self.size, self.chunk):
            b = a + self.chunk
            yield a, self.y[a:b], sb[a:b], sc[a:b]

    def sorted_chunks(self, model: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        s = self.scores[model]
        order = np.argsort(s)  # the order within ties is irrelevant
        for a in range(0, self.size, self.chunk):
            rows = order[a : a + self.chunk]
            yield rows, s[rows], self.y[rows]


def resample_keys(seed: int, n_bootstrap: int) -> np.ndarray:
    """One 64-bit key per resample (``SeedSequence(seed).spawn``: independent streams)."""
    streams = np.random.SeedSequence(seed).spawn(n_bootstrap)
    return np.array([s.generate_state(1, np.uint64)[0] for s in streams], dtype=np.uint64)


def poisson_deltas(
    rows: Rows,
    keys: np.ndarray,
    table: np.ndarray,
    baseline_threshold: float,
    candidate_threshold: float,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Each resample's oriented improvement (candidate − baseline, positive = better) of
    every metric: a ``(len(keys), len(METRICS))`` array, independent of the chunking
    (:func:`model.gate.device.device_deltas` computes it on a torch device)."""
    parts = _parts(keys, choose_threads(n_jobs, synchronised=False).threads)
    sums = [np.zeros((2, 5, p.size)) for p in parts]  # per class: Σw·pred_b, Σw·pred_c,
    for start, y, sb, sc in rows.row_chunks():  # Σw·Δ log loss, Σw·Δ Brier, Σw
        cols = row_columns(y, sb, sc, baseline_threshold, candidate_threshold)
        _parallel(
            [(parts[i], table, start, y, cols, sums[i]) for i in range(len(parts))],
            kernels.row_sums,
        )
    total = np.concatenate(sums, axis=2)
    totals = [s[::-1, 4].copy() for s in sums]  # (positives, negatives) per part
    auc, ap = {}, {}
    for model in (0, 1):
        auc[model], ap[model] = sweep_metrics(rows, model, parts, table, totals)
    return improvements(total, auc, ap)


def row_columns(
    y: np.ndarray,
    sb: np.ndarray,
    sc: np.ndarray,
    baseline_threshold: float,
    candidate_threshold: float,
) -> np.ndarray:
    """Pass 1's columns of each row: (baseline predicts positive, candidate predicts
    positive, Δ log loss, Δ Brier, 1), float64."""
    ll_b, br_b = row_losses(y, sb)
    ll_c, br_c = row_losses(y, sc)
    pred = (sb >= baseline_threshold, sc >= candidate_threshold)
    cols = np.column_stack((*pred, ll_c - ll_b, br_c - br_b, np.ones(y.size)))
    return cols.astype(np.float64)


def improvements(
    total: np.ndarray, auc: dict[int, np.ndarray], ap: dict[int, np.ndarray]
) -> np.ndarray:
    """Each resample's oriented improvement of every metric from pass 1's sums per class
    (``total``, ``(2, 5, k)``) and both models' (0: baseline, 1: candidate) AUC and AP."""
    w_pos, w_neg = total[1, 4], total[0, 4]
    thr_b = threshold_metrics(total[1, 0], total[0, 0], w_pos, w_neg)
    thr_c = threshold_metrics(total[1, 1], total[0, 1], w_pos, w_neg)
    deltas = {name: thr_c[name] - thr_b[name] for name in thr_b}
    deltas["auc"] = auc[1] - auc[0]
    deltas["average_precision"] = ap[1] - ap[0]
    n = w_pos + w_neg
    deltas["log_loss"] = -(total[1, 2] + total[0, 2]) / n
    deltas["brier"] = -(total[1, 3] + total[0, 3]) / n
    return np.column_stack([deltas[name] for name in METRICS])


def sweep_metrics(
    rows: Rows,
    model: int,
    parts: list[np.ndarray],
    table: np.ndarray,
    totals: list[np.ndarray],
    unit: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted AUC and average precision of model ``model`` for each resample, swept over
    its rows in ascending score order. ``parts``: the resamples' keys, a part per thread;
    ``totals``: each part's weighted (positives, negatives); ``unit``: unweighted."""
    states = [np.zeros((7, p.size)) for p in parts]
    last = None
    for ids, scores, y in rows.sorted_chunks(model):
        if scores.size == 0:
            continue
        starts = np.empty(scores.size, dtype=np.bool_)
        starts[0] = last is None or scores[0] != last
        np.not_equal(scores[1:], scores[:-1], out=starts[1:])
        last = scores[-1]
        _parallel(
            [
                (p, table, ids, y, starts, t, st, unit)
                for p, t, st in zip(parts, totals, states, strict=True)
            ],
            kernels.sweep,
        )
    state = np.concatenate(states, axis=1)
    neg_below, pos_below, auc, ap, d_tp, d_fp, _ = state  # close the last tie group
    total_pos, total_neg = np.concatenate(totals, axis=1)
    auc = auc + d_tp * (neg_below + 0.5 * d_fp)
    tp = total_pos - pos_below
    ap = ap + d_tp * (tp / np.maximum(tp + total_neg - neg_below, 1.0))
    return auc / (total_pos * total_neg), ap / total_pos


def _parts(keys: np.ndarray, threads: int) -> list[np.ndarray]:
    """The resamples' keys in contiguous parts, one per thread."""
    return [p for p in np.array_split(keys, max(1, min(threads, keys.size))) if p.size]


def _parallel(calls: list[tuple[Any, ...]], kernel: Callable[..., None]) -> None:
    """``kernel(*args)`` for each part's arguments (threads: the kernels release the GIL)."""
    if len(calls) == 1:
        kernel(*calls[0])
        return
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        list(pool.map(lambda args: kernel(*args), calls))
