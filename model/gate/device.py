"""The gate's statistics on a torch device (CUDA when one is lent): the Poisson bootstrap of
:mod:`model.gate.resample` and DeLong's placements of :mod:`model.gate.stats`.

The same numbers as the CPU path, computed another way:

- each resample's weight of each row is the same pure function of ``(key, row)`` as
  :func:`model.gate.kernels._weight` (SplitMix64 of a counter, then a Poisson(1) count from
  the same 16-bit table), in int64 tensor arithmetic: multiplication and addition wrap modulo
  2^64 as uint64's do, and right shifts are made logical by a mask. The weights are equal,
  bit for bit (a test compares them with :func:`model.gate.kernels.reference_weights`);
- pass 1 (the confusion counts, the loss sums, each resample's class totals) is a matrix
  product per class over row chunks; pass 2 (AUC and average precision) sums each tie group's
  weighted positives and negatives with one ``index_add_`` and the counts below each group
  with a cumulative sum; a tie group still open at a chunk's end is carried to the next, so
  the device holds one chunk (``ELEMENTS`` weights) whatever the ties.

Every sum of integer-valued terms (weights, confusion counts, the AUC's half-integer
products) is exact in float64 whatever the order while it stays below 2^53 (the weighted
positives times negatives: about 130M rows at an even class balance), so the threshold
metrics and the AUC are equal to the CPU path's bit for bit. The log loss, Brier and
average-precision sums add fractions in another order (blocks on the device, rows in order
on the CPU; on the device the blocks also follow the chunk size): they agree to about 1e-13,
far below any margin a decision reads, and the decisions are the same (the tests compare both
paths, decision by decision). The rows' scores are the models' scores, computed where the
models serve them (the CPU); only the statistics move.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from model.errors import ComparisonInputError
from model.gate.resample import ArrayRows, Rows, improvements, row_columns

ELEMENTS = 1 << 24
"""Resamples × rows per chunk on the device (a 128 MiB float64 weight matrix)."""


def _signed(value: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GAMMA = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def resolve(device: str) -> torch.device | None:
    """The torch device the gate's statistics run on, or None for the CPU kernels."""
    if device == "cpu":
        return None
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ComparisonInputError("device 'cuda' requested for the gate but CUDA is not available")
    return torch.device("cuda") if available else None


def weights(keys: torch.Tensor, rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``(n, k)`` float64 Poisson(1) weights of ``rows`` (int64) in the resamples ``keys``
    (int64 holding the uint64 keys' bits): :func:`model.gate.kernels._weight`, on tensors.
    A row's weights are contiguous, so sums over rows run along the first dimension."""
    z = (rows >> 2).add_(1).mul_(_GAMMA)
    z = z[:, None] + keys[None, :]
    for shift, mix in ((30, _MIX1), (27, _MIX2)):
        z.bitwise_xor_((z >> shift).bitwise_and_((1 << (64 - shift)) - 1)).mul_(mix)
    z.bitwise_xor_((z >> 31).bitwise_and_((1 << 33) - 1))
    z = (z >> ((rows & 3) * 16)[:, None]).bitwise_and_(0xFFFF)
    return table[z]


def device_deltas(
    rows: Rows,
    keys: np.ndarray,
    table: np.ndarray,
    baseline_threshold: float,
    candidate_threshold: float,
    device: torch.device,
) -> np.ndarray:
    """:func:`model.gate.resample.poisson_deltas` computed on ``device``: the same
    ``(len(keys), len(METRICS))`` improvements."""
    on = _On(device, keys, table)
    total = torch.zeros((2, 5, on.k), dtype=torch.float64, device=device)
    for start, y, sb, sc in rows.row_chunks():
        cols = row_columns(y, sb, sc, baseline_threshold, candidate_threshold)
        for a in range(0, y.size, on.span):
            b = min(a + on.span, y.size)
            w = on.weights(torch.arange(start + a, start + b, device=device))
            y_t = on.tensor(y[a:b].astype(np.float64))[:, None]
            c_t = on.tensor(cols[a:b])
            total[1] += (c_t * y_t).T @ w  # a row of the other class adds exact zeros
            total[0] += (c_t * (1.0 - y_t)).T @ w
    totals = (total[1, 4], total[0, 4])
    auc, ap = {}, {}
    for model in (0, 1):
        auc[model], ap[model] = _sweep(on, _sorted(rows, model, on), totals)
    return improvements(total.cpu().numpy(), auc, ap)


class _On:
    """The resamples' keys and the Poisson table on the device, and the chunk size."""

    def __init__(self, device: torch.device, keys: np.ndarray, table: np.ndarray) -> None:
        self.device = device
        bits = np.ascontiguousarray(keys, dtype=np.uint64).view(np.int64)
        self.keys = _tensor(bits, device)
        self.table = _tensor(np.asarray(table, dtype=np.float64), device)
        self.k = int(bits.size)
        self.span = max(1, ELEMENTS // max(1, self.k))

    def weights(self, rows: torch.Tensor) -> torch.Tensor:
        return weights(self.keys, rows, self.table)

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        return _tensor(values, self.device)


def _tensor(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """A copy of ``values`` on ``device`` (the caller's array may be read-only)."""
    return torch.tensor(np.ascontiguousarray(values), device=device)


Chunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(rows (int64), scores (float64), y (int8)) on the device, in ascending score order."""


def _sorted(rows: Rows, model: int, on: _On) -> Iterator[Chunk]:
    """Model ``model``'s rows in ascending score order, in chunks of about ``on.span`` rows:
    sorted on the device when they are in memory, else as the rows' own sorted chunks."""
    if isinstance(rows, ArrayRows):
        labels = on.tensor(rows.y)
        ordered, order = torch.sort(on.tensor(rows.scores[model]))
        for a in range(0, rows.size, on.span):
            ids = order[a : a + on.span]
            yield ids, ordered[a : a + on.span], labels[ids]
        return
    for row_ids, scores, y in rows.sorted_chunks(model):
        for a in range(0, row_ids.size, on.span):
            b = a + on.span
            ids = on.tensor(row_ids[a:b].astype(np.int64))
            yield ids, on.tensor(scores[a:b]), on.tensor(y[a:b])


def _sweep(
    on: _On, chunks: Iterator[Chunk], totals: tuple[torch.Tensor, torch.Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """Each resample's weighted AUC (negatives below + ½ tied) and average precision of one
    model, over its rows in ascending score order, as :func:`model.gate.kernels._sweep_rows`
    sweeps them: the tie group still open at a chunk's end is carried (its weighted positives
    and negatives per resample) and closed by the first chunk that starts another. No
    boolean masks and no value read back to the host inside the loop."""
    total_pos, total_neg = totals
    zeros = torch.zeros(on.k, dtype=torch.float64, device=on.device)
    neg_below, pos_below, auc, ap = zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone()
    open_tp, open_fp = zeros.clone(), zeros.clone()  # the open group (none yet: zeros)
    last: torch.Tensor | None = None  # the open group's score

    def close_open(share: torch.Tensor | float) -> None:
        """Close the open group (``share``: 1 to close it, 0 to leave everything as is)."""
        ap.add_(share * open_tp * _precision(total_pos - pos_below, total_neg, neg_below))
        auc.add_(share * open_tp * (neg_below + 0.5 * open_fp))
        pos_below.add_(share * open_tp)
        neg_below.add_(share * open_fp)

    for ids, scores, y in chunks:
        n = scores.numel()
        if n == 0:
            continue
        starts = torch.ones(n, dtype=torch.bool, device=on.device)
        starts[1:] = scores[1:] != scores[:-1]
        if last is not None:
            starts[:1] = scores[:1] != last
        first_new = starts[:1].to(torch.float64)  # 1: the open group closes before this chunk
        close_open(first_new)
        group = torch.cumsum(starts, 0) - starts[:1].to(torch.int64)  # the first group is 0
        sums = zeros.new_zeros((2 * n, on.k))
        sums.index_add_(0, 2 * group + y.to(torch.int64), on.weights(ids))
        d_fp, d_tp = sums[0::2], sums[1::2]  # (groups, k); unused groups hold zeros
        keep = 1.0 - first_new  # the open group goes on in group 0
        d_tp[0] += keep * open_tp
        d_fp[0] += keep * open_fp
        closed = (torch.arange(n, device=on.device) < group[-1:]).to(torch.float64)[:, None]
        tp_c, fp_c = d_tp * closed, d_fp * closed  # every group but the chunk's last
        below_n = neg_below + (torch.cumsum(fp_c, 0) - fp_c)
        below_p = pos_below + (torch.cumsum(tp_c, 0) - tp_c)
        auc += (tp_c * (below_n + 0.5 * fp_c)).sum(0)
        ap += (tp_c * _precision(total_pos - below_p, total_neg, below_n)).sum(0)
        neg_below += fp_c.sum(0)
        pos_below += tp_c.sum(0)
        open_tp = d_tp.index_select(0, group[-1:])[0]
        open_fp = d_fp.index_select(0, group[-1:])[0]
        last = scores[-1:]
    close_open(1.0)  # the last group
    auc = auc / (total_pos * total_neg)
    ap = ap / total_pos
    return auc.cpu().numpy(), ap.cpu().numpy()


def _precision(tp: torch.Tensor, total_neg: torch.Tensor, neg_below: torch.Tensor) -> torch.Tensor:
    """Precision at a tie group: its true positives over everything scored at or above it."""
    return tp / torch.clamp(tp + total_neg - neg_below, min=1.0)


def placements(
    scores: np.ndarray, is_pos: np.ndarray, device: torch.device
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """:func:`model.gate.stats._placements` on ``device``: the AUC and the placements V10 of
    the positives and V01 of the negatives (one sort)."""
    s = _tensor(np.asarray(scores, dtype=np.float64), device)
    pos = _tensor(np.asarray(is_pos, dtype=np.bool_), device)
    m = int(pos.sum())
    n = pos.numel() - m
    xs, order = torch.sort(s)
    _, sizes = torch.unique_consecutive(xs, return_counts=True)
    ends = torch.cumsum(sizes, 0)
    starts = ends - sizes
    cum_pos = torch.cat((sizes.new_zeros(1), torch.cumsum(pos[order].to(torch.int64), 0)))
    pos_before = cum_pos[starts]
    pos_in = cum_pos[ends] - pos_before
    neg_before, neg_in = starts - pos_before, sizes - pos_in
    mid_all = (starts + ends + 1).double() / 2.0
    v_pos = (mid_all - (pos_before.double() + (pos_in + 1).double() / 2.0)) / n
    v_neg = 1.0 - (mid_all - (neg_before.double() + (neg_in + 1).double() / 2.0)) / m
    v = torch.empty_like(s)
    v[order] = torch.where(
        pos[order], v_pos.repeat_interleave(sizes), v_neg.repeat_interleave(sizes)
    )
    return float(v[pos].mean()), v[pos], v[~pos]


def delong_parts(
    y: np.ndarray, sb: np.ndarray, sc: np.ndarray, device: torch.device
) -> tuple[float, float, np.ndarray]:
    """Both AUCs and the 2×2 covariance ``S10/m + S01/n`` of DeLong's test, on ``device``
    (:func:`model.gate.stats.delong_from` finishes the test)."""
    is_pos = np.asarray(y) == 1
    m = int(is_pos.sum())
    n = is_pos.size - m
    a_b, vp_b, vn_b = placements(sb, is_pos, device)
    a_c, vp_c, vn_c = placements(sc, is_pos, device)
    s = torch.cov(torch.stack((vp_b, vp_c))) / m + torch.cov(torch.stack((vn_b, vn_c))) / n
    return a_b, a_c, s.cpu().numpy()
