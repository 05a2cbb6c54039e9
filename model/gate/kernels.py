"""Compiled kernel for the bootstrap's rank metrics (numba, GIL released).

For each resample (a row of weights over the positives and the negatives, in the canonical
order shared by both models), one model's weighted AUC and average precision come from two
linear passes: the negatives' weights are scattered onto the positive tie groups scoring
above them (a bucket sum, then a suffix sum gives the weight of negatives below each group),
and the positives' weights are gathered into their groups in descending-score order. No sort,
no temporary matrix; the kernel releases the GIL, so bootstrap threads run in parallel.

It computes exactly what :meth:`model.gate.metrics.RankIndex.rank_metrics` computes (the
tests compare them) for models without a positive scoring equal to a negative; with such
cross-class ties, or without numba, the numpy path is used. ``AVAILABLE`` says which.
"""

from __future__ import annotations

from typing import Any

import numpy as np

numba: Any
try:  # numba is a dependency; the numpy path stays correct without it
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

AVAILABLE = numba is not None


def _rank_metrics_rows(
    w_pos: np.ndarray,
    w_neg: np.ndarray,
    pos_order: np.ndarray,
    pos_group: np.ndarray,
    neg_groups: np.ndarray,
    n_groups: int,
    auc: np.ndarray,
    ap: np.ndarray,
) -> None:  # pragma: no cover - compiled; compared with the numpy path in the tests
    k = w_pos.shape[0]
    per_group = np.empty(n_groups + 1)
    below = np.empty(n_groups)
    d_tp = np.empty(n_groups)
    for r in range(k):
        per_group[:] = 0.0
        for j in range(w_neg.shape[1]):
            per_group[neg_groups[j]] += w_neg[r, j]
        running = 0.0
        for g in range(n_groups, 0, -1):  # below[g - 1] = weight of groups >= g
            running += per_group[g]
            below[g - 1] = running
        total_neg = running + per_group[0]
        d_tp[:] = 0.0
        for i in range(pos_order.shape[0]):
            d_tp[pos_group[i]] += w_pos[r, pos_order[i]]
        tp = 0.0
        auc_sum = 0.0
        ap_sum = 0.0
        for g in range(n_groups):
            tp += d_tp[g]
            auc_sum += d_tp[g] * below[g]
            denom = tp + total_neg - below[g]
            if denom < 1.0:
                denom = 1.0
            ap_sum += d_tp[g] * (tp / denom)
        auc[r] = auc_sum / (tp * total_neg)
        ap[r] = ap_sum / tp


def _poisson_rows(
    seeds: np.ndarray, table: np.ndarray, out_pos: np.ndarray, out_neg: np.ndarray
) -> None:  # pragma: no cover - compiled; tested through its distribution and determinism
    """Poisson(1) weights for each resample from its 64-bit seed: SplitMix64 gives 64 random
    bits, each 16 of them pick a count through ``table`` (the same lookup as numpy's path)."""
    for r in range(seeds.shape[0]):
        state = np.uint64(seeds[r])
        for out in (out_pos, out_neg):
            n = out.shape[1]
            i = 0
            while i < n:
                state += np.uint64(0x9E3779B97F4A7C15)
                z = state
                z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                z = z ^ (z >> np.uint64(31))
                for _ in range(4):
                    if i < n:
                        out[r, i] = table[z & np.uint64(0xFFFF)]
                        i += 1
                    z = z >> np.uint64(16)


if AVAILABLE:
    _compiled: Any = numba.njit(nogil=True, cache=True)(_rank_metrics_rows)
    _poisson: Any = numba.njit(nogil=True, cache=True)(_poisson_rows)


def poisson_weights(
    seeds: np.ndarray, table: np.ndarray, out_pos: np.ndarray, out_neg: np.ndarray
) -> None:
    """Fill ``out_pos`` and ``out_neg`` (``(k, n)`` float32) with Poisson(1) counts, row
    ``r`` from ``seeds[r]`` (uint64): deterministic, independent of chunking and threads."""
    _poisson(seeds, table, out_pos, out_neg)


def rank_metrics(
    w_pos: np.ndarray,
    w_neg: np.ndarray,
    pos_order: np.ndarray,
    pos_group: np.ndarray,
    neg_groups: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted AUC and average precision of each row of ``(k, n)`` weight matrices."""
    k = w_pos.shape[0]
    auc = np.empty(k)
    ap = np.empty(k)
    n_groups = int(pos_group[-1]) + 1 if pos_group.size else 0
    _compiled(w_pos, w_neg, pos_order, pos_group, neg_groups, n_groups, auc, ap)
    return auc, ap
