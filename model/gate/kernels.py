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


_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (the golden ratio, 64 bits)


def _bits(key: Any, row: Any) -> Any:  # pragma: no cover - compiled
    """64 random bits for rows ``4·(row // 4)`` to ``4·(row // 4) + 3`` of resample ``key``:
    SplitMix64's output function of the counter ``key + (row // 4 + 1)·γ``."""
    z = np.uint64(key) + (np.uint64(row >> 2) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _pick(bits: Any, row: Any, table: np.ndarray) -> float:  # pragma: no cover - compiled
    """Row ``row``'s 16 of the ``bits``, as a Poisson(1) count through ``table``."""
    return table[(bits >> np.uint64(16 * (row & 3))) & np.uint64(0xFFFF)]


def _weight(key: Any, row: Any, table: np.ndarray) -> float:  # pragma: no cover - compiled
    """Resample ``key``'s Poisson(1) weight of ``row``: a pure function of (key, row),
    counter-based, no state carried from row to row."""
    return _pick_c(_bits_c(key, row), row, table)


def _row_sums_rows(
    keys: np.ndarray,
    table: np.ndarray,
    start: int,
    y: np.ndarray,
    cols: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; compared with :func:`reference_weights` in the tests
    """``out[c, q, r] += Σ_j w(keys[r], start + j) · cols[j, q]`` over the rows j of class c,
    added in row order (so a chunked pass gives the same sums, bit for bit). The inner loop
    runs over the resamples, so it vectorizes."""
    n, width = cols.shape
    k = keys.shape[0]
    w = np.empty(k)
    bits = np.empty(k, dtype=np.uint64)
    for j in range(n):
        row = start + j
        if j == 0 or (row & 3) == 0:  # one draw of 64 bits serves four consecutive rows
            for r in range(k):
                bits[r] = _bits_c(keys[r], row)
        for r in range(k):
            w[r] = _pick_c(bits[r], row, table)
        c = y[j]
        for q in range(width):
            value = cols[j, q]
            acc = out[c, q]
            for r in range(k):
                acc[r] += w[r] * value


def _sweep_rows(
    keys: np.ndarray,
    table: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    totals: np.ndarray,
    state: np.ndarray,
    unit: bool,
) -> None:  # pragma: no cover - compiled; compared with the weighted scikit-learn metrics
    """One model's weighted AUC and average precision, swept in ascending score order.

    ``state[:, r]`` (carried from chunk to chunk): weighted negatives and positives below the
    open tie group, the AUC and AP sums, the open group's positives and negatives, and (row
    6, the same for every r) 1 when the open group holds a positive row;
    ``starts[j]``: row j opens a new tie group; ``totals[:, r]``: the resample's positives and
    negatives. ``unit``: every weight is 1 (the observed metrics). The inner loops run over
    the resamples, so they vectorize."""
    k = keys.shape[0]
    neg_below, pos_below, auc, ap = state[0], state[1], state[2], state[3]
    d_tp, d_fp = state[4], state[5]
    total_pos, total_neg = totals[0], totals[1]
    open_has_pos = state[6, 0] > 0.0  # the open group holds a positive row (any weight)
    for j in range(rows.shape[0]):
        if starts[j]:
            if open_has_pos:
                for r in range(k):
                    tp = total_pos[r] - pos_below[r]
                    auc[r] += d_tp[r] * (neg_below[r] + 0.5 * d_fp[r])
                    ap[r] += d_tp[r] * (tp / max(tp + total_neg[r] - neg_below[r], 1.0))
                    pos_below[r] += d_tp[r]
                    d_tp[r] = 0.0
            for r in range(k):
                neg_below[r] += d_fp[r]
                d_fp[r] = 0.0
            open_has_pos = False
        if y[j]:
            open_has_pos = True
        group = d_tp if y[j] else d_fp
        row = rows[j]
        if unit:
            for r in range(k):
                group[r] += 1.0
        else:
            for r in range(k):
                group[r] += _weight_c(keys[r], row, table)
    state[6, :] = 1.0 if open_has_pos else 0.0


if AVAILABLE:
    _compiled: Any = numba.njit(nogil=True, cache=True)(_rank_metrics_rows)
    _bits_c: Any = numba.njit(nogil=True, cache=True, inline="always")(_bits)
    _pick_c: Any = numba.njit(nogil=True, cache=True, inline="always")(_pick)
    _weight_c: Any = numba.njit(nogil=True, cache=True, inline="always")(_weight)
    _row_sums: Any = numba.njit(nogil=True, cache=True)(_row_sums_rows)
    _sweep: Any = numba.njit(nogil=True, cache=True)(_sweep_rows)
else:  # pragma: no cover - numba missing: the pure-Python sweep (slow, same numbers)
    _bits_c, _pick_c, _weight_c = _bits, _pick, _weight


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


def row_sums(
    keys: np.ndarray,
    table: np.ndarray,
    start: int,
    y: np.ndarray,
    cols: np.ndarray,
    out: np.ndarray,
) -> None:
    """Add each resample's weighted column sums per class of rows ``start, start + 1, …``
    to ``out`` (``(2, width, k)`` float64); see :func:`_row_sums_rows`."""
    if AVAILABLE:
        _row_sums(keys, table, np.int64(start), y, cols, out)
        return
    w = reference_weights(keys, np.arange(start, start + y.size, dtype=np.int64), table)
    for c in (0, 1):
        out[c] += (w[:, y == c] @ cols[y == c]).T


def sweep(
    keys: np.ndarray,
    table: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    totals: np.ndarray,
    state: np.ndarray,
    unit: bool = False,
) -> None:
    """Carry one model's AUC and AP sweep over a chunk of rows in ascending score order
    (``state``, ``(7, k)``, is updated in place; ``totals`` is ``(2, k)``; see
    :func:`_sweep_rows`)."""
    if AVAILABLE:
        _sweep(keys, table, rows, y, starts, totals, state, unit)
    else:
        _sweep_rows(keys, table, rows, y, starts, totals, state, unit)


def reference_weights(keys: np.ndarray, rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The counter-based weights in numpy (``(k, n)``, float64): what the compiled
    :func:`_weight` gives, computed independently (the tests compare them)."""
    rows = np.asarray(rows, dtype=np.int64)
    with np.errstate(over="ignore"):
        counter = (rows >> 2).astype(np.uint64) + np.uint64(1)
        z = np.asarray(keys, dtype=np.uint64)[:, None] + counter[None, :] * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    shift = (np.uint64(16) * (rows & 3).astype(np.uint64))[None, :]
    return table[((z >> shift) & np.uint64(0xFFFF)).astype(np.int64)].astype(np.float64)
